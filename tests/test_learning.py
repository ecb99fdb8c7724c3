"""Learning check: LSTM and GRU solve the adding problem (Hochreiter & Schmidhuber 1997) at T = 50.

Each input step carries a value u_t ~ U(0, 1) and a marker; exactly two steps are
marked (one in each half) and the target is the sum of their values. Predicting the
mean (1.0) gives MSE Var(u_a + u_b) = 2/12 ~= 0.167; the test requires < 0.01.
"""

import numpy as np
import pytest

from rnnkit.nn import GRU, LSTM, Linear, Module, mse
from rnnkit.optim.clip import clip_grad_norm
from rnnkit.optim.optimizers import Adam


def adding_batch(rng, T, N):
    values = rng.uniform(0, 1, (T, N))
    markers = np.zeros((T, N))
    a = rng.integers(0, T // 2, N)
    b = rng.integers(T // 2, T, N)
    markers[a, np.arange(N)] = 1.0
    markers[b, np.arange(N)] = 1.0
    x = np.stack([values, markers], axis=2).astype(np.float32)      # (T, N, 2)
    y = (values[a, np.arange(N)] + values[b, np.arange(N)]).astype(np.float32)[:, None]  # (N, 1)
    return x, y


class Regressor(Module):
    """Recurrent layer -> last hidden state -> Linear -> one number."""

    def __init__(self, cell, hidden, seed):
        super().__init__()
        self.rnn = cell(2, hidden, rng=seed)
        self.head = Linear(hidden, 1, rng=seed + 1)

    def forward(self, x):
        out, _, c_rnn = self.rnn.forward(x)
        pred, c_head = self.head.forward(out[-1])                      # (N, 1)
        return pred, (out.shape, c_rnn, c_head)

    def backward(self, d_pred, cache):
        out_shape, c_rnn, c_head = cache
        d_out = np.zeros(out_shape, np.float32)
        d_out[-1] = self.head.backward(d_pred, c_head)
        self.rnn.backward(d_out, c_rnn)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cell", [LSTM, GRU], ids=["lstm", "gru"])
def test_adding_problem_T50(cell):
    T, N = 50, 64
    model = Regressor(cell, 48, seed=0)
    opt = Adam(model.parameters(), lr=5e-3)
    rng = np.random.default_rng(0)
    x_test, y_test = adding_batch(np.random.default_rng(123), T, 1000)
    baseline = mse(np.full_like(y_test, y_test.mean()), y_test)[0]
    assert 0.13 < baseline < 0.2
    test_mse = None
    for step in range(1, 3001):
        x, y = adding_batch(rng, T, N)
        model.zero_grad()
        pred, cache = model.forward(x)
        loss, d_pred = mse(pred, y)
        model.backward(d_pred, cache)
        clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        if step % 250 == 0:
            test_mse = mse(model.forward(x_test)[0], y_test)[0]
            if test_mse < 0.005:
                break
    assert test_mse < 0.01, f"test MSE {test_mse:.4f} after {step} steps (baseline {baseline:.3f})"
