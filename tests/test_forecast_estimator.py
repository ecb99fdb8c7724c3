"""RNNForecaster: the estimator contract, what it learns, forecast shapes, intervals, persistence."""

import numpy as np
import pytest

from rnnkit.errors import DataError, ModelFileError, NotFittedError
from rnnkit.forecast import RNNForecaster

SMALL = dict(hidden_size=8, epochs=3, random_state=0)


def _sine(T=300, period=25):
    return np.sin(2 * np.pi * np.arange(T) / period)


# -- the scikit-learn contract ----------------------------------------------------
def test_sklearn_clone_and_params_round_trip():
    sklearn_base = pytest.importorskip("sklearn.base")
    f = RNNForecaster(lookback=7, quantiles=(0.1, 0.5, 0.9), random_state=3)
    params = f.get_params()
    assert params["lookback"] == 7 and params["quantiles"] == (0.1, 0.5, 0.9)
    g = sklearn_base.clone(f)
    assert g is not f and g.get_params() == params
    assert g.set_params(hidden_size=5) is g and g.hidden_size == 5
    with pytest.raises(ValueError, match="invalid parameter 'hiden_size'"):
        g.set_params(hiden_size=5)
    assert "lookback=7" in repr(f)


def test_init_does_no_work_and_fit_returns_self():
    f = RNNForecaster(lookback=-3, cell="nope")          # stored verbatim, checked in fit
    assert f.lookback == -3 and not hasattr(f, "net_")
    with pytest.raises(ValueError, match=r"lookback \(--lookback\) must be .*got -3"):
        f.fit(_sine(50))
    g = RNNForecaster(lookback=5, **SMALL)
    assert g.fit(_sine(50)) is g
    assert all(hasattr(g, a) for a in ("net_", "scaler_", "history_", "n_targets_"))


def test_predict_before_fit_is_a_clear_error():
    with pytest.raises(NotFittedError, match="not fitted yet: call fit"):
        RNNForecaster().predict(3)


@pytest.mark.parametrize("kw,match", [
    (dict(strategy="sideways"), "strategy"), (dict(head="quantile"), "--head quantile needs --strategy direct"),
    (dict(head="quantile", strategy="direct", quantiles=(0.6, 0.9)), "both sides of 0.5"),
    (dict(transform="sqrt"), "transform"), (dict(validation_fraction=0.7), "validation_fraction")])
def test_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        RNNForecaster(lookback=5, **kw).fit(_sine(60))


def test_bad_data():
    f = RNNForecaster(lookback=20, horizon=5, **SMALL)
    with pytest.raises(DataError, match="too short for lookback 20 \\+ horizon 5"):
        f.fit(_sine(24))
    y = _sine(60)
    y[[7, 9]] = np.nan
    with pytest.raises(DataError, match="rows 7 and 9"):
        f.fit(y)
    y[[7, 9]] = [0, np.inf]
    with pytest.raises(DataError, match="infinite"):
        f.fit(y)
    with pytest.raises(DataError, match="expected numbers"):
        f.fit(np.array(["a"] * 60))
    with pytest.raises(DataError, match="expected 60 rows"):
        f.fit(_sine(60), past_covariates=np.zeros((59, 1)))


