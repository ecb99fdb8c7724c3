"""CharLM: gradients (finite differences, PyTorch), truncated BPTT, chunked evaluation, learning."""

import numpy as np
import pytest

from helpers import assert_grad_close, numeric_grad, sample_indices
from rnnkit.charlm.data import Vocab
from rnnkit.charlm.model import CharLM
from rnnkit.charlm.training import evaluate_ids
from rnnkit.nn import cross_entropy

VOCAB = Vocab(list("abcdefg"))


def _random_state(model, n, rng):
    s = model.initial_state(n)
    if isinstance(s, tuple):
        return tuple(rng.standard_normal(a.shape) * 0.5 for a in s)
    return rng.standard_normal(s.shape) * 0.5


@pytest.mark.parametrize("cell,embedding", [("lstm", 5), ("gru", 0), ("rnn", 4)])
def test_gradients_match_finite_differences(cell, embedding):
    rng = np.random.default_rng(0)
    m = CharLM(VOCAB, cell=cell, hidden_size=6, num_layers=2, embedding_size=embedding, dtype=np.float64, rng=1)
    for p in m.parameters():                        # non-zero biases everywhere
        p.data += rng.uniform(-0.3, 0.3, p.data.shape)
    ids = rng.integers(0, 7, (4, 3))
    tgt = rng.integers(0, 7, (4, 3))
    state = _random_state(m, 3, rng)                # a carried state, as in the middle of a text
    m.zero_grad()
    m.loss(ids, tgt, state)
    f = lambda: cross_entropy(m.forward(ids, state)[0], tgt)[0]
    for name, p in m.named_parameters():
        idx = sample_indices(rng, p.data.size, 8)
        assert_grad_close(p.grad, numeric_grad(f, p.data, indices=idx), name)


def test_matches_pytorch_embedding_lstm_linear():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    m = CharLM(VOCAB, cell="lstm", hidden_size=5, num_layers=2, embedding_size=4, dtype=np.float64, rng=2)
    emb = torch.nn.Embedding(7, 4).double()
    lstm = torch.nn.LSTM(4, 5, num_layers=2).double()
    head = torch.nn.Linear(5, 7).double()
    sd = m.state_dict()
    emb.load_state_dict({"weight": torch.from_numpy(sd["embed.weight"])})
    lstm.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in sd.items() if k.startswith("rnn.")})
    head.load_state_dict({"weight": torch.from_numpy(sd["head.weight"]), "bias": torch.from_numpy(sd["head.bias"])})
    ids = rng.integers(0, 7, (6, 2))
    tgt = rng.integers(0, 7, (6, 2))
    h0, c0 = _random_state(m, 2, rng)
    m.zero_grad()
    loss, (h_n, c_n) = m.loss(ids, tgt, (h0, c0))
    out, (th, tc) = lstm(emb(torch.from_numpy(ids)), (torch.from_numpy(h0), torch.from_numpy(c0)))
    tl = torch.nn.functional.cross_entropy(head(out).reshape(-1, 7), torch.from_numpy(tgt).reshape(-1))
    tl.backward()
    assert abs(loss - tl.item()) < 1e-12
    np.testing.assert_allclose(h_n, th.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(c_n, tc.detach().numpy(), atol=1e-12)
    grads = dict(m.named_parameters())
    np.testing.assert_allclose(grads["embed.weight"].grad, emb.weight.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(grads["head.weight"].grad, head.weight.grad.numpy(), atol=1e-12)
    for k, p in lstm.named_parameters():
        np.testing.assert_allclose(grads["rnn." + k].grad, p.grad.numpy(), atol=1e-12, err_msg=k)


def test_second_step_equals_first():
    m = CharLM(VOCAB, hidden_size=8, num_layers=2, embedding_size=3, rng=0)
    ids = np.arange(12).reshape(4, 3) % 7
    grads = []
    for _ in range(2):
        m.zero_grad()
        loss, _ = m.loss(ids, (ids + 1) % 7)
        grads.append([p.grad.copy() for p in m.parameters()] + [loss])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_forward_uses_float32_by_default():
    m = CharLM(VOCAB, hidden_size=8, num_layers=1, rng=0)
    logits, state, _ = m.forward(np.zeros((3, 2), dtype=np.int32))
    assert logits.dtype == np.float32 and logits.shape == (3, 2, 7)
    assert state[0].dtype == np.float32 and state[0].shape == (1, 2, 8)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_chunked_evaluation_equals_one_pass(cell):
    rng = np.random.default_rng(5)
    m = CharLM(VOCAB, cell=cell, hidden_size=16, num_layers=2, embedding_size=8, rng=4)
    ids = rng.integers(0, 7, 301)
    whole = evaluate_ids(m, ids, batch=1, seq_len=1000)
    logits, _, _ = m.forward(ids[:-1, None])            # the whole text as one sequence, by hand
    direct, _ = cross_entropy(logits, ids[1:, None])
    assert whole["chars"] == 300
    assert abs(whole["loss"] - direct) < 1e-5
    for seq_len in (1, 7, 100):
        chunked = evaluate_ids(m, ids, batch=1, seq_len=seq_len)
        assert abs(chunked["loss"] - whole["loss"]) < 1e-5, seq_len
    assert abs(whole["bits_per_char"] - whole["loss"] / np.log(2)) < 1e-12
    assert abs(whole["perplexity"] - np.exp(whole["loss"])) < 1e-9


def test_carried_state_is_used_and_gradient_is_truncated():
    m = CharLM(VOCAB, hidden_size=8, num_layers=1, embedding_size=3, dtype=np.float64, rng=0)
    ids = np.array([[1], [2], [3]])
    l0, s1 = m.loss(ids, ids)
    l1, _ = m.loss(ids, ids, s1)
    assert l0 != l1                                     # the state changes the predictions
    # truncation: the gradient of chunk 2 does not depend on how s1 was produced
    m.zero_grad()
    m.loss(ids, ids, s1)
    g1 = [p.grad.copy() for p in m.parameters()]
    m.zero_grad()
    m.loss(ids, ids, tuple(a.copy() for a in s1))
    for a, p in zip(g1, m.parameters()):
        np.testing.assert_array_equal(a, p.grad)


def test_bad_hyperparameters():
    from rnnkit.errors import HyperparameterError
    with pytest.raises(HyperparameterError, match="cell must be one of 'lstm', 'gru', 'rnn', got 'transformer'"):
        CharLM(VOCAB, cell="transformer")
    with pytest.raises(HyperparameterError, match="hidden_size must be >= 1, got 0"):
        CharLM(VOCAB, hidden_size=0)
    with pytest.raises(HyperparameterError, match=r"dropout must be in \[0, 1\), got 1.5"):
        CharLM(VOCAB, dropout=1.5)


@pytest.mark.parametrize("cell,embedding", [("lstm", 5), ("gru", 0), ("rnn", 3)])
def test_parameter_shapes_without_building_match_the_network(cell, embedding):
    from rnnkit.charlm import CharModel
    est = CharModel(cell=cell, hidden_size=6, num_layers=3, embedding_size=embedding)
    shapes = est._parameter_shapes({"vocab": VOCAB.chars})
    m = CharLM(VOCAB, cell=cell, hidden_size=6, num_layers=3, embedding_size=embedding, rng=0)
    assert shapes == {k: v.shape for k, v in m.state_dict().items()}
