"""Metrics and baselines by hand, rolling-origin splits, and a backtest that cannot leak the future."""

import numpy as np
import pytest

from rnnkit.errors import DataError
from rnnkit.forecast import RNNForecaster, backtest, drift, naive, rolling_origin_splits, seasonal_naive
from rnnkit.forecast import metrics as M


def test_metrics_by_hand():
    y, p = np.array([1.0, 2.0, 0.0, 4.0]), np.array([2.0, 2.0, 1.0, 2.0])
    assert M.mse(y, p) == pytest.approx((1 + 0 + 1 + 4) / 4)
    assert M.rmse(y, p) == pytest.approx(np.sqrt(1.5))
    assert M.mae(y, p) == pytest.approx(1.0)
    # MAPE leaves out the zero actual: (1/1 + 0/2 + 2/4) / 3
    assert M.mape(y, p) == pytest.approx(100 * 1.5 / 3)
    assert np.isnan(M.mape([0.0, 0.0], [1.0, 2.0]))
    # sMAPE: 2|e|/(|y|+|p|): 2/3, 0, 2/1, 4/6; both-zero counts 0
    assert M.smape(y, p) == pytest.approx(100 * (2 / 3 + 0 + 2 + 2 / 3) / 4)
    assert M.smape([0.0], [0.0]) == 0.0
    # MASE: in-sample seasonal naive m=2 on [1, 2, 4, 6]: |4-1|, |6-2| -> 3.5
    assert M.mase(y, p, [1.0, 2.0, 4.0, 6.0], m=2) == pytest.approx(1.0 / 3.5)
    with pytest.raises(DataError, match="lag 1"):
        M.mase(y, p, [5.0, 5.0, 5.0])
    # direction from origin 2: actual moves -, +, +, forecast moves 0, -, +, + -> 2 of 3 counted agree
    assert M.directional_accuracy([1.0, 3.0, 3.0, 1.0], [2.0, 1.0, 4.0, 5.0], 2.0) == pytest.approx(1 / 3)
    assert M.coverage(y, y - 1, y + 0.5) == 1.0 and M.coverage(y, y + 0.1, y + 1) == 0.0


def test_baselines_by_hand():
    y = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 4.0])
    np.testing.assert_array_equal(naive(y, 3), [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(seasonal_naive(y, 4, m=3), [20.0, 30.0, 4.0, 20.0])
    np.testing.assert_allclose(drift(y, 2), [4.5, 5.0])                 # slope (4 - 1) / 6
    y2 = np.stack([y, 2 * y], axis=1)
    assert seasonal_naive(y2, 5, m=3).shape == (5, 2)


def test_rolling_origin_splits():
    assert rolling_origin_splits(10, initial=5, horizon=2, stride=2) == [(0, 5), (0, 7)]
    assert rolling_origin_splits(10, initial=5, horizon=2, stride=1, window="sliding") == \
        [(0, 5), (1, 6), (2, 7), (3, 8)]
    assert rolling_origin_splits(10, initial=5, horizon=2, max_folds=1) == [(0, 8)]
    with pytest.raises(DataError, match="fewer than --initial 5 \\+ --horizon 2; lower --initial"):
        rolling_origin_splits(6, initial=5, horizon=2)


class Spy:
    """A forecaster that records everything it is shown and forecasts the mean of its history."""

    seen = []

    def __init__(self, head="point"):
        self.head = head

    def get_params(self, deep=False):
        return {"head": self.head}

    def fit(self, y, past_covariates=None, future_covariates=None):
        Spy.seen.append(("fit", np.max(y), None if past_covariates is None else np.max(past_covariates),
                         None if future_covariates is None else len(future_covariates)))
        return self

    def predict(self, horizon, y=None, past_covariates=None, future_covariates=None):
        Spy.seen.append(("predict", np.max(y), np.max(past_covariates), len(future_covariates) - len(y)))
        return np.full(horizon, np.mean(y))


@pytest.mark.parametrize("window,refit", [("expanding", True), ("sliding", 2), ("expanding", False)])
def test_backtest_shows_the_model_only_the_past(window, refit):
    n = 40
    y = np.arange(n, dtype=float)                # y_t = t: the largest value seen tells how far one looked
    past = np.arange(n, dtype=float)[:, None]
    future = np.arange(n, dtype=float)[:, None]
    Spy.seen = []
    res = backtest(Spy(), y, horizon=3, initial=20, stride=4, window=window, refit=refit,
                   past_covariates=past, future_covariates=future)
    predicts = [s for s in Spy.seen if s[0] == "predict"]
    for fold, (_, ymax, pmax, n_future) in zip(res.folds, predicts):
        assert ymax == fold.origin - 1 and pmax == fold.origin - 1    # nothing from the origin on
        assert n_future == 3                                           # known-future rows of the horizon only
    for _, ymax, pmax, nf in (s for s in Spy.seen if s[0] == "fit"):
        assert ymax < res.folds[-1].origin and nf is not None
    if refit is False:
        assert sum(s[0] == "fit" for s in Spy.seen) == 1


def test_backtest_of_the_rnn_is_blind_to_the_future():
    """Changing every value from index 30 on must not change any forecast made from an origin <= 30."""
    rng = np.random.default_rng(0)
    t = np.arange(50)
    a = 10 + np.sin(2 * np.pi * t / 8) + 0.1 * rng.normal(size=50)
    b = a.copy()
    b[30:] = 1e3 * rng.normal(size=20)           # wild future: any leak through scaling or training shows
    f = RNNForecaster(lookback=6, horizon=3, hidden_size=6, epochs=3, random_state=0)
    ra = backtest(f, a, horizon=3, initial=20, stride=5, refit=True)
    rb = backtest(f, b, horizon=3, initial=20, stride=5, refit=True)
    checked = 0
    for fa, fb in zip(ra.folds, rb.folds):
        if fa.origin <= 30:
            np.testing.assert_array_equal(fa.forecasts["model"], fb.forecasts["model"])
            np.testing.assert_array_equal(fa.lower, fb.lower)
            checked += 1
        else:
            assert not np.array_equal(fa.forecasts["model"], fb.forecasts["model"])
    assert checked == 3


def test_backtest_table_reports_the_baselines():
    rng = np.random.default_rng(1)
    y = np.cumsum(rng.normal(size=60)) + 50
    res = backtest(RNNForecaster(lookback=5, hidden_size=4, epochs=2, random_state=0), y, horizon=4,
                   initial=40, stride=4, seasonal_period=4)
    assert res.methods == ["model", "naive", "seasonal_naive", "drift"]
    text = res.table()
    for word in ("model", "naive", "seasonal_naive", "drift", "mase", "coverage"):
        assert word in text
    assert np.isnan(res.metrics["naive"]["directional_accuracy"])     # the naive forecast never moves
    assert 0 <= res.metrics["model"]["coverage"] <= 1
    assert res.per_horizon("model").shape == (4,)
