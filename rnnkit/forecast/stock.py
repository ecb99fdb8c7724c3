"""The stock example (``rnnkit forecast stock``): backtest, final model and forecast of one price series.

:func:`stock` takes the embedded daily prices of a ticker (or your own CSV),
runs a rolling-origin backtest beside the random walk and the other baselines,
trains the final model on everything and forecasts the next ``horizon`` days.
It writes six files into ``out_dir`` (all checked before any work, all atomic; the
directory is made, if missing, only once the data and the outputs passed their checks):
``model.npz``, ``forecast.csv``, ``forecast.png``, ``backtest.png``,
``backtest_metrics.csv`` and ``loss.png``.
"""

from __future__ import annotations

import os
from typing import Dict, Optional

from ..errors import DataError, PathError
from ..io.atomic import check_outputs, check_writable
from .api import (Say, _named, _quiet, check_backtest_counts, describe, predict, read_data, run_backtest, series_info,
                  write_metrics)
from .data import load_stock
from .dates import step_words
from .estimator import RNNForecaster

__all__ = ["stock", "check_out_dir", "STOCK_DEFAULTS", "STOCK_FILES"]

# early stopping on the last 10%: without it the network learns the training period's drift
STOCK_DEFAULTS = {"lookback": 60, "horizon": 5, "epochs": 20, "transform": "log_return",
                  "validation_fraction": 0.1, "early_stopping_patience": 3}
STOCK_FILES = ("model.npz", "forecast.csv", "forecast.png", "backtest.png", "backtest_metrics.csv", "loss.png")


def check_out_dir(out_dir: str, what: str = "--out-dir") -> bool:
    """Whether ``out_dir`` exists, after checking that it is (or can be made as) a directory; creates nothing.

    A missing directory needs an existing, writable parent and a name the file
    system takes; missing parents are refused, not made (as ``--out`` refuses a
    missing folder). Every refusal is one :class:`PathError` line naming ``what``.
    """
    if not out_dir.strip():
        raise PathError(f"{what}: the path is empty; give a directory such as stock_forecast")
    if os.path.isdir(out_dir):
        return True
    if os.path.lexists(out_dir):
        raise PathError(f"{what} {out_dir}: is a file, not a directory; choose a directory")
    name = out_dir.rstrip("/" + (os.altsep or "")) or out_dir
    parent = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(parent):
        raise PathError(f"{what} {out_dir}: its parent directory {parent} does not exist; create the parent "
                        f"first (or choose another {what})")
    # the directory is made only after every check: probe its parent as a file would be (name length, write)
    check_writable(name, what, example="stock_forecast")
    return False


