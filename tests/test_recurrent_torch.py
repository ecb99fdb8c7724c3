"""Parity of the recurrent layers with torch.nn.RNN/LSTM/GRU from identical weights.

Outputs, final states and every gradient (inputs, initial state, parameters),
in float64 (tight) and float32; variable lengths go through
``pack_padded_sequence(enforce_sorted=False)`` on the torch side.
"""

import numpy as np
import pytest
import torch

from helpers import torch_twin
from recurrent_cases import GRID, GRID_IDS, as_tuple, make_case, make_layer


def run_torch(t, x, state, lengths, dy, d_state, batch_first=False, device="cpu"):
    """The twin ``t`` (on ``device``) forward and backward: (y, final state, dx, d_state0, grads) as NumPy."""
    xt = torch.tensor(x, requires_grad=True, device=device)
    st = None
    if state is not None:
        st = tuple(torch.tensor(s, requires_grad=True, device=device) for s in as_tuple(state))
    arg = None if st is None else (st if len(st) == 2 else st[0])
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        yp, sn = t(packed, arg)
        total = x.shape[1] if batch_first else x.shape[0]
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(yp, batch_first=batch_first, total_length=total)
    else:
        y, sn = t(xt, arg)
    sn = sn if isinstance(sn, tuple) else (sn,)
    loss = (y * torch.tensor(dy, device=device)).sum() + sum((s * torch.tensor(d, device=device)).sum()
                                                             for s, d in zip(sn, as_tuple(d_state)))
    loss.backward()
    def host(a):
        return a.detach().cpu().numpy()

    grads = {n: host(p.grad) for n, p in t.named_parameters()}
    d_state0 = None if st is None else tuple(host(s.grad) for s in st)
    return host(y), tuple(host(s) for s in sn), host(xt.grad), d_state0, grads


def compare(layer, x, state, lengths, dy, d_state, rtol, atol):
    t = torch_twin(layer)
    layer.zero_grad()
    y, state_n, cache = layer.forward(x, state, lengths)
    dx, d_state0 = layer.backward(dy, cache, d_state)
    ty, tsn, tdx, tds0, tgrads = run_torch(t, x, state, lengths, dy, d_state, layer.batch_first)
    close = lambda a, b, what: np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)
    close(y, ty, "output")
    for j, (a, b) in enumerate(zip(as_tuple(state_n), tsn)):
        close(a, b, f"final state[{j}]")
    close(dx, tdx, "d input")
    if tds0 is not None:
        for j, (a, b) in enumerate(zip(as_tuple(d_state0), tds0)):
            close(a, b, f"d initial state[{j}]")
    assert set(tgrads) == {n for n, _ in layer.named_parameters()}
    for name, p in layer.named_parameters():
        close(p.grad, tgrads[name], f"d {name}")


@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", GRID, ids=GRID_IDS)
def test_parity_float64(kind, num_layers, bidirectional, varlen, given_state):
    case = make_case(kind, num_layers, bidirectional, varlen, given_state, T=6, N=4, D=5, H=7)
    compare(*case, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", GRID, ids=GRID_IDS)
def test_parity_float32(kind, num_layers, bidirectional, varlen, given_state):
    case = make_case(kind, num_layers, bidirectional, varlen, given_state, dtype=np.float32,
                     T=6, N=4, D=5, H=7)
    compare(*case, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
def test_parity_batch_first_unsorted_lengths(kind):
    case = make_case(kind, 2, True, True, True, T=7, N=3, D=4, H=5, batch_first=True)
    compare(*case, rtol=1e-10, atol=1e-12)


def test_parity_without_bias():
    layer = make_layer("lstm", 3, 4, 2, True, bias=False)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 2, 3))
    dy = rng.standard_normal((5, 2, 8))
    d_state = (rng.standard_normal((4, 2, 4)), rng.standard_normal((4, 2, 4)))
    compare(layer, x, None, None, dy, d_state, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_dropout_zero_in_training_equals_torch(kind):
    layer = make_layer(kind, 3, 4, 3, True, dropout=0.0).train()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3))
    dy = rng.standard_normal((5, 2, 8))
    d_state = make_case(kind, 3, True, False, False, T=5, N=2, D=3, H=4)[5]
    compare(layer, x, None, None, dy, d_state, rtol=1e-10, atol=1e-12)


def test_dropout_is_off_in_eval_and_matches_torch_eval():
    layer = make_layer("lstm", 3, 4, 2, False, dropout=0.5).eval()
    t = torch_twin(layer).eval()
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y, _, _ = layer.forward(x)
    np.testing.assert_allclose(y, t(torch.tensor(x))[0].detach().numpy(), rtol=1e-10, atol=1e-12)


def test_dropout_between_layers_statistics():
    """With p = 0.3 the second layer sees ~30% zeros, scaled by 1/0.7; its gradient uses the same mask."""
    layer = make_layer("rnn_tanh", 50, 200, 2, False, dropout=0.3).train()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 8, 50))
    y, _, cache = layer.forward(x, rng=np.random.default_rng(5))
    mask = cache.dropout_masks[1]
    assert cache.dropout_masks[0] is None
    zero_frac = float((mask == 0).mean())
    assert abs(zero_frac - 0.3) < 0.01, zero_frac           # 32,000 draws: sd of the fraction ~0.0026
    np.testing.assert_allclose(np.unique(mask), [0.0, 1 / 0.7])
    # Same generator state -> same mask; different seed -> different mask.
    y2, _, _ = layer.forward(x, rng=np.random.default_rng(5))
    y3, _, _ = layer.forward(x, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(y, y2)
    assert not np.allclose(y, y3)
    with pytest.raises(ValueError, match="rng"):
        layer.forward(x)


def test_state_dict_round_trip_with_torch():
    """Weights exported from torch load into rnnkit and give identical outputs, and back."""
    t = torch.nn.GRU(4, 6, num_layers=2, bidirectional=True).double()
    layer = make_layer("gru", 4, 6, 2, True, seed=9)
    layer.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 3, 4))
    y, h, _ = layer.forward(x)
    ty, th = t(torch.tensor(x))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, th.detach().numpy(), rtol=1e-12, atol=1e-13)
    t2 = torch.nn.GRU(4, 6, num_layers=2, bidirectional=True).double()
    t2.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    np.testing.assert_array_equal(t2(torch.tensor(x))[0].detach().numpy(), ty.detach().numpy())


@pytest.mark.parametrize("kind,torch_cls", [("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU),
                                             ("rnn_tanh", torch.nn.RNN)])
def test_default_init_matches_torch_distribution(kind, torch_cls):
    """Every weight and bias is U(-1/sqrt(H), 1/sqrt(H)) like PyTorch's reset_parameters."""
    H = 64
    layer = make_layer(kind, 32, H, 2, True, seed=0)
    t = torch_cls(32, H, num_layers=2, bidirectional=True)
    assert [n for n, _ in layer.named_parameters()] == [n for n, _ in t.named_parameters()]
    bound = 1 / np.sqrt(H)
    for (name, p), (_, tp) in zip(layer.named_parameters(), t.named_parameters()):
        assert p.shape == tuple(tp.shape), name
        assert np.abs(p.data).max() <= bound
        assert abs(np.abs(p.data).mean() - bound / 2) < 0.1 * bound   # mean |U(-b, b)| = b/2
