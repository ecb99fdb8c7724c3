"""Split-conformal intervals (rnnkit.forecast.conformal): the arithmetic by hand, the finite-sample
guarantee on exchangeable scores, and coverage of fitted forecasters on series with known noise."""

import numpy as np
import pytest

from rnnkit.errors import HyperparameterError
from rnnkit.forecast import RNNForecaster
from rnnkit.forecast.conformal import calibrate, conformal_interval, conformal_quantiles, head_spread, shortfall


# -- the arithmetic ------------------------------------------------------------------
def test_interval_and_quantiles_by_hand():
    # one step, nine scores -4..4 (shuffled); centre 10, spread 2
    z = [np.array([[v] for v in (3.0, -4.0, 0.0, 1.0, -1.0, 4.0, -3.0, 2.0, -2.0)])]
    c, s = np.array([[10.0]]), np.array([[2.0]])
    # |z| sorted: 0 1 1 2 2 3 3 4 4; 90%: rank ceil(10 * 0.9) = 9 -> 4; 80%: rank 8 -> 4; 50%: rank 5 -> 2
    for cov, q in ((0.9, 4.0), (0.8, 4.0), (0.5, 2.0)):
        lo, hi = conformal_interval(c, s, z, cov)
        assert lo[0, 0] == 10 - 2 * q and hi[0, 0] == 10 + 2 * q
    # signed: tau 0.9 -> ceil(9) = 9th = 4; tau 0.1 -> floor(1) = 1st = -4; 0.5 -> ceil(5) = 5th = 0; 0.7 -> 7th = 2
    q = conformal_quantiles(c, s, z, [0.1, 0.5, 0.7, 0.9])
    np.testing.assert_array_equal(q[0, :, 0], [10 - 8, 10, 10 + 4, 10 + 8])
    assert shortfall(z, 0.9) == [] and shortfall(z, 0.95) == [1]        # ceil(10 * 0.95) = 10 > 9 scores


def test_scores_come_from_every_origin_and_step():
    seen = []

    def forecast_at(o, steps):
        seen.append((o, steps))
        actual = np.arange(o, o + steps, dtype=float)[:, None]             # y_t = t
        return actual, actual - 1.0, np.full((steps, 1), 0.5)               # every residual is 1

    scores = calibrate(forecast_at, 10, 6, 3, 1, full_horizon=False)
    assert seen == [(6, 3), (7, 3), (8, 2), (9, 1)]
    assert [len(z) for z in scores] == [4, 3, 2] and all(np.all(z == 2.0) for z in scores)
    seen.clear()
    assert [len(z) for z in calibrate(forecast_at, 10, 6, 3, 1, full_horizon=True)] == [2, 2, 2]
    np.testing.assert_array_equal(head_spread(np.ones((2, 1)), None), np.ones((2, 1)))


def test_guarantee_on_exchangeable_scores():
    # the promise itself: with n exchangeable scores the next one falls inside with probability in
    # [1 - alpha, 1 - alpha + 1 / (n + 1)]; 20,000 draws give a standard error of 0.002
    rng = np.random.default_rng(0)
    n, trials = 19, 20_000
    for cov in (0.8, 0.9):
        hits = 0
        for _ in range(trials):
            z = rng.standard_t(3, size=n + 1)
            lo, hi = conformal_interval(np.zeros((1, 1)), np.ones((1, 1)), [z[:n, None]], cov)
            hits += lo[0, 0] <= z[n] <= hi[0, 0]
        assert cov - 0.01 <= hits / trials <= cov + 1 / (n + 1) + 0.01


# -- fitted forecasters on series with known noise ------------------------------------
N_FIT, N_TEST, STRIDE, H = 3000, 1200, 2, 3
TOL = 0.04       # 600 calibration scores per step: the coverage's standard deviation is about 0.012


def _series(noise: str, rng) -> np.ndarray:
    t = np.arange(N_FIT + N_TEST)
    season = 10 + 2 * np.sin(2 * np.pi * t / 12)
    if noise == "gaussian":
        e = 0.5 * rng.standard_normal(len(t))
    elif noise == "heavy_tailed":
        e = 0.4 * rng.standard_t(3, size=len(t))                           # Student t, 3 degrees of freedom
    else:                                                                   # heteroscedastic: sd 0.2 .. 1.0 by season
        e = (0.2 + 0.8 * (1 + np.sin(2 * np.pi * t / 12 + 1)) / 2) * rng.standard_normal(len(t))
    return season + e


