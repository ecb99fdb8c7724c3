"""Attention layers: finite differences with masks, PyTorch parity, hand-worked values, the mask contract."""

import numpy as np
import pytest
import torch

from helpers import assert_grad_close, numeric_grad
from rnnkit.errors import ShapeError
from rnnkit.nn.attention import AdditiveAttention, DotAttention, GeneralAttention, make_attention

N, S, Q, K = 3, 5, 4, 6
LENGTHS = np.array([5, 2, 3])


def _mask(lengths=LENGTHS, S=S):
    return np.arange(S)[None, :] < lengths[:, None]                  # (N, S)


def _layer(kind, Q=Q, K=K):
    return make_attention(kind, Q, K if kind != "dot" else Q, attention_size=7 if kind == "bahdanau" else None,
                          dtype=np.float64, rng=3)


@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general"])
@pytest.mark.parametrize("queries", [None, 3])   # one query per sequence, or T = 3 queries at once
def test_gradients_finite_differences_with_mask(kind, queries):
    rng = np.random.default_rng(0)
    att = _layer(kind)
    Kk = att.memory_size
    q = rng.standard_normal((N, Q) if queries is None else (N, queries, Q))
    h = rng.standard_normal((N, S, Kk))
    mask = _mask()
    dc = rng.standard_normal(q.shape[:-1] + (Kk,))
    dw = rng.standard_normal(q.shape[:-1] + (S,))       # an upstream gradient on the weights too

    def f():
        c, w, _ = att(q, h, mask)
        return float((c * dc).sum() + (w * dw).sum())

    c, w, cache = att(q, h, mask)
    d_q, d_h = att.backward(dc, cache, d_weights=dw)
    assert_grad_close(d_q, numeric_grad(f, q), "d_query")
    assert_grad_close(d_h, numeric_grad(f, h), "d_memory")
    for name, p in att.named_parameters():
        assert_grad_close(p.grad, numeric_grad(f, p.data), name)
    # padded memory rows get no gradient: they never influence anything
    assert np.all(d_h[~mask] == 0.0)


@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general"])
def test_masked_positions_receive_exactly_zero_weight(kind):
    rng = np.random.default_rng(1)
    att = _layer(kind)
    h = rng.standard_normal((N, S, att.memory_size)) * 10       # large scores must not leak through
    c, w, _ = att(rng.standard_normal((N, Q)), h, _mask())
    assert np.all(w[~_mask()] == 0.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    # garbage in the padded rows changes nothing
    h2 = h.copy()
    h2[~_mask()] = 1e3
    q = rng.standard_normal((N, Q))
    np.testing.assert_allclose(att(q, h, _mask())[0], att(q, h2, _mask())[0], rtol=1e-12)


def test_multi_query_equals_one_query_at_a_time():
    rng = np.random.default_rng(2)
    for kind in ("bahdanau", "dot", "general"):
        att = _layer(kind)
        q = rng.standard_normal((N, 4, Q))
        h = rng.standard_normal((N, S, att.memory_size))
        c, w, _ = att(q, h, _mask())
        for t in range(4):
            ct, wt, _ = att(q[:, t], h, _mask())
            np.testing.assert_allclose(c[:, t], ct, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(w[:, t], wt, rtol=1e-12, atol=1e-14)


def test_dot_attention_hand_worked():
    att = DotAttention(2, dtype=np.float64)
    h = np.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])        # (1, 3, 2); the third is padding
    s = np.array([[np.log(3.0), 0.0]])                           # scores log 3, 0 -> weights 3/4, 1/4
    c, w, _ = att(s, h, np.array([[True, True, False]]))
    np.testing.assert_allclose(w, [[0.75, 0.25, 0.0]])
    np.testing.assert_allclose(c, [[0.75, 0.25]])


def _torch_bahdanau(att, q, h, mask):
    W, U, v = (torch.tensor(p.data, requires_grad=True) for p in (att.W, att.U, att.v))
    qt, ht = torch.tensor(q, requires_grad=True), torch.tensor(h, requires_grad=True)
    e = torch.tanh((qt @ W.T)[:, None, :] + ht @ U.T) @ v                # (N, S)
    e = e.masked_fill(~torch.tensor(mask), float("-inf"))
    w = torch.softmax(e, dim=1)
    c = torch.bmm(w[:, None, :], ht)[:, 0]
    return c, w, (qt, ht, W, U, v)


def test_bahdanau_matches_torch_twin():
    rng = np.random.default_rng(4)
    att = AdditiveAttention(Q, K, 7, dtype=np.float64, rng=5)
    q, h, mask = rng.standard_normal((N, Q)), rng.standard_normal((N, S, K)), _mask()
    dc = rng.standard_normal((N, K))
    c, w, cache = att(q, h, mask)
    d_q, d_h = att.backward(dc, cache)
    ct, wt, leaves = _torch_bahdanau(att, q, h, mask)
    (ct * torch.tensor(dc)).sum().backward()
    np.testing.assert_allclose(c, ct.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(w, wt.detach().numpy(), rtol=1e-12, atol=1e-15)
    for mine, theirs, name in zip((d_q, d_h, att.W.grad, att.U.grad, att.v.grad), leaves, "q h W U v".split()):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=name)


def test_luong_general_matches_torch():
    rng = np.random.default_rng(6)
    att = GeneralAttention(Q, K, dtype=np.float64, rng=7)
    q, h, mask = rng.standard_normal((N, 3, Q)), rng.standard_normal((N, S, K)), _mask()
    dc = rng.standard_normal((N, 3, K))
    c, w, cache = att(q, h, mask)
    d_q, d_h = att.backward(dc, cache)
    Wa = torch.tensor(att.W_a.data, requires_grad=True)
    qt, ht = torch.tensor(q, requires_grad=True), torch.tensor(h, requires_grad=True)
    e = (qt @ Wa) @ ht.transpose(1, 2)
    wt = torch.softmax(e.masked_fill(~torch.tensor(mask)[:, None, :], float("-inf")), dim=-1)
    ((wt @ ht) * torch.tensor(dc)).sum().backward()
    np.testing.assert_allclose(w, wt.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d_q, qt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(d_h, ht.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(att.W_a.grad, Wa.grad.numpy(), rtol=1e-10)


def test_second_backward_accumulates_like_the_first():
    rng = np.random.default_rng(8)
    att = _layer("bahdanau")
    q, h = rng.standard_normal((N, Q)), rng.standard_normal((N, S, K))
    dc = rng.standard_normal((N, K))
    att.backward(dc, att(q, h, _mask())[2])
    g1 = {n: p.grad.copy() for n, p in att.named_parameters()}
    att.backward(dc, att(q, h, _mask())[2])
    for n, p in att.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * g1[n], rtol=1e-13)


def test_bad_shapes_are_reported():
    att = _layer("general")
    with pytest.raises(ShapeError, match="memory"):
        att(np.zeros((N, Q)), np.zeros((N, S, K + 1)))
    with pytest.raises(ShapeError, match="query"):
        att(np.zeros((N, Q + 1)), np.zeros((N, S, K)))
    with pytest.raises(ShapeError, match="at least one real position"):
        att(np.zeros((N, Q)), np.zeros((N, S, K)), np.zeros((N, S), bool))
    with pytest.raises(ValueError, match="query_size == memory_size"):
        DotAttention(3, 4)
    with pytest.raises(ValueError, match="attention"):
        make_attention("concat", 3, 3)
