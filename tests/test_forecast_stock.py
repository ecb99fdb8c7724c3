"""The embedded stock data (bokeh_sampledata, a test dependency) and the `rnnkit forecast stock` example."""

import numpy as np
import pytest

from rnnkit.cli.main import main

pytest.importorskip("bokeh_sampledata")


def test_embedded_prices():
    from rnnkit.forecast.data import load_stock

    s = load_stock("msft")
    assert s.y.shape == (3270, 1) and s.target == ["AdjClose"]
    assert s.format_date(s.dates[0]) == "2000-03-01" and s.step.kind == "bdays"
    assert np.all(s.y > 0)
    s = load_stock("IBM", target="Close", past_covariates="Volume")
    assert s.past.shape == (3270, 1)


def test_stock_command_runs_end_to_end(tmp_path, capsys):
    code = main(["forecast", "stock", "--ticker", "IBM", "--lookback", "10", "--hidden-size", "4", "--epochs", "1",
                 "--max-folds", "3", "--out-dir", str(tmp_path), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in out + err
    assert "random walk (naive)" in out and "Directional accuracy" in out
    for name in ("model.npz", "forecast.csv", "forecast.png", "backtest.png", "backtest_metrics.csv", "loss.png"):
        assert (tmp_path / name).stat().st_size > 0
    code = main(["forecast", "stock", "--ticker", "XYZ"])
    assert code == 2