CONFIGS = {"recursive_gaussian": dict(strategy="recursive", head="gaussian", n_samples=50),
           "direct_gaussian": dict(strategy="direct", head="gaussian"),
           "direct_quantile": dict(strategy="direct", head="quantile", quantiles=(0.05, 0.1, 0.5, 0.9, 0.95))}


@pytest.fixture(scope="module")
def coverages():
    """Coverage of the conformal and the head's intervals, at 80% and 90%, for every noise and model:
    each model is fitted once (tiny, 2 epochs) on the first N_FIT values (the last 20% of them
    calibrate) and forecasts H steps from every STRIDE-th origin of the next N_TEST values."""
    out = {}
    for i, noise in enumerate(("gaussian", "heavy_tailed", "heteroscedastic")):
        y = _series(noise, np.random.default_rng(100 + i))
        for name, cfg in CONFIGS.items():
            model = RNNForecaster(lookback=12, horizon=H, hidden_size=4, epochs=2, batch_size=64,
                                  random_state=0, **cfg).fit(y[:N_FIT])
            hits = {(m, c): [] for m in ("conformal", "head") for c in (0.8, 0.9)}
            for o in range(N_FIT, N_FIT + N_TEST - H + 1, STRIDE):
                actual = y[o:o + H]
                for (m, c), h in hits.items():
                    lo, hi = model.predict_interval(c, H, y=y[:o], method=m)
                    h.append((lo <= actual) & (actual <= hi))
            out[noise, name] = {key: float(np.mean(h)) for key, h in hits.items()}
            out[noise, name]["n"] = len(hits["conformal", 0.9]) * H
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("noise", ["gaussian", "heavy_tailed", "heteroscedastic"])
def test_calibrated_intervals_keep_their_coverage(coverages, noise, name):
    cov = coverages[noise, name]
    assert cov["n"] == 1797                              # 599 origins x 3 steps behind each figure
    for c in (0.8, 0.9):
        assert abs(cov["conformal", c] - c) <= TOL, (c, cov)


def test_uncalibrated_intervals_miss(coverages):
    # the tiny networks' own intervals are mostly off where the same models' conformal ones are not (above)
    off = {key: max(abs(cov["head", c] - c) for c in (0.8, 0.9)) for key, cov in coverages.items()}
    print({k: round(v, 3) for k, v in off.items()})
    assert sum(v > TOL for v in off.values()) >= 7, off
    assert max(off.values()) > 2 * TOL, off


# -- the method switch ----------------------------------------------------------------
def test_method_names_and_a_model_without_calibration():
    y = 10 + np.sin(np.arange(120) / 2)
    f = RNNForecaster(lookback=6, hidden_size=4, epochs=1, calibration_fraction=0).fit(y)
    assert f.calibration_ is None
    with pytest.raises(HyperparameterError, match="--calibration-fraction above 0.*--interval-method head"):
        f.predict_interval(0.9)
    lo, hi = f.predict_interval(0.9, method="head")
    assert np.all(lo < hi)
    with pytest.raises(HyperparameterError, match="--interval-method"):
        f.predict_interval(0.9, method="bootstrap")
    g = RNNForecaster(lookback=6, horizon=4, hidden_size=4, epochs=1, head="point").fit(y)
    assert [len(z) for z in g.calibration_] == [24, 23, 22, 21]          # 24 held-out values, 4 steps
    lo, hi = g.predict_interval(0.9)                                      # a point head gets conformal ones
    mean = g.predict(4)
    np.testing.assert_allclose((lo + hi) / 2, mean)
    q = g.predict_quantiles([0.1, 0.5, 0.9])
    assert q.shape == (4, 3) and np.all(np.diff(q, axis=1) >= 0)


@pytest.mark.parametrize("method", ["conformal", "head"])
def test_quantiles_come_back_in_the_order_asked(method):
    # [0.9, 0.1] came back as [0.1, 0.9]: the sktime adapter labelled the 0.1 quantile "0.9"
    y = np.sin(np.arange(80) / 3) + np.arange(80) / 20
    m = RNNForecaster(lookback=8, hidden_size=4, epochs=2, progress=False, random_state=0).fit(y)
    up = m.predict_quantiles([0.1, 0.5, 0.9], horizon=3, method=method)                   # (3, 3)
    asked = m.predict_quantiles([0.9, 0.1, 0.5, 0.9], horizon=3, method=method)
    np.testing.assert_array_equal(asked, up[:, [2, 0, 1, 2]])
    assert np.all(up[:, 0] < up[:, 2])
