"""Interval scores by hand, the baselines' residual intervals, interval scoring in every backtest, and the
settings `forecast train | backtest` choose from the data (they beat seasonal naive on trend + season)."""

import os

import numpy as np
import pytest

from rnnkit.forecast import RNNForecaster, api, backtest
from rnnkit.forecast import metrics as M
from rnnkit.forecast.baselines import baseline_intervals
from rnnkit.forecast.defaults import data_defaults, is_multiplicative


# -- interval scores ---------------------------------------------------------------------
def test_interval_scores_by_hand():
    y = np.array([1.0, 5.0, 10.0])
    lo, hi = np.array([0.0, 0.0, 0.0]), np.array([2.0, 4.0, 12.0])
    # widths 2, 4, 12; 5 misses above by 1: alpha 0.2 adds 2 / 0.2 * 1 = 10
    assert M.interval_width(lo, hi) == pytest.approx(6.0)
    assert M.interval_score(y, lo, hi, 0.8) == pytest.approx((2 + 14 + 12) / 3)
    # pinball at 0.1 of q = 0: e = 1, 5, 10 -> 0.1 e; at 0.9 of q = hi: e = -1, 1, -2 -> 0.1, 0.9, 0.2
    assert M.pinball_loss(y, {0.1: lo, 0.9: hi}) == pytest.approx((1.6 / 3 + 1.2 / 3) / 2)
    out = M.interval_metrics(y, {0.8: (lo, hi)})
    assert out["coverage_80"] == pytest.approx(2 / 3) and out["winkler_80"] == pytest.approx(28 / 3)
    assert out["pinball"] == pytest.approx(M.pinball_loss(y, {0.1: lo, 0.9: hi}))


def test_baseline_intervals_by_hand():
    y = np.array([1.0, 3.0, 2.0, 4.0, 3.0])              # one-step changes 2, -1, 2, -1: rms sqrt(2.5)
    iv = baseline_intervals(y, 3, 2, [0.9])
    z = 1.6448536269514722
    lo, hi = iv["naive"][0.9]
    np.testing.assert_allclose(hi[:, 0] - 3.0, z * np.sqrt(2.5) * np.sqrt([1, 2, 3]))
    np.testing.assert_allclose(lo[:, 0], 6.0 - hi[:, 0])
    # seasonal naive m = 2: changes 1, 1, 1 -> sigma 1; steps 1, 2 -> sqrt(1), 3 -> sqrt(2)
    lo, hi = iv["seasonal_naive"][0.9]
    np.testing.assert_allclose((hi - lo)[:, 0] / 2, z * np.array([1, 1, np.sqrt(2)]))


def test_every_backtest_scores_the_intervals_of_the_model_and_the_baselines():
    rng = np.random.default_rng(1)
    y = np.cumsum(rng.normal(size=90)) + 50
    res = backtest(RNNForecaster(lookback=5, hidden_size=4, epochs=2, random_state=0), y, horizon=4,
                   initial=60, stride=4, seasonal_period=4, interval_method=("conformal", "head"))
    assert res.methods == ["model", "model_head", "naive", "seasonal_naive", "drift"]
    for name in res.methods:
        mt = res.metrics[name]
        for key in ("coverage_80", "width_80", "winkler_80", "coverage_90", "width_90", "winkler_90", "pinball"):
            assert np.isfinite(mt[key]), (name, key)
        assert mt["coverage"] == mt["coverage_90"] and mt["width_80"] < mt["width_90"]
    # the model row's intervals are the conformal ones, the extra row the head's: not the same
    assert res.metrics["model"]["width_90"] != res.metrics["model_head"]["width_90"]
    assert res.metrics["model"]["mase"] == res.metrics["model_head"]["mase"]
    fold = res.folds[-1]
    lo, hi = fold.intervals["model"][0.9]
    np.testing.assert_array_equal(lo, fold.lower)
    text = res.table()
    assert "winkler_90" in text and "model_head" in text


# -- settings from the data -----------------------------------------------------------------
def _trend_season(n=300, seed=0):
    t = np.arange(n)
    return 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(seed).normal(0, 0.5, n)


def test_settings_chosen_from_the_data():
    y = _trend_season()
    got = data_defaults(y[:204], 12, {"horizon": 12})
    assert got == {"horizon": 12, "lookback": 24, "strategy": "direct", "transform": "diff",
                   "validation_fraction": 0.1}
    # a given setting is kept; a short series gets a shorter lookback and a longer validation part
    assert data_defaults(y[:204], 12, {"horizon": 12, "lookback": 30, "transform": "level"})["lookback"] == 30
    short = data_defaults(y[:60], 12, {"horizon": 12})
    assert short["lookback"] == 7 and short["validation_fraction"] == 0.22
    # multiplicative seasonality (a swing that grows with the level) -> log returns
    t = np.arange(144)
    grows = (100 + 2 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 12))
    assert is_multiplicative(grows, 12) and not is_multiplicative(y, 12)
    # with few seasons noise can fake a growing swing: about 3% of additive 120-value series (10 seasons)
    assert sum(is_multiplicative(_trend_season(120, seed), 12) for seed in range(100)) <= 6
    assert not is_multiplicative(grows - 150, 12)                             # not all positive
    assert data_defaults(grows, 12, {"horizon": 3})["transform"] == "log_return"


def _csv(tmp_path, y):
    path = os.path.join(tmp_path, "series.csv")
    with open(path, "w") as f:
        f.write("Month,Value\n")
        f.writelines(f"{2000 + i // 12:04d}-{i % 12 + 1:02d},{v:.4f}\n" for i, v in enumerate(y))
    return path


def test_default_settings_beat_seasonal_naive_on_trend_plus_season(tmp_path):
    # the series: 300 monthly values, linear trend, yearly sine, Gaussian noise; only the horizon
    # is given, as `rnnkit forecast backtest series.csv --date Month --target Value --horizon 12 --max-folds 8`
    said = []
    res = api.backtest(_csv(tmp_path, _trend_season()), date="Month", target="Value", horizon=12, max_folds=8,
                       progress=False, say=said.append)
    assert "settings from the data: --lookback 24, --strategy direct, --transform diff" in said[1]
    assert len(res.folds) == 7
    mase = {m: res.metrics[m]["mase"] for m in res.methods}
    assert mase["model"] < mase["seasonal_naive"], mase
    assert 0.8 <= res.metrics["model"]["coverage_90"] <= 1.0


def test_cli_interval_method(tmp_path, capsys):
    from rnnkit.cli.main import main
    data, model = _csv(tmp_path, _trend_season(240)), os.path.join(tmp_path, "m.npz")
    fast = ["--date", "Month", "--target", "Value", "--hidden-size", "4", "--epochs", "1", "--no-progress"]
    assert main(["forecast", "train", data, "--out", model, "--calibration-fraction", "0"] + fast) == 0
    capsys.readouterr()
    assert main(["forecast", "predict", model, "--horizon", "2", "--interval-method", "conformal"]) == 2
    err = capsys.readouterr().err                                             # conformal, but none calibrated
    assert "--interval-method head" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["forecast", "predict", model, "--horizon", "2", "--interval-method", "head"]) == 0
    assert "with 90% intervals" in capsys.readouterr().out
    assert main(["forecast", "train", data, "--out", model, "--horizon", "3"] + fast) == 0
    out = capsys.readouterr().out
    assert "settings from the data: --lookback 24, --strategy direct, --transform diff" in out
    assert main(["forecast", "predict", model]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["date", "Value", "Value_lower", "Value_upper"]
    mid, lo, hi = (float(v) for v in lines[2].split()[1:])
    assert lo < mid < hi
