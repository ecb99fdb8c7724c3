"""Scaling: fitted on the training part only, and exactly invertible for every transform and scaler."""

import numpy as np
import pytest

from rnnkit.errors import DataError
from rnnkit.forecast.scaling import SCALERS, TRANSFORMS, SeriesScaler
from rnnkit.forecast.windows import direct_targets, direct_windows, recursive_windows, stack_inputs


def _prices(T=60, k=2, seed=0):
    rng = np.random.default_rng(seed)
    return 50.0 * np.exp(np.cumsum(rng.normal(0, 0.02, size=(T, k)), axis=0))


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
@pytest.mark.parametrize("scaler", SCALERS)
def test_inverse_is_exact(transform, scaler):
    y = _prices()
    s = SeriesScaler(transform, scaler).fit(y[:40])
    u = s.scale(y)
    back = s.inverse(u, first_level=y[0])
    np.testing.assert_allclose(back, y, rtol=1e-13, atol=0)


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_to_levels_inverts_forecast_targets(transform):
    """The cumulative scaled changes a direct model is trained on map back to the true future levels."""
    y = _prices()
    s = SeriesScaler(transform, "minmax").fit(y[:40])
    u = s.scale(y)
    d = s.order
    origin = 39 - d                                  # grid index of level time 39
    c = direct_targets(u, np.array([origin]), 5, d)[0]                # (H, k)
    np.testing.assert_allclose(s.to_levels(c, y[39]), y[40:45], rtol=1e-13)
    # with an extra quantile axis the same map applies to each quantile
    cq = np.stack([c, c + 0.1], axis=1)                               # (H, 2, k)
    lv = s.to_levels(cq, y[39])
    np.testing.assert_allclose(lv[:, 0], y[40:45], rtol=1e-13)
    assert np.all(lv[:, 1] > lv[:, 0])                                # increasing in c


def test_fitted_on_training_part_only():
    y = np.concatenate([np.linspace(0, 1, 50), np.full(10, 1e6)])[:, None]
    s = SeriesScaler("level", "minmax").fit(y[:50])
    assert s.a[0] == 0.0 and s.b[0] == 1.0
    s2 = SeriesScaler("level", "standard").fit(y[:50])
    assert s2.a[0] == pytest.approx(0.5) and s2.b[0] == pytest.approx(np.std(np.linspace(0, 1, 50)))


def test_constant_and_nonpositive_errors():
    with pytest.raises(DataError, match="constant"):
        SeriesScaler("level", "standard").fit(np.full((10, 1), 3.0))
    s = SeriesScaler("level", "standard").fit(np.full((10, 1), 3.0), constant_ok=True)
    assert s.b[0] == 1.0
    with pytest.raises(DataError, match=r"y: column 0, row 2: the value 0 is <= 0, but --transform log"):
        SeriesScaler("log", "standard").fit(np.array([[1.0], [2.0], [0.0], [3.0]]))
    with pytest.raises(ValueError, match="transform"):
        SeriesScaler("logdiff")


def test_windows_targets_lie_after_inputs():
    n, L, H = 12, 4, 3
    u = np.arange(n, dtype=float)[:, None]                # u_s = s reveals every index
    X = stack_inputs(u, None, None)
    xi, tg = recursive_windows(X, u, L)
    assert xi.shape == (L, n - L, 1) and tg.shape == (L, n - L, 1)
    np.testing.assert_array_equal(tg[..., 0], xi[..., 0] + 1)     # each target is the next step
    xi, fut, tg = direct_windows(X, u, None, L, H, order=0)
    assert fut is None and tg.shape == (n - L - H + 1, H, 1)
    np.testing.assert_array_equal(tg[:, :, 0], xi[-1, :, 0][:, None] + np.arange(1, H + 1))
    # known-future covariates are shifted: the input of step s carries f_{s+1}
    f = 100 + np.arange(n + 2, dtype=float)[:, None]
    X = stack_inputs(u, None, f)
    assert X.shape == (n, 2) and np.all(X[:, 1] == 101 + np.arange(n))
