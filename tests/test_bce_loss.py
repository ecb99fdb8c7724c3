"""bce_with_logits: the music loss, against central finite differences (float64) and PyTorch."""

import numpy as np
import pytest

from rnnkit.errors import ShapeError
from rnnkit.nn.losses import bce_with_logits
from tests.helpers import assert_grad_close, numeric_grad


def _case(seed=0, shape=(4, 3, 88)):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, shape)                                      # wide range: both tails exercised
    y = (rng.random(shape) < 0.3).astype(np.float64)
    return z, y


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradient_matches_central_differences(reduction):
    z, y = _case(1, (3, 2, 5))
    mask = np.array([[1, 1], [1, 0], [0, 1]], bool)[..., None]
    _, dz = bce_with_logits(z, y, mask=mask, reduction=reduction)
    num = numeric_grad(lambda: bce_with_logits(z, y, mask=mask, reduction=reduction)[0], z)
    assert_grad_close(dz, num, "d_logits")
    assert np.all(dz[~np.broadcast_to(mask, z.shape)] == 0)


def test_matches_torch_bce_with_logits_sum():
    torch = pytest.importorskip("torch")
    z, y = _case(2)
    loss, dz = bce_with_logits(z, y, reduction="sum")
    tz = torch.tensor(z, requires_grad=True)
    tl = torch.nn.BCEWithLogitsLoss(reduction="sum")(tz, torch.tensor(y))
    tl.backward()
    assert loss == pytest.approx(tl.item(), rel=1e-12)
    np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_hand_worked_values_and_no_overflow():
    # z = 0: log 2 whatever the target; z = +-1000 with the matching target: ~0, never inf or NaN
    loss, dz = bce_with_logits(np.array([0.0, 1000.0, -1000.0, 1000.0]), np.array([1.0, 1.0, 0.0, 0.0]))
    assert loss == pytest.approx(np.log(2) + 1000.0)
    np.testing.assert_allclose(dz, [-0.5, 0.0, 0.0, 1.0])


def test_shapes_must_agree():
    with pytest.raises(ShapeError, match="targets shape"):
        bce_with_logits(np.zeros((2, 3)), np.zeros((3, 2)))
