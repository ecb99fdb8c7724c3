"""Linear, Embedding, Dropout and the losses: finite differences, PyTorch parity, hand-worked values."""

import re

import numpy as np
import pytest
import torch

from helpers import assert_grad_close, numeric_grad
from rnnkit.errors import ShapeError
from rnnkit.nn import Dropout, Embedding, Linear, cross_entropy, mse


def test_linear_gradients_finite_differences():
    rng = np.random.default_rng(0)
    lin = Linear(4, 3, dtype=np.float64, rng=0)
    lin.bias.data[...] = rng.uniform(-1, 1, 3)
    x = rng.standard_normal((5, 2, 4))
    dy = rng.standard_normal((5, 2, 3))
    y, cache = lin(x)
    dx = lin.backward(dy, cache)
    f = lambda: float((lin(x)[0] * dy).sum())
    assert_grad_close(dx, numeric_grad(f, x), "dx")
    assert_grad_close(lin.weight.grad, numeric_grad(f, lin.weight.data), "weight")
    assert_grad_close(lin.bias.grad, numeric_grad(f, lin.bias.data), "bias")


def test_linear_matches_torch():
    lin = Linear(6, 4, dtype=np.float64, rng=1)
    t = torch.nn.Linear(6, 4).double()
    t.load_state_dict({k: torch.from_numpy(v) for k, v in lin.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((3, 6))
    xt = torch.tensor(x, requires_grad=True)
    (t(xt) ** 2).sum().backward()
    y, cache = lin(x)
    dx = lin.backward(2 * y, cache)
    np.testing.assert_allclose(y, t(xt).detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(lin.weight.grad, t.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(lin.bias.grad, t.bias.grad.numpy(), rtol=1e-12)


def test_embedding_gradient_accumulates_repeated_ids_and_skips_padding():
    emb = Embedding(5, 3, padding_idx=0, dtype=np.float64, rng=0)
    np.testing.assert_array_equal(emb.weight.data[0], 0.0)
    ids = np.array([[1, 2, 1], [0, 4, 1]])
    dy = np.random.default_rng(1).standard_normal((2, 3, 3))
    y, cache = emb(ids)
    np.testing.assert_array_equal(y, emb.weight.data[ids])
    emb.backward(dy, cache)
    f = lambda: float((emb(ids)[0] * dy).sum())
    expected = numeric_grad(f, emb.weight.data)
    expected[0] = 0.0                                # padding row gets no gradient, as in PyTorch
    assert_grad_close(emb.weight.grad, expected, "weight")
    np.testing.assert_allclose(emb.weight.grad[1], dy[0, 0] + dy[0, 2] + dy[1, 2])
    t = torch.nn.Embedding(5, 3, padding_idx=0).double()
    t.weight.data[...] = torch.from_numpy(emb.weight.data)
    (t(torch.tensor(ids)) * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(emb.weight.grad, t.weight.grad.numpy(), rtol=1e-13)


def test_embedding_rejects_bad_ids():
    emb = Embedding(5, 3)
    with pytest.raises(ShapeError, match=r"ids must lie in \[0, 5\), got min 0 and max 5"):
        emb(np.array([0, 5]))
    with pytest.raises(ShapeError, match="expected integer ids"):
        emb(np.array([0.0, 1.0]))


def test_dropout_train_eval_and_gradient():
    d = Dropout(0.25)
    x = np.ones((200, 100))
    y, mask = d(x, rng=np.random.default_rng(0))
    assert abs((y == 0).mean() - 0.25) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.75)
    np.testing.assert_array_equal(d.backward(np.ones_like(x), mask), y)
    d.eval()
    y, cache = d(x)
    assert y is x and cache is None
    with pytest.raises(ValueError, match="rng"):
        Dropout(0.5)(x)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("ignore", [None, 2])
def test_cross_entropy_matches_torch_and_finite_differences(smoothing, ignore):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 3, 6)) * 3
    y = rng.integers(0, 6, (4, 3))
    y[0, 0] = 2
    loss, dz = cross_entropy(z, y, ignore_index=ignore, label_smoothing=smoothing)
    zt = torch.tensor(z, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(zt.reshape(-1, 6), torch.tensor(y).reshape(-1),
                                           ignore_index=-100 if ignore is None else ignore,
                                           label_smoothing=smoothing)
    lt.backward()
    assert loss == pytest.approx(lt.item(), rel=1e-13)
    np.testing.assert_allclose(dz, zt.grad.numpy(), rtol=1e-11, atol=1e-15)
    f = lambda: cross_entropy(z, y, ignore_index=ignore, label_smoothing=smoothing)[0]
    assert_grad_close(dz, numeric_grad(f, z), "d logits")


def test_cross_entropy_mask_mean_over_real_tokens_and_stability():
    z = np.array([[1000.0, 0.0], [0.0, 0.0], [5.0, -5.0]])
    y = np.array([0, 1, 1])
    loss, dz = cross_entropy(z, y, mask=np.array([True, True, False]))
    # token 0: -log softmax = ~0; token 1: log 2; token 2 masked out. Mean over 2 real tokens.
    assert loss == pytest.approx(np.log(2) / 2, rel=1e-14)
    np.testing.assert_array_equal(dz[2], 0.0)
    assert np.isfinite(dz).all()
    with pytest.raises(ShapeError, match=r"targets must lie in \[0, 2\)"):
        cross_entropy(z, np.array([0, 1, 2]))


def test_mse_value_gradient_and_mask():
    p = np.array([[1.0, 2.0], [3.0, 5.0]])
    t = np.array([[1.0, 0.0], [3.0, 4.0]])
    loss, d = mse(p, t)
    assert loss == pytest.approx((4 + 1) / 4)
    np.testing.assert_allclose(d, 2 * (p - t) / 4)
    loss, d = mse(p, t, mask=np.array([[True, False], [True, True]]))
    assert loss == pytest.approx(1 / 3)
    f = lambda: mse(p, t)[0]
    assert_grad_close(mse(p, t)[1], numeric_grad(f, p), "d pred")
    with pytest.raises(ShapeError, match="must equal target shape"):
        mse(p, t[:1])


def test_layers_are_called_through_module_call_and_show_their_settings():
    assert all("__call__" not in vars(cls) for cls in (Linear, Embedding, Dropout))  # Module's serves all
    emb = Embedding(5, 2, padding_idx=0, rng=0)
    np.testing.assert_array_equal(emb(np.array([1, 0]))[0], emb.weight.data[[1, 0]])
    drop = Dropout(0.5)
    x = np.ones((4, 3), np.float32)
    y, mask = drop(x, np.random.default_rng(0))
    np.testing.assert_array_equal(y, x * mask)
    assert repr(Linear(3, 2, bias=False)) == "Linear(in_features=3, out_features=2, bias=False)"
    assert repr(emb) == "Embedding(5, 2, padding_idx=0)"
    assert repr(drop) == "Dropout(p=0.5)"


@pytest.mark.parametrize("x_dtype", [np.float64, np.int64, np.float16])
def test_linear_refuses_another_dtype_and_says_how_to_cast(x_dtype):
    lin = Linear(3, 2, rng=0)  # float32
    x = np.ones((4, 3), dtype=x_dtype)
    with pytest.raises(ShapeError, match=rf"Linear input: expected dtype float32 \(the weight's dtype\), "
                                         rf"got {np.dtype(x_dtype)}; cast with x\.astype\(np\.float32\)"):
        lin(x)
    y, _ = lin(x.astype(np.float32))
    assert y.dtype == np.float32


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("how", ["ignore_index", "mask"])
def test_cross_entropy_minus_inf_logit_at_the_placeholder_class_matches_torch(how, smoothing):
    # class 0 is <pad>, never predicted: its logit is -inf. Padded tokens must add nothing, not NaN.
    z = np.random.default_rng(0).standard_normal((2, 3, 5))
    z[..., 0] = -np.inf
    y = np.array([[1, 2, 0], [4, 0, 0]])
    kw = {"ignore_index": 0} if how == "ignore_index" else {"mask": y != 0}
    loss, dz = cross_entropy(z, y, label_smoothing=smoothing, **kw)
    zt = torch.tensor(z, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(zt.reshape(-1, 5), torch.tensor(y).reshape(-1), ignore_index=0,
                                           label_smoothing=smoothing)
    lt.backward()
    print("rnnkit", loss, "torch", lt.item())
    # with smoothing the -inf logit enters every real token's loss: inf in torch too, but never NaN
    assert loss == pytest.approx(lt.item(), rel=1e-13) if smoothing == 0 else loss == lt.item() == np.inf
    assert np.isfinite(dz).all()
    np.testing.assert_allclose(dz, zt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_cross_entropy_computes_the_softmax_once(monkeypatch):
    from rnnkit.nn import losses
    calls = []
    exp = np.exp
    monkeypatch.setattr(losses.np, "exp", lambda *a, **k: calls.append(1) or exp(*a, **k))
    cross_entropy(np.zeros((4, 3)), np.zeros(4, dtype=int), label_smoothing=0.1)
    assert len(calls) == 1  # the gradient reuses the loss's exponentials


@pytest.mark.parametrize("bad", [-0.5, 1.5, float("nan"), "0.1", True])
def test_cross_entropy_refuses_label_smoothing_outside_0_1(bad):
    with pytest.raises(ValueError, match=r"label_smoothing: expected a number in \[0, 1\], got"):
        cross_entropy(np.zeros((2, 3)), np.zeros(2, dtype=int), label_smoothing=bad)


def test_cross_entropy_label_smoothing_one_is_the_uniform_target():
    z = np.random.default_rng(1).standard_normal((2, 3))
    loss, _ = cross_entropy(z, np.array([0, 2]), label_smoothing=1)
    assert loss == pytest.approx(-np.mean(z - np.log(np.exp(z).sum(-1, keepdims=True))), rel=1e-13)


@pytest.mark.parametrize("mask_shape", [(3,), (5, 3, 1), (3, 5)])
def test_cross_entropy_mask_must_have_the_targets_shape(mask_shape):
    z, y = np.zeros((5, 3, 4)), np.zeros((5, 3), dtype=int)
    with pytest.raises(ShapeError, match=rf"mask shape: expected the targets' shape \(5, 3\), got "
                                         rf"{re.escape(str(mask_shape))}"):
        cross_entropy(z, y, mask=np.ones(mask_shape, dtype=bool))


def test_mse_mask_that_does_not_broadcast_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"mse: mask shape \(5, 3, 2\) does not broadcast to the prediction "
                                         r"shape \(5, 3\)"):
        mse(np.zeros((5, 3)), np.zeros((5, 3)), mask=np.ones((5, 3, 2), bool))


def test_layer_sizes_go_through_the_shared_checks():
    """A bool is not a size (Linear(True, 3) used to build a 1-input layer); messages name the argument."""
    from rnnkit.errors import HyperparameterError
    from rnnkit.nn import Linear
    with pytest.raises(HyperparameterError, match="in_features must be an integer, got True"):
        Linear(True, 3)
    with pytest.raises(HyperparameterError, match="out_features must be >= 1, got 0"):
        Linear(3, 0)
