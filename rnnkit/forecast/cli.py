"""``rnnkit forecast train | predict | backtest | stock``: the command line over :mod:`rnnkit.forecast`.

Flags carry the names of :class:`RNNForecaster`'s keyword arguments (``--lookback``,
``--hidden-size``, ...), ``--seed`` sets ``random_state``. Data flags
(``--date``, ``--target``, ``--past-covariates``, ``--future-covariates``,
``--fill``, ``--date-format``) are those of :func:`read_series_csv`. User
mistakes raise :class:`DataError`/``ValueError``; the shell prints them and exits 2.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from typing import Optional

import numpy as np

from ..errors import DataError
from ..io.modelfile import check_writable
from .backtest import backtest
from .data import FILL_POLICIES, STOCK_TICKERS, SeriesData, load_stock, read_series_csv, write_forecast_csv
from .dates import DateStep
from .estimator import RNNForecaster
from .heads import HEADS
from .model import CELLS
from .scaling import SCALERS, TRANSFORMS

__all__ = ["register"]

MODEL_FLAGS = ("lookback", "horizon", "strategy", "cell", "hidden_size", "num_layers", "dropout", "head",
               "quantiles", "transform", "scaler", "epochs", "batch_size", "learning_rate", "weight_decay",
               "clip_norm", "max_minutes", "validation_fraction", "early_stopping_patience", "n_samples")


def _floats(text: str):
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_data_args(p, positional: bool = True):
    if positional:
        p.add_argument("data", metavar="DATA.csv", help="CSV file with a header row")
    p.add_argument("--date", default="Date", help="date column (default: Date)")
    p.add_argument("--target", default="Close", help="target column(s), comma-separated (default: Close)")
    p.add_argument("--past-covariates", default=None, help="columns known only up to the forecast origin")
    p.add_argument("--future-covariates", default=None,
                   help="columns known for the forecast steps too (give their values in trailing rows)")
    p.add_argument("--fill", choices=FILL_POLICIES, default="none", help="what to do with missing values")
    p.add_argument("--date-format", default=None, help="strptime format of the dates, e.g. %%d/%%m/%%Y")


def _add_model_args(p, **defaults):
    d = {"lookback": 24, "horizon": 1, "epochs": 100, **defaults}
    g = p.add_argument_group("model")
    g.add_argument("--lookback", type=int, default=d["lookback"], help="steps the network reads")
    g.add_argument("--horizon", type=int, default=d["horizon"], help="steps to forecast")
    g.add_argument("--strategy", choices=["recursive", "direct"], default=d.get("strategy", "recursive"))
    g.add_argument("--cell", choices=sorted(CELLS), default="gru")
    g.add_argument("--hidden-size", type=int, default=d.get("hidden_size", 32))
    g.add_argument("--num-layers", type=int, default=1)
    g.add_argument("--dropout", type=float, default=0.0)
    g.add_argument("--head", choices=HEADS, default="gaussian")
    g.add_argument("--quantiles", type=_floats, default=(0.05, 0.5, 0.95), help="levels of the quantile head")
    g.add_argument("--transform", choices=sorted(TRANSFORMS), default=d.get("transform", "level"),
                   help="model levels, logs, differences or log-returns")
    g.add_argument("--scaler", choices=SCALERS, default="standard")
    g.add_argument("--epochs", type=int, default=d["epochs"])
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--learning-rate", type=float, default=3e-3)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--clip-norm", type=float, default=1.0)
    g.add_argument("--max-minutes", type=float, default=None, help="training time budget (per fit)")
    g.add_argument("--validation-fraction", type=float, default=d.get("validation_fraction", 0.0),
                   help="held-out end for early stopping")
    g.add_argument("--early-stopping-patience", type=int, default=d.get("early_stopping_patience", 10))
    g.add_argument("--n-samples", type=int, default=200, help="sample paths for recursive intervals")
    g.add_argument("--seed", type=int, default=0, help="random_state: same seed, same model")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def register(subparsers) -> None:
    fc = subparsers.add_parser("forecast", help="time-series and stock-price forecasting",
                               description="Forecast time series with a recurrent network, beside the "
                                           "naive, seasonal-naive and drift baselines.")
    sub = fc.add_subparsers(dest="forecast_command", metavar="ACTION")
    sub.required = True

    t = sub.add_parser("train", help="train a forecaster on a CSV file and save it")
    _add_data_args(t)
    _add_model_args(t)
    t.add_argument("--out", required=True, metavar="MODEL", help="model file to write (.npz)")
    t.add_argument("--plot", default=None, metavar="PNG", help="training-loss curve")
    t.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="forecast the steps after a CSV file's last row with a saved model")
    p.add_argument("model", metavar="MODEL", help="model file written by `forecast train`")
    p.add_argument("data", metavar="DATA.csv", nargs="?", default=None,
                   help="history to forecast from (default: the end of the training data)")
    p.add_argument("--horizon", type=int, default=None, help="steps to forecast (default: the model's)")
    p.add_argument("--coverage", type=float, default=0.9, help="prediction-interval coverage")
    p.add_argument("--fill", choices=FILL_POLICIES, default="none")
    p.add_argument("--date-format", default=None)
    p.add_argument("--out", default=None, metavar="CSV", help="write the forecast here")
    p.add_argument("--plot", default=None, metavar="PNG", help="history, forecast and interval")
    p.set_defaults(func=cmd_predict)

    b = sub.add_parser("backtest", help="rolling-origin backtest with the baselines beside")
    _add_data_args(b)
    _add_model_args(b)
    _add_backtest_args(b)
    b.add_argument("--out", default=None, metavar="CSV", help="metrics table")
    b.add_argument("--plot", default=None, metavar="PNG", help="forecasts over the test period and errors by step")
    b.set_defaults(func=cmd_backtest)

    s = sub.add_parser("stock", help="the whole stock example on the embedded daily prices")
    s.add_argument("--ticker", default="AAPL", choices=STOCK_TICKERS)
    s.add_argument("--data", default=None, metavar="CSV", help="your own prices instead (with --date, --target)")
    _add_data_args(s, positional=False)
    s.set_defaults(target=None)
    # early stopping on the last 10%: without it the network learns the training period's drift
    _add_model_args(s, lookback=60, horizon=5, epochs=20, transform="log_return", validation_fraction=0.1,
                    early_stopping_patience=3)
    # fit once on the first 70% and forecast from every 5th day after it: one fit, ~200 folds
    _add_backtest_args(s, refit=0)
    s.add_argument("--out-dir", default="stock_forecast", help="where the model, forecast and plots go")
    s.set_defaults(func=cmd_stock)


def _add_backtest_args(p, folds: Optional[int] = None, refit: int = 1):
    g = p.add_argument_group("backtest")
    g.add_argument("--initial", type=int, default=None, help="first training window (default: 70%% of the series)")
    g.add_argument("--stride", type=int, default=None, help="steps between origins (default: horizon)")
    g.add_argument("--window", choices=["expanding", "sliding"], default="expanding")
    g.add_argument("--refit", type=int, default=refit, help="refit every k folds; 0 = fit once on the first window")
    g.add_argument("--max-folds", type=int, default=folds, help="keep only the last this many folds")
    g.add_argument("--seasonal-period", type=int, default=None,
                   help="m of seasonal naive and MASE (default: from the dates: 12 monthly, 4 quarterly, "
                        "5 business days, 7 daily, else 1)")
    g.add_argument("--coverage", type=float, default=0.9, help="prediction-interval coverage")


# -- helpers ----------------------------------------------------------------
def _estimator(args) -> RNNForecaster:
    kw = {name: getattr(args, name) for name in MODEL_FLAGS}
    return RNNForecaster(**kw, random_state=args.seed, progress=args.progress)


def _read(args) -> SeriesData:
    return read_series_csv(args.data, date=args.date, target=args.target, past_covariates=args.past_covariates,
                           future_covariates=args.future_covariates, fill=args.fill, date_format=args.date_format)


def _fit_args(data: SeriesData):
    F = None if data.future is None else data.future[:len(data.y)]
    return {"past_covariates": data.past, "future_covariates": F}


def _guess_period(step: Optional[DateStep]) -> int:
    if step is None:
        return 1
    if step.kind == "months":
        return {1: 12, 3: 4}.get(step.size, 1)
    if step.kind == "bdays":
        return 5
    if step.kind == "seconds" and step.size == 86400:
        return 7
    return 1


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _data_meta(data: SeriesData, args) -> dict:
    return {"date_column": args.date, "target": data.target, "past_covariates": data.past_names,
            "future_covariates": data.future_names, "source": data.source,
            "step": {"kind": data.step.kind, "size": data.step.size, "fmt": data.step.fmt,
                     "month_only": data.step.month_only},
            "last_date": data.format_date(data.dates[len(data.y) - 1]), "date_format": args.date_format}


def _step_from_meta(meta) -> DateStep:
    s = meta["step"]
    step = DateStep(s["kind"], s["size"], s["fmt"])
    step.month_only = s.get("month_only", False)
    return step


def _describe(data: SeriesData) -> str:
    T, k = data.y.shape
    first, last = data.format_date(data.dates[0]), data.format_date(data.dates[T - 1])
    extra = "".join(f"; {n}" for n in data.notes)
    return f"{data.source}: {T} rows {first} .. {last}, target {', '.join(data.target)}{extra}"


# -- commands ----------------------------------------------------------------
def _check_outputs(args) -> None:
    """--out and --plot must be writable files: say so before any work, not after the training."""
    for flag in ("out", "plot"):
        path = getattr(args, flag, None)
        if path:
            check_writable(path, f"--{flag}", example="plot.png" if flag == "plot" else "forecast.csv")


def cmd_train(args) -> int:
    _check_outputs(args)
    data = _read(args)
    _say(_describe(data))
    model = _estimator(args)
    t0 = time.perf_counter()
    model.fit(data.y_1d, **_fit_args(data))
    h = model.training_history_
    last = h.train[-1][1] if h.train else float("nan")
    _say(f"trained {h.steps} steps in {time.perf_counter() - t0:.1f}s ({h.stop_reason}); final training loss "
         f"{last:.4f}" + (f", best validation loss {h.best_val_loss:.4f}" if h.best_val_loss is not None else ""))
    model.save(args.out, meta=_data_meta(data, args))
    _say(f"model written to {args.out}")
    if args.plot:
        from .plots import save_loss_curve
        save_loss_curve(args.plot, h.train, h.val_loss, ylabel=f"{model.head} loss (scaled units)",
                        title="training loss")
        _say(f"loss curve written to {args.plot}")
    return 0


def cmd_predict(args) -> int:
    _check_outputs(args)
    model = RNNForecaster.load(args.model)
    meta = model.meta_
    H = model.horizon if args.horizon is None else args.horizon
    if args.data is None:
        step = _step_from_meta(meta)
        from .dates import parse_dates
        last = parse_dates([meta["last_date"]], "date", meta.get("date_format"))[0][0]
        hist_x, hist_y = [], model.last_y_
        kw = {}
        if model.n_future_covariates_:
            raise DataError("this model uses known-future covariates: pass DATA.csv with their values for the "
                            "forecast steps in trailing rows")
    else:
        data = read_series_csv(args.data, date=meta["date_column"], target=meta["target"],
                               past_covariates=meta["past_covariates"] or None,
                               future_covariates=meta["future_covariates"] or None, fill=args.fill,
                               date_format=args.date_format or meta.get("date_format"))
        step, last = data.step, data.dates[len(data.y) - 1]
        hist_x, hist_y = data.dates[:len(data.y)], data.y
        kw = {"y": data.y_1d, "past_covariates": data.past, "future_covariates": data.future}
        if data.future is not None and len(data.future) < len(data.y) + H:
            raise DataError(f"{args.data}: the model uses known-future covariates; add {H} trailing row(s) with "
                            f"their values (and an empty target) for the forecast steps, found "
                            f"{len(data.future) - len(data.y)}")
        if data.future is not None:
            kw["future_covariates"] = data.future[:len(data.y) + H]
    mean = model.predict(H, **kw)
    lower = upper = None
    if model.head != "point":
        lower, upper = model.predict_interval(args.coverage, H, **kw)
    dates = step.future(last, H)
    cols = {}
    names = meta["target"]
    m2 = mean.reshape(H, -1)
    for j, n in enumerate(names):
        cols[n] = m2[:, j]
        if lower is not None:
            cols[f"{n}_lower"] = lower.reshape(H, -1)[:, j]
            cols[f"{n}_upper"] = upper.reshape(H, -1)[:, j]
    fmt = step.format
    _say(f"forecast of {', '.join(names)} for {H} step(s) after {fmt(last)}"
         + (f" with {args.coverage:.0%} intervals" if lower is not None else "") + ":")
    _say("  ".join(["date"] + list(cols)))
    for i, d in enumerate(dates):
        _say("  ".join([fmt(d)] + [f"{cols[c][i]:.4f}" for c in cols]))
    if args.out:
        write_forecast_csv(args.out, dates, cols, fmt)
        _say(f"forecast written to {args.out}")
    if args.plot:
        from .plots import plot_forecast
        hx = hist_x if hist_x else list(range(-len(hist_y) + 1, 1))
        fx = dates if hist_x else list(range(1, H + 1))
        plot_forecast(args.plot, hx, np.asarray(hist_y)[:, 0], fx, m2[:, 0],
                      None if lower is None else lower.reshape(H, -1)[:, 0],
                      None if upper is None else upper.reshape(H, -1)[:, 0], coverage=args.coverage,
                      label=names[0], title=f"{names[0]}: {H}-step forecast")
        _say(f"plot written to {args.plot}")
    return 0


def _run_backtest(args, data: SeriesData, model: Optional[RNNForecaster]):
    T = len(data.y)
    horizon = args.horizon
    initial = args.initial if args.initial is not None else max(int(0.7 * T), 1)
    stride = args.stride if args.stride is not None else horizon
    m = args.seasonal_period if args.seasonal_period is not None else _guess_period(data.step)
    if args.refit < 0:
        raise ValueError(f"--refit: expected 0 (fit once) or a positive k (refit every k folds), got {args.refit}")
    refit = False if args.refit == 0 else (True if args.refit == 1 else args.refit)
    F = None if data.future is None else data.future[:T]
    _say(f"backtest: origins from {initial} every {stride} step(s), horizon {horizon}, {args.window} window, "
         f"{'refit every ' + str(args.refit) + ' fold(s)' if refit else 'fitted once'}, seasonal period {m}")
    t0 = time.perf_counter()
    result = backtest(model, data.y_1d, horizon=horizon, initial=initial, stride=stride, window=args.window,
                      refit=refit, past_covariates=data.past, future_covariates=F, seasonal_period=m,
                      coverage=args.coverage, max_folds=args.max_folds, progress=args.progress)
    _say(f"{len(result.folds)} folds in {time.perf_counter() - t0:.1f}s")
    return result


def _write_metrics(path: str, result) -> None:
    cols = sorted({c for m in result.metrics.values() for c in m})
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method"] + cols)
        for name in result.methods:
            w.writerow([name] + [f"{result.metrics[name].get(c, float('nan')):.6g}" for c in cols])


def _verdict(result) -> str:
    mm = result.metrics["model"]
    best = min(("naive", "seasonal_naive", "drift"), key=lambda k: result.metrics[k]["mase"])
    rel = mm["mase"] / result.metrics[best]["mase"] - 1
    word = "better" if rel < 0 else "worse"
    return (f"model MASE {mm['mase']:.3f}; best baseline {best} {result.metrics[best]['mase']:.3f}: the model is "
            f"{abs(rel):.1%} {word}")


def cmd_backtest(args) -> int:
    _check_outputs(args)
    data = _read(args)
    _say(_describe(data))
    result = _run_backtest(args, data, _estimator(args))
    _say(result.table())
    _say(_verdict(result))
    if args.out:
        _write_metrics(args.out, result)
        _say(f"metrics written to {args.out}")
    if args.plot:
        from .plots import plot_backtest
        plot_backtest(args.plot, result, data.y, data.dates[:len(data.y)], label=", ".join(data.target))
        _say(f"plot written to {args.plot}")
    return 0


def cmd_stock(args) -> int:
    if args.data is not None:
        args.target = args.target or "Close"
        data = _read(args)
    else:
        data = load_stock(args.ticker, target=args.target or "AdjClose", past_covariates=args.past_covariates)
        args.date, args.target = "Date", ",".join(data.target)
    _say(_describe(data))
    if data.y.shape[1] != 1:
        raise DataError("the stock example forecasts one price column; give a single --target")
    os.makedirs(args.out_dir, exist_ok=True)
    out = lambda name: os.path.join(args.out_dir, name)
    model = _estimator(args)
    result = _run_backtest(args, data, model)
    _say(result.table())
    mm, rw = result.metrics["model"], result.metrics["naive"]
    rel = mm["rmse"] / rw["rmse"] - 1
    da = mm["directional_accuracy"]
    _say(f"RMSE: model {mm['rmse']:.4g} vs random walk (naive) {rw['rmse']:.4g}: the model is {abs(rel):.1%} "
         f"{'better' if rel < 0 else 'worse'}. Directional accuracy {da:.1%}; a coin flip scores about 50% "
         f"and the drift line {result.metrics['drift']['directional_accuracy']:.1%} (a rising stock rewards "
         "always saying 'up').")
    _say("Daily prices are close to a random walk: a forecast that does not beat the naive one is the expected "
         "outcome, not a bug; the intervals are the useful part. This is not investment advice.")
    _write_metrics(out("backtest_metrics.csv"), result)
    from .plots import plot_backtest, plot_forecast, save_loss_curve
    plot_backtest(out("backtest.png"), result, data.y, data.dates[:len(data.y)], label=data.target[0],
                  title=f"{data.source}: rolling-origin backtest")
    # the final model, trained on everything, and the forecast after the last day
    model.fit(data.y_1d, **_fit_args(data))
    model.save(out("model.npz"), meta=_data_meta(data, args))
    h = model.training_history_
    save_loss_curve(out("loss.png"), h.train, h.val_loss, ylabel=f"{model.head} loss", title="training loss")
    H = model.horizon
    mean = model.predict(H)
    lower, upper = model.predict_interval(args.coverage, H) if model.head != "point" else (None, None)
    last = data.dates[len(data.y) - 1]
    dates = data.step.future(last, H)
    cols = {data.target[0]: mean}
    if lower is not None:
        cols.update({f"{data.target[0]}_lower": lower, f"{data.target[0]}_upper": upper})
    write_forecast_csv(out("forecast.csv"), dates, cols, data.step.format)
    plot_forecast(out("forecast.png"), data.dates[:len(data.y)], data.y[:, 0], dates, mean, lower, upper,
                  coverage=args.coverage, label=data.target[0], title=f"{data.target[0]}: {H}-day forecast",
                  show_last=120)
    _say(f"next {H} trading days after {data.format_date(last)}: "
         + ", ".join(f"{data.format_date(d)} {v:.2f}" for d, v in zip(dates, mean)))
    _say(f"wrote {', '.join(out(n) for n in ('model.npz', 'forecast.csv', 'forecast.png', 'backtest.png', 'backtest_metrics.csv', 'loss.png'))}")
    return 0