def stock(*, ticker: Optional[str] = None, data=None, date: str = "Date", target: Optional[str] = None,
          past_covariates=None, future_covariates=None, fill: str = "none", date_format: Optional[str] = None,
          initial: Optional[int] = None, stride: Optional[int] = None, window: str = "expanding", refit: int = 0,
          max_folds: Optional[int] = None, seasonal_period: Optional[int] = None, coverage: float = 0.9,
          out_dir="stock_forecast", say: Say = None, interval_method: str = "conformal",
          **params) -> Dict[str, str]:
    """The whole stock example (see the module docstring); returns file name -> path written.

    ``params`` are :class:`RNNForecaster` keywords over :data:`STOCK_DEFAULTS`.
    ``refit=0`` fits once on the first 70% and forecasts from every origin after it.
    ``ticker`` (default AAPL) names the embedded prices; with ``data`` (your CSV) none may be given.
    """
    say = say or _quiet
    check_backtest_counts(initial, stride, max_folds, seasonal_period)
    if ticker is not None and data is not None:
        raise DataError(f"--ticker {ticker} and --data {data} name two price series; give one (--ticker picks "
                        "the embedded prices, --data your CSV)")
    ticker = ticker or "AAPL"
    out_dir = os.fspath(out_dir)
    if future_covariates:
        raise DataError("--future-covariates: the stock example forecasts from the prices alone; use "
                        "`rnnkit forecast train` and `predict` for a model with known-future covariates")
    model = RNNForecaster(**{**STOCK_DEFAULTS, **params})
    model._check_params()
    paths = {name: os.path.join(out_dir, name) for name in STOCK_FILES}
    outputs = {f"--out-dir ({name})": p for name, p in paths.items()}
    models = tuple(flag for flag in outputs if flag.endswith(".npz)"))    # a run again in the folder: its model
    # every check before the directory is made: a refused run leaves nothing behind
    exists = check_out_dir(out_dir)
    if exists:
        check_outputs(outputs, inputs={"--data": data}, models=models)
    if data is not None:
        target = target or "Close"
        series = read_data(data, date=date, target=target, past_covariates=past_covariates,
                           future_covariates=future_covariates, fill=fill, date_format=date_format, what="--data")
    else:
        series = load_stock(ticker, target=target or "AdjClose", past_covariates=past_covariates)
        date, date_format = "Date", None
    if series.y.shape[1] != 1:
        raise DataError("--target: the stock example forecasts one price column; give a single --target")
    created = False
    if not exists:
        try:
            os.mkdir(out_dir)
            created = True
        except FileExistsError:
            pass
        except OSError as e:
            raise PathError(f"--out-dir {out_dir}: cannot create the directory ({e.strerror or e}); "
                            "choose another --out-dir") from None
    try:
        if not exists:
            check_outputs(outputs, inputs={"--data": data}, models=models)
        say(describe(series))
        result = run_backtest(series, model, horizon=model.horizon, initial=initial, stride=stride, window=window,
                              refit=refit, max_folds=max_folds, seasonal_period=seasonal_period, coverage=coverage,
                              progress=bool(model.progress), say=say, interval_method=interval_method)
        say(result.table())
        daily = series.step.kind == "bdays" or (series.step.kind == "seconds" and series.step.size == 86400)
        steps = "trading days" if series.step.kind == "bdays" else f"steps of {step_words(series.step)}"
        mm, rw = result.metrics["model"], result.metrics["naive"]
        rel = mm["rmse"] / rw["rmse"] - 1
        say(f"RMSE: model {mm['rmse']:.4g} vs random walk (naive) {rw['rmse']:.4g}: the model is {abs(rel):.1%} "
            f"{'better' if rel < 0 else 'worse'}. Directional accuracy {mm['directional_accuracy']:.1%}; a coin flip "
            f"scores about 50% and the drift line {result.metrics['drift']['directional_accuracy']:.1%} (a rising "
            "stock rewards always saying 'up').")
        say(f"{'Daily prices' if daily else 'Prices'} are close to a random walk: a forecast that does not beat the "
            "naive one is the expected outcome, not a bug; the intervals are the useful part. This is not investment "
            "advice.")
        write_metrics(paths["backtest_metrics.csv"], result, what="--out-dir")
        from .plots import plot_backtest, save_loss_curve
        plot_backtest(paths["backtest.png"], result, series.y, series.dates[:len(series.y)], label=series.target[0],
                      title=f"{series.source}: rolling-origin backtest", what="--out-dir")
        # the final model, trained on everything, and the forecast after the last day
        with _named(series):
            model.fit(series.y_1d, past_covariates=series.past, series=series_info(series, date, date_format))
        model.save(paths["model.npz"], meta={"source": series.source})
        h = model.history_
        save_loss_curve(paths["loss.png"], h.train, h.val_loss, ylabel=f"{model.head} loss", title="training loss",
                        what="--out-dir")
        table = predict(model, coverage=coverage, out=paths["forecast.csv"], interval_method=interval_method)
        from .plots import plot_forecast
        name = series.target[0]
        lower, upper = table.columns.get(f"{name}_lower"), table.columns.get(f"{name}_upper")
        future = series.step.future(series.dates[len(series.y) - 1], model.horizon)
        plot_forecast(paths["forecast.png"], series.dates[:len(series.y)], series.y[:, 0], future, table.columns[name],
                      lower, upper, coverage=coverage, label=name, title=f"{name}: {model.horizon}-step forecast",
                      show_last=120, what="--out-dir")
        say(f"next {model.horizon} {steps} after {table.last_date}: "
            + ", ".join(f"{d} {v:.2f}" for d, v in zip(table.dates, table.columns[name])))
        say(f"wrote {', '.join(paths.values())}")
    except BaseException:
        if created:                # a run that fails leaves no empty folder of its own behind
            try:
                os.rmdir(out_dir)
            except OSError:        # not empty: something was written, or the user put a file there meanwhile
                pass
        raise
    return paths
