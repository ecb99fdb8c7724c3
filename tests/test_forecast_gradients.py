"""Finite-difference checks (float64) of the forecasting heads' losses and of the whole network."""

import numpy as np
import pytest

from helpers import assert_grad_close, numeric_grad, sample_indices
from rnnkit.forecast.heads import gaussian_nll, head_loss, pinball_loss, point_loss
from rnnkit.forecast.model import ForecastNet


@pytest.mark.parametrize("with_mask", [False, True])
def test_gaussian_nll_gradient(with_mask):
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(4, 3, 2, 2))
    y = rng.normal(size=(4, 3, 2))
    mask = rng.random((4, 3)) < 0.6 if with_mask else None
    loss, grad = gaussian_nll(raw, y, mask)
    num = numeric_grad(lambda: gaussian_nll(raw, y, mask)[0], raw)
    assert_grad_close(grad, num, "gaussian_nll")
    assert np.isfinite(loss)


def test_gaussian_nll_value_by_hand():
    # mu = 1, sigma = softplus(0) + 1e-3 = log 2 + 1e-3, y = 2
    sigma = np.log(2.0) + 1e-3
    expected = 0.5 * np.log(2 * np.pi) + np.log(sigma) + 0.5 * (1.0 / sigma) ** 2
    loss, _ = gaussian_nll(np.array([[1.0, 0.0]]), np.array([2.0]))
    assert loss == pytest.approx(expected, rel=1e-12)


def test_pinball_gradient_and_value():
    rng = np.random.default_rng(1)
    q = (0.1, 0.5, 0.9)
    raw = rng.normal(size=(5, 2, 3))
    y = rng.normal(size=(5, 2))
    _, grad = pinball_loss(raw, y, q)
    num = numeric_grad(lambda: pinball_loss(raw, y, q)[0], raw)     # no ties: e != 0 almost surely
    assert_grad_close(grad, num, "pinball")
    # by hand: y = 0, predictions -1, 0.5, 2 at levels .1 .5 .9: errors 1, -0.5, -2
    loss, _ = pinball_loss(np.array([[-1.0, 0.5, 2.0]]), np.array([0.0]), q)
    assert loss == pytest.approx((0.1 * 1 + 0.5 * 0.5 + 0.1 * 2) / 3)


def test_point_loss_gradient():
    rng = np.random.default_rng(2)
    raw, y = rng.normal(size=(6, 2, 1)), rng.normal(size=(6, 2))
    _, grad = point_loss(raw, y)
    assert_grad_close(grad, numeric_grad(lambda: point_loss(raw, y)[0], raw), "point")


def _net_case(strategy, head, cell):
    rng = np.random.default_rng(3)
    k, p, f, H, L, N = 2, 1, 1, 3, 4, 3
    P = {"point": 1, "gaussian": 2, "quantile": 3}[head]
    net = ForecastNet(cell=cell, input_size=k + p + f, hidden_size=5, num_layers=2, dropout=0.0,
                      strategy=strategy, n_out=k if strategy == "direct" else k + p, head_size=P,
                      horizon=H if strategy == "direct" else 1, future_size=f, dtype=np.float64, rng=4)
    for prm in net.parameters():            # non-zero biases everywhere
        prm.data += rng.normal(scale=0.1, size=prm.data.shape)
    x = rng.normal(size=(L, N, k + p + f))
    fut = rng.normal(size=(N, H * f)) if strategy == "direct" else None
    y = rng.normal(size=(N, H, k)) if strategy == "direct" else rng.normal(size=(L, N, k + p))
    return net, x, fut, y


@pytest.mark.parametrize("strategy,head,cell", [("recursive", "gaussian", "gru"), ("recursive", "point", "lstm"),
                                                ("direct", "quantile", "gru"), ("direct", "gaussian", "rnn")])
def test_network_gradients(strategy, head, cell):
    net, x, fut, y = _net_case(strategy, head, cell)
    q = (0.1, 0.5, 0.9)

    def loss():
        raw, _, _ = net.forward(x, future=fut)
        return head_loss(head, raw, y, q)[0]

    net.zero_grad()
    raw, _, cache = net.forward(x, future=fut)
    _, d_raw = head_loss(head, raw, y, q)
    net.backward(d_raw, cache)
    rng = np.random.default_rng(5)
    for name, prm in net.named_parameters():
        idx = sample_indices(rng, prm.data.size)
        num = numeric_grad(loss, prm.data, indices=idx)
        assert_grad_close(prm.grad, num, name, rtol=1e-5, atol=1e-8)


def test_second_step_equals_first():
    """Nothing is kept on the network between calls: the same input gives the same gradient twice."""
    net, x, fut, y = _net_case("direct", "gaussian", "gru")
    grads = []
    for _ in range(2):
        net.zero_grad()
        raw, _, cache = net.forward(x, future=fut)
        net.backward(head_loss("gaussian", raw, y)[1], cache)
        grads.append([p.grad.copy() for p in net.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