def test_same_seed_same_forecast():
    a = RNNForecaster(lookback=5, **SMALL).fit(_sine(60)).predict_interval(0.8, 4)
    b = RNNForecaster(lookback=5, **SMALL).fit(_sine(60)).predict_interval(0.8, 4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# -- what it learns ------------------------------------------------------------------
@pytest.mark.parametrize("strategy,head", [("recursive", "point"), ("direct", "gaussian")])
def test_noiseless_sine_is_learned(strategy, head):
    y = _sine(320)
    f = RNNForecaster(lookback=30, horizon=10, strategy=strategy, head=head, epochs=40, random_state=0)
    f.fit(y[:300])
    err = np.abs(f.predict(10) - y[300:310]).max()
    assert err < 0.06, f"max error {err:.3f} on a unit sine"


def test_linear_trend_is_learned():
    t = np.arange(130, dtype=float)
    y = 2.0 + 0.5 * t
    f = RNNForecaster(lookback=10, horizon=10, transform="diff", head="point", epochs=20, random_state=0,
                      calibration_fraction=0)
    f.fit(y[:120])
    np.testing.assert_allclose(f.predict(10), y[120:], atol=0.05)   # 0.5 per step, 1% of a step


# -- shapes, strategies and covariates -----------------------------------------------
@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_forecast_lengths(strategy):
    y = _sine(80) + 3
    f = RNNForecaster(lookback=8, horizon=6, strategy=strategy, **SMALL).fit(y)
    assert f.predict().shape == (6,)
    assert f.predict(4).shape == (4,)
    assert f.predict_quantiles([0.1, 0.5, 0.9], 4).shape == (4, 3)
    lo, hi = f.predict_interval(0.9, 6)
    assert lo.shape == hi.shape == (6,) and np.all(lo <= hi)
    if strategy == "recursive":
        assert f.predict(15).shape == (15,)              # any horizon
    else:
        with pytest.raises(ValueError, match="trained for 6 steps"):
            f.predict(7)
    # forecasting from another history: at least lookback values
    assert f.predict(3, y=y[:30]).shape == (3,)
    with pytest.raises(DataError, match="at least the model's --lookback 8"):
        f.predict(3, y=y[:5])


@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_multivariate_targets_and_covariates(strategy):
    T = 90
    rng = np.random.default_rng(0)
    y = np.stack([_sine(T) + 2, np.cos(np.arange(T) / 3) + 2], axis=1)
    past = rng.normal(size=(T, 2))
    future = (np.arange(T + 5) % 7 == 0).astype(float)[:, None]
    f = RNNForecaster(lookback=6, horizon=5, strategy=strategy, **SMALL)
    f.fit(y, past_covariates=past, future_covariates=future[:T])
    out = f.predict(5, future_covariates=future[T:])
    assert out.shape == (5, 2)
    assert f.predict_quantiles([0.25, 0.75], 5, future_covariates=future[T:]).shape == (5, 2, 2)
    out2 = f.predict(5, y=y[:50], past_covariates=past[:50], future_covariates=future[:55])
    assert out2.shape == (5, 2)
    with pytest.raises(ValueError, match="known-future covariate"):
        f.predict(5)
    with pytest.raises(DataError, match="expected 5 rows"):
        f.predict(5, future_covariates=future[T:T + 4])


def test_quantile_head_intervals():
    y = _sine(120) + 0.1 * np.random.default_rng(0).normal(size=120)
    f = RNNForecaster(lookback=10, horizon=4, strategy="direct", head="quantile", quantiles=(0.05, 0.5, 0.95),
                      hidden_size=8, epochs=10, random_state=0).fit(y)
    q = f.predict_quantiles([0.05, 0.25, 0.5, 0.75, 0.95])
    assert np.all(np.diff(q, axis=1) >= 0)                              # never cross
    with pytest.raises(ValueError, match="trained with --quantiles 0.05,0.5,0.95 .* lower --coverage"):
        f.predict_interval(0.99, method="head")
    lo, hi = f.predict_interval(0.99)             # the conformal interval may reach beyond the trained levels
    assert np.all(hi > lo)
    with pytest.raises(ValueError, match="has --head point .* --head gaussian"):
        RNNForecaster(lookback=5, head="point", **SMALL).fit(y).predict_interval(0.9, method="head")


@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_intervals_widen_with_the_horizon_on_a_random_walk(strategy):
    rng = np.random.default_rng(0)
    y = 100 + np.cumsum(rng.normal(size=600))
    f = RNNForecaster(lookback=10, horizon=10, strategy=strategy, transform="diff", hidden_size=8,
                      epochs=30, n_samples=400, random_state=0).fit(y)
    lo, hi = f.predict_interval(0.9, 10)
    width = hi - lo
    assert width[-1] > 2 * width[0], width                  # sqrt(10) ~ 3.2 for a random walk
    assert np.all(np.diff(width[[0, 3, 6, 9]]) > 0), width
    # a one-step 90% interval of a unit-variance walk is about 2 * 1.645 wide
    assert 2.0 < width[0] < 5.5


# -- persistence ------------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path):
    y = np.exp(_sine(80) * 0.2) * 10
    f = RNNForecaster(lookback=6, horizon=3, transform="log_return", **SMALL).fit(y)
    path = tmp_path / "m.npz"
    f.save(path, meta={"target": ["y"]})
    g = RNNForecaster.load(path)
    assert g.get_params() == f.get_params() and g.meta_ == {"target": ["y"]}
    np.testing.assert_array_equal(f.predict(5), g.predict(5))
    np.testing.assert_array_equal(f.predict_interval(0.8)[1], g.predict_interval(0.8)[1])
    assert g.history_.steps == f.history_.steps
    with open(path, "rb") as fh:
        assert b"pickle" not in fh.read(200)
    bad = tmp_path / "x.npz"
    bad.write_text("not a model")
    with pytest.raises(ModelFileError):
        RNNForecaster.load(bad)
