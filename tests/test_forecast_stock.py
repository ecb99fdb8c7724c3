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
    again = main(["forecast", "stock", "--ticker", "IBM", "--lookback", "10", "--hidden-size", "4", "--epochs", "1",
                  "--max-folds", "3", "--out-dir", str(tmp_path), "--no-progress"])
    assert again == 0, capsys.readouterr().err       # a second run into the folder replaces its own model
    code = main(["forecast", "stock", "--ticker", "XYZ"])
    assert code == 2


def test_ticker_and_data_together_are_refused_before_any_work(tmp_path, capsys):
    """--ticker was silently ignored when --data was given."""
    data = tmp_path / "p.csv"
    data.write_text("Date,Close\n" + "".join(f"2020-01-{d:02d},{100 + d}\n" for d in range(1, 29)))
    out = tmp_path / "out"
    code = main(["forecast", "stock", "--ticker", "IBM", "--data", str(data), "--out-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not out.exists(), err
    assert f"--ticker IBM and --data {data} name two price series; give one" in err, err


def test_stock_on_monthly_data_speaks_of_steps_not_trading_days(tmp_path, capsys):
    data = tmp_path / "m.csv"
    data.write_text("Date,Close\n" + "".join(f"{2010 + i // 12}-{i % 12 + 1:02d}-01,{100 + (i * 7) % 13 + i}\n"
                                              for i in range(60)))
    code = main(["forecast", "stock", "--data", str(data), "--out-dir", str(tmp_path / "out"), "--lookback", "6",
                 "--hidden-size", "4", "--epochs", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "next 5 steps of 1 month after 2014-12-01: 2015-01-01" in out, out
    assert "trading days" not in out and "Daily prices" not in out
