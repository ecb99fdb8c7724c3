"""Gradient reach and gate saturation (rnnkit.nn.diagnostics) against PyTorch autograd on the same weights."""

import numpy as np
import pytest

from rnnkit.nn import Recurrent
from rnnkit.nn.diagnostics import gate_saturation, hidden_gradient_norms
from tests.helpers import torch_twin

torch = pytest.importorskip("torch")


def _layer(mode, layers=2, H=5, D=3, seed=0, scale=1.0):
    rnn = Recurrent(mode, D, H, layers, dtype=np.float64, rng=seed)
    rng = np.random.default_rng(seed + 1)
    for p in rnn.parameters():                          # random non-zero biases, larger weights: saturation
        p.data[...] = rng.normal(0, scale, p.data.shape)
    rnn.eval()
    return rnn


def _torch_norms(rnn, x, d_last):
    """dL/dh_t with L = <d_last, h_{T-1}>, by stepping the torch twin and retaining every state's gradient."""
    twin = torch_twin(rnn).eval()
    state, hs = None, []
    for t in range(x.shape[0]):
        _, state = twin(torch.from_numpy(x[t:t + 1]), state)
        h = state[0] if isinstance(state, tuple) else state                  # (L, N, H)
        h.retain_grad()
        hs.append(h)
    (hs[-1][-1] * torch.from_numpy(d_last)).sum().backward()
    return np.array([np.linalg.norm(h.grad[-1].numpy(), axis=1).mean() for h in hs])


@pytest.mark.parametrize("mode", ["RNN_TANH", "GRU", "LSTM"])
def test_gradient_norms_match_torch_autograd(mode):
    rnn = _layer(mode)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 4, 3))                                            # T = 6, N = 4
    d_last = rng.normal(size=(4, 5))
    grads_before = {n: p.grad.copy() for n, p in rnn.named_parameters()}
    ours = hidden_gradient_norms(rnn, x, d_last)
    np.testing.assert_allclose(ours, _torch_norms(rnn, x, d_last), rtol=1e-10)
    for n, p in rnn.named_parameters():                                       # diagnostics leave .grad alone
        assert np.array_equal(p.grad, grads_before[n]), n


def test_tanh_gradient_vanishes_with_small_recurrent_weights():
    rnn = _layer("RNN_TANH", layers=1, scale=0.1)
    x = np.random.default_rng(0).normal(size=(30, 2, 3))
    g = hidden_gradient_norms(rnn, x, np.ones((2, 5)))
    assert g[0] < 1e-10 * g[-1]                                               # geometric decay over 29 steps


def _torch_gates(rnn, x):
    """Sigmoid gate values per step from the torch twin's hidden states (one layer)."""
    twin = torch_twin(rnn)
    with torch.no_grad():
        out, _ = twin(torch.from_numpy(x))
        h_prev = torch.cat([torch.zeros_like(out[:1]), out[:-1]]).numpy()    # (T, N, H)
    W_ih, W_hh, b_ih, b_hh = (getattr(twin, n + "_l0").detach().numpy()
                              for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    H = rnn.hidden_size
    a_x, a_h = x @ W_ih.T + b_ih, h_prev @ W_hh.T + b_hh                      # (T, N, G*H)
    sig = lambda a: 1 / (1 + np.exp(-a))
    if rnn.mode == "LSTM":
        a = a_x + a_h
        return np.concatenate([sig(a[..., :2 * H]), sig(a[..., 3 * H:])], axis=-1)   # i, f, o
    return sig(a_x[..., :2 * H] + a_h[..., :2 * H])                                  # r, z


@pytest.mark.parametrize("mode", ["GRU", "LSTM"])
def test_gate_saturation_matches_gates_from_torch(mode):
    rnn = _layer(mode, layers=1, scale=2.0)
    x = np.random.default_rng(3).normal(size=(7, 6, 3))
    sat = gate_saturation(rnn, x)
    gates = _torch_gates(rnn, x).reshape(7, -1)
    np.testing.assert_allclose(sat["high"], (gates > 0.95).mean(1))
    np.testing.assert_allclose(sat["low"], (gates < 0.05).mean(1))
    assert sat["high"].max() > 0 and sat["low"].max() > 0                     # the test sees saturation at all


def test_no_gates_no_saturation():
    assert gate_saturation(_layer("RNN_TANH", layers=1), np.zeros((3, 1, 3))) is None
