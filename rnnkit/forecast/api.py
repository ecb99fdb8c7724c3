"""Forecasting from CSV files: the functions behind ``rnnkit forecast train | predict | backtest | stock``.

Each command is one call here, usable from Python too::

    from rnnkit.forecast import api
    model = api.train("prices.csv", out="m.npz", target="Close", lookback=30, epochs=20)
    table = api.predict("m.npz", horizon=5, out="forecast.csv")
    result = api.backtest("prices.csv", target="Close", horizon=5, initial=200)

Every output path (model, CSV, PNG) is checked before any data is read or any
training starts (:func:`rnnkit.io.atomic.check_outputs`: an output that is also
an input is refused) and written atomically. Data files are read with the input
limits of :mod:`rnnkit.io.inputs`. ``train`` always trains with a checkpoint
beside ``out`` (:func:`rnnkit.estimator.checkpoint_beside`), so an interrupt
(Ctrl-C, SIGTERM) leaves one and ``resume=True`` continues from it. ``say``
receives the progress lines a command prints (default: silent).
"""

from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ..checks import check_choice, check_count, check_optional_count, check_real
from ..errors import DataError
from ..estimator import flag_of, prepare_run
from ..io.atomic import check_outputs, write_text
from ..train.history import trained_line
from .backtest import BacktestResult
from .backtest import backtest as rolling_backtest
from .conformal import percent, shortfall_note
from .data import SeriesData, read_series_csv, write_forecast_csv
from .dates import DateStep, fits, parse_dates, step_words
from .defaults import AUTO, data_defaults, guess_period
from .estimator import INTERVAL_METHODS, RNNForecaster
from .scaling import ScaleOverflow

__all__ = ["train", "predict", "backtest", "read_data", "describe", "write_metrics", "ForecastTable",
           "guess_period"]

Say = Optional[Callable[[str], None]]


def _quiet(msg: str) -> None:
    pass


# -- data ---------------------------------------------------------------------------
def read_data(path, *, date: str = "Date", target="Close", past_covariates=None, future_covariates=None,
              fill: str = "none", date_format: Optional[str] = None, what: str = "DATA",
              trained: bool = False) -> SeriesData:
    """A validated series from a CSV file (see :func:`rnnkit.forecast.data.read_series_csv`);
    ``what`` names the file's argument or flag in the messages (``"DATA"``, ``"--data"``)."""
    return read_series_csv(path, date=date, target=target, past_covariates=past_covariates,
                           future_covariates=future_covariates, fill=fill, date_format=date_format, what=what,
                           trained=trained)


def describe(data: SeriesData) -> str:
    """One line: source, rows, first and last date, targets and notes."""
    T = len(data.y)
    first, last = data.format_date(data.dates[0]), data.format_date(data.dates[T - 1])
    extra = "".join(f"; {n}" for n in data.notes)
    return f"{data.source}: {T} rows {first} .. {last}, target {', '.join(data.target)}{extra}"


def series_info(data: SeriesData, date: str, date_format: Optional[str]) -> Dict[str, Any]:
    """What a model keeps about its data (``RNNForecaster.series_``): the columns, the date step, the last date."""
    s = data.step
    return {"date_column": date, "target": list(data.target), "past_covariates": list(data.past_names),
            "future_covariates": list(data.future_names), "date_format": date_format,
            "step": {"kind": s.kind, "size": s.size, "fmt": s.fmt, "month_only": bool(s.month_only),
                     "day": s.day, "quarter": s.quarter},
            "last_date": data.format_date(data.dates[len(data.y) - 1])}


def _step(info: Dict[str, Any]) -> DateStep:
    """The date step a model records (``series_info``)."""
    s = info["step"]
    if "day" not in s and s["kind"] == "seconds" and s["size"] in [n * 86400.0 for n in (28, 29, 30, 31)]:
        (last,), kind = parse_dates([info["last_date"]], "date", info.get("date_format"))
        if kind == "datetime" and (last + dt.timedelta(days=1)).day == 1:      # a file from before month ends
            return DateStep("months", 1, s["fmt"], day=31)      # were months: they were read as 28 to 31 days
    return DateStep(s["kind"], s["size"], s["fmt"], month_only=s.get("month_only", False), day=s.get("day"),
                    quarter=s.get("quarter"))


def _checked_params(params: Dict[str, Any]) -> RNNForecaster:
    """The settings checked before any data is read (those chosen from the data take the estimator's default)."""
    model = RNNForecaster(**{k: v for k, v in params.items() if not (k in AUTO and v is None)})
    model._check_params()
    return model


def _from_data(series: SeriesData, y, params: Dict[str, Any], say, period: Optional[int] = None) -> RNNForecaster:
    """The model with every setting the user left out chosen from the data (:mod:`.defaults`), said in one line;
    ``period``: the seasonal period (default: from the dates)."""
    m = guess_period(series.step) if period is None else period
    full = data_defaults(y, m, params)
    chosen = [k for k in AUTO if params.get(k) is None]
    if chosen:
        say("settings from the data: " + ", ".join(f"--{k.replace('_', '-')} {full[k]}" for k in chosen)
            + f" (seasonal period {m}{' from the dates' if period is None else ''})")
    return RNNForecaster(**full)


def _fit_kwargs(data: SeriesData) -> Dict[str, Any]:
    F = None if data.future is None else data.future[:len(data.y)]
    return {"past_covariates": data.past, "future_covariates": F}


@contextmanager
def _named(data: SeriesData, offset: int = 0):
    """Say which CSV column and date hold a value that overflows (the estimator knows only positions)."""
    try:
        yield
    except ScaleOverflow as e:
        names = {"y": data.target, "past_covariates": data.past_names,
                 "future_covariates": data.future_names}.get(e.what, [])
        col = names[e.column] if e.column < len(names) else f"#{e.column + 1}"
        fix = e.fix.replace("the data", "the column")
        raise DataError(f"{data.source}: column {col!r} at {data.where(e.row + offset)}: the value {e.value:g} "
                        f"{e.why}; {fix}") from None


def _summary(model: RNNForecaster, seconds: float) -> str:
    h = model.history_
    last = h.train[-1][1] if h.train else float("nan")
    return (f"{trained_line(h.steps, seconds, h.stop_reason)}; final training loss {last:.4f}"
            + (f", best validation loss {h.best_val_loss:.4f}" if h.best_val_loss is not None else ""))


# -- train -------------------------------------------------------------------------------
def train(data, *, out, date: str = "Date", target="Close", past_covariates=None, future_covariates=None,
          fill: str = "none", date_format: Optional[str] = None, plot=None, resume: bool = False,
          say: Say = None, **params) -> RNNForecaster:
    """Train an :class:`RNNForecaster` (keywords ``params``) on a CSV file and save it to ``out``.

    The checkpoint beside ``out`` is written during training; ``resume=True``
    continues from it (it must exist). ``plot`` writes the loss curve. The settings of
    :data:`rnnkit.forecast.defaults.AUTO` that ``params`` leaves out (or gives as None)
    are chosen from the data (:func:`rnnkit.forecast.defaults.data_defaults`).
    """
    say = say or _quiet
    ckpt = prepare_run(out, resume=resume, kind=RNNForecaster.kind, outputs={"--plot": plot},
                       inputs={"DATA": data}, examples={"--out": "model.npz", "--plot": "loss.png"})
    _checked_params(params)                    # bad settings before reading the data
    series = read_data(data, date=date, target=target, past_covariates=past_covariates,
                       future_covariates=future_covariates, fill=fill, date_format=date_format)
    say(describe(series))
    model = _from_data(series, series.y, params, say)
    t0 = time.perf_counter()
    with _named(series):
        model.fit(series.y_1d, **_fit_kwargs(series), series=series_info(series, date, date_format),
                  checkpoint_path=ckpt, resume=resume)
    say(_summary(model, time.perf_counter() - t0))
    model.save(out)
    say(f"model written to {out} (checkpoint {ckpt})")
    if plot:
        from .plots import save_loss_curve
        h = model.history_
        save_loss_curve(plot, h.train, h.val_loss, ylabel=f"{model.head} loss (scaled units)",
                        title="training loss", what="--plot")
        say(f"loss curve written to {plot}")
    return model


# -- predict -------------------------------------------------------------------------------
@dataclass
class ForecastTable:
    """A forecast: one row per future date; ``columns`` maps a name (``Close``, ``Close_lower``, ...) to (H,)."""

    dates: List[str]
    columns: Dict[str, np.ndarray]
    target: List[str]
    last_date: str
    coverage: Optional[float] = None

    @property
    def horizon(self) -> int:
        return len(self.dates)

    def text(self) -> str:
        """A title line, a header and one line per step."""
        lines = [f"forecast of {', '.join(self.target)} for {self.horizon} step(s) after {self.last_date}"
                 + (f" with {percent(self.coverage)} intervals" if self.coverage is not None else "") + ":",
                 "  ".join(["date"] + list(self.columns))]
        for i, d in enumerate(self.dates):
            lines.append("  ".join([d] + [f"{self.columns[c][i]:.4f}" for c in self.columns]))
        return "\n".join(lines)

    def to_csv(self, path, what: str = "--out") -> str:
        """Write the table as CSV (atomically): ``date`` then the columns."""
        return write_forecast_csv(path, self.dates, self.columns, str, what=what)


def predict(model, data=None, *, horizon: Optional[int] = None, coverage: float = 0.9, fill: str = "none",
            date_format: Optional[str] = None, out=None, plot=None, say: Say = None,
            interval_method: Optional[str] = None) -> ForecastTable:
    """Forecast the steps after the end of ``data`` (a CSV file) or of the training data.

    ``model`` is a model file, a checkpoint of ``train``, or a fitted
    :class:`RNNForecaster`. ``data`` is read with the columns the model was
    trained on; known-future covariates of the forecast steps go in trailing
    rows without a target. ``out`` writes the table as CSV, ``plot`` a PNG.
    ``interval_method``: ``"conformal"`` (calibrated, see :meth:`RNNForecaster.predict_interval`)
    or ``"head"`` (the head's own interval, uncalibrated); None (default): conformal when the model has
    its calibration, else the head's.
    """
    say = say or _quiet
    model_path = None if isinstance(model, RNNForecaster) else model
    check_outputs({"--out": out, "--plot": plot}, inputs={"MODEL": model_path, "DATA": data},
                  examples={"--out": "forecast.csv", "--plot": "forecast.png"}, owns={"--out": (b"date,",)})
    coverage = check_real(flag_of("coverage"), coverage, 0.0, 1.0, low_open=True, high_open=True)
    if interval_method is not None:
        check_choice(flag_of("interval_method"), interval_method, INTERVAL_METHODS)
    est = RNNForecaster.load(model_path) if model_path is not None else model
    est._check_fitted()
    if interval_method is None:            # the calibrated intervals where the model has them
        interval_method = "conformal" if est.calibration_ is not None else "head"
        if est.calibration_ is None and est.head != "point":
            say("intervals: the network's own, uncalibrated (this model has no conformal calibration: it was "
                "trained with --calibration-fraction 0, or it is an unfinished run's checkpoint)")
    info = est.series_ or {}
    H = est.horizon if horizon is None else check_count(flag_of("horizon"), horizon, 1)
    if data is None:
        if est.n_future_covariates_:
            raise DataError("this model uses known-future covariates: pass DATA.csv with their values for the "
                            "forecast steps in trailing rows")
        kw, series, hist_x, hist_y = {}, None, None, est.last_y_
    else:
        if not info:
            raise DataError("this model records no CSV columns (it was fitted from arrays); forecast with "
                            "RNNForecaster.predict(y=...) instead")
        series = read_data(data, date=info["date_column"], target=info["target"],
                           past_covariates=info["past_covariates"] or None,
                           future_covariates=info["future_covariates"] or None, fill=fill,
                           date_format=date_format or info.get("date_format"), trained=True)
        kw = {"y": series.y_1d, "past_covariates": series.past}
        if series.future is not None:
            if len(series.future) < len(series.y) + H:
                raise DataError(f"{data}: the model uses known-future covariates; add {H} trailing row(s) with "
                                f"their values (and an empty target) for the forecast steps, found "
                                f"{len(series.future) - len(series.y)}")
            kw["future_covariates"] = series.future[:len(series.y) + H]
        hist_x, hist_y = series.dates[:len(series.y)], series.y
        trained = _step(info)
        if (trained.kind, trained.size) != (series.step.kind, series.step.size):
            if fits(series.dates, trained):    # a week of weekdays reads as daily; the model's step fits it too
                series.step = trained
            else:
                series.notes.append(f"the file's dates step by {step_words(series.step)} but the model was trained "
                                    f"on steps of {step_words(trained)}; the forecast follows the file's step: "
                                    "check that it is the right file")
        say(describe(series))
    if series is not None:
        step, last = series.step, series.dates[len(series.y) - 1]
    elif info:
        step = _step(info)
        last = parse_dates([info["last_date"]], "date", info.get("date_format"))[0][0]
    else:
        step, last = None, 0
    dates = step.future(last, H) if step is not None else list(range(1, H + 1))   # past year 9999: before the work
    fmt = step.format if step is not None else str
    if interval_method == "conformal" and est.calibration_ is not None:
        note = shortfall_note(est.calibration_, coverage, H)
        if note:
            say(note)
    with _named(series) if series is not None else _nothing():
        mean = est.predict(H, **kw)
        lower = upper = None
        if est.head != "point" or interval_method == "conformal":
            lower, upper = est.predict_interval(coverage, H, method=interval_method, **kw)
    names = info.get("target") or [f"y{j}" for j in range(est.n_targets_)]
    m2 = mean.reshape(H, -1)
    cols: Dict[str, np.ndarray] = {}
    for j, n in enumerate(names):
        cols[n] = m2[:, j]
        if lower is not None:
            cols[f"{n}_lower"] = lower.reshape(H, -1)[:, j]
            cols[f"{n}_upper"] = upper.reshape(H, -1)[:, j]
    table = ForecastTable([fmt(d) for d in dates], cols, list(names), fmt(last),
                          coverage if lower is not None else None)
    say(table.text())
    if out:
        table.to_csv(out)
        say(f"forecast written to {out}")
    if plot:
        from .plots import plot_forecast
        hx = hist_x if hist_x and step is not None else list(range(-len(hist_y) + 1, 1))
        fx = dates if hist_x and step is not None else list(range(1, H + 1))
        plot_forecast(plot, hx, np.asarray(hist_y).reshape(len(hist_y), -1)[:, 0], fx, m2[:, 0],
                      None if lower is None else lower.reshape(H, -1)[:, 0],
                      None if upper is None else upper.reshape(H, -1)[:, 0], coverage=coverage,
                      label=names[0], title=f"{names[0]}: {H}-step forecast")
        say(f"plot written to {plot}")
    return table


@contextmanager
def _nothing():
    yield


# -- backtest -------------------------------------------------------------------------------
def write_metrics(path, result: BacktestResult, what: str = "--out") -> str:
    """The backtest metrics as CSV, one row per method (written atomically)."""
    cols = sorted({c for m in result.metrics.values() for c in m})
    lines = [",".join(["method"] + cols)]
    for name in result.methods:
        lines.append(",".join([name] + [f"{result.metrics[name].get(c, float('nan')):.6g}" for c in cols]))
    return write_text(path, "\n".join(lines) + "\n", what=what)


def verdict(result: BacktestResult) -> str:
    """The model's MASE beside the best baseline's, in words."""
    mm = result.metrics["model"]
    best = min(("naive", "seasonal_naive", "drift"), key=lambda k: result.metrics[k]["mase"])
    rel = mm["mase"] / result.metrics[best]["mase"] - 1
    return (f"model MASE {mm['mase']:.3f}; best baseline {best} {result.metrics[best]['mase']:.3f}: the model is "
            f"{abs(rel):.1%} {'better' if rel < 0 else 'worse'}")


def run_backtest(series: SeriesData, model: Optional[RNNForecaster], *, horizon: int, initial: Optional[int] = None,
                 stride: Optional[int] = None, window: str = "expanding", refit: int = 1,
                 max_folds: Optional[int] = None, seasonal_period: Optional[int] = None, coverage: float = 0.9,
                 progress: bool = False, say: Say = None, interval_method="conformal") -> BacktestResult:
    """Rolling-origin backtest of ``model`` beside the baselines on a series already read."""
    say = say or _quiet
    T = len(series.y)
    initial = max(int(0.7 * T), 1) if initial is None else initial
    stride = horizon if stride is None else stride
    m = guess_period(series.step) if seasonal_period is None else seasonal_period
    refit = check_count(flag_of("refit"), refit, 0)            # 0: fit once; k: refit every k folds
    coverage = check_real(flag_of("coverage"), coverage, 0.0, 1.0, low_open=True, high_open=True)
    for meth in [interval_method] if isinstance(interval_method, str) else interval_method:
        check_choice(flag_of("interval_method"), meth, INTERVAL_METHODS)
    say(f"backtest: origins from {initial} every {stride} step(s), horizon {horizon}, {window} window, "
        f"{'refit every ' + str(refit) + ' fold(s)' if refit else 'fitted once'}, seasonal period {m}")
    t0 = time.perf_counter()
    with _named(series):
        result = rolling_backtest(model, series.y_1d, horizon=horizon, initial=initial, stride=stride,
                                  window=window, refit={0: False, 1: True}.get(refit, refit),
                                  past_covariates=series.past, future_covariates=_fit_kwargs(series)["future_covariates"],
                                  seasonal_period=m, coverage=coverage, max_folds=max_folds, progress=progress,
                                  interval_method=interval_method)
    say(f"{len(result.folds)} folds in {time.perf_counter() - t0:.1f}s")
    return result


def check_backtest_counts(initial, stride, max_folds, seasonal_period) -> None:
    """The backtest's counts, each none or >= 1: checked before the data is read or anything printed."""
    for name, value in (("initial", initial), ("stride", stride), ("max_folds", max_folds),
                        ("seasonal_period", seasonal_period)):
        check_optional_count(flag_of(name), value, 1)


def backtest(data, *, date: str = "Date", target="Close", past_covariates=None, future_covariates=None,
             fill: str = "none", date_format: Optional[str] = None, initial: Optional[int] = None,
             stride: Optional[int] = None, window: str = "expanding", refit: int = 1,
             max_folds: Optional[int] = None, seasonal_period: Optional[int] = None, coverage: float = 0.9,
             out=None, plot=None, say: Say = None, interval_method="conformal", **params) -> BacktestResult:
    """Rolling-origin backtest of an :class:`RNNForecaster` (``params``) on a CSV file, beside the baselines.

    ``refit``: refit every k folds, 0 = fit once on the first window. ``out``
    writes the metrics CSV, ``plot`` the forecasts and the error by step. Settings that
    ``params`` leaves out are chosen from the first fold's training window as in :func:`train`.
    ``interval_method``: see :func:`rnnkit.forecast.backtest.backtest`.
    """
    say = say or _quiet
    check_outputs({"--out": out, "--plot": plot}, inputs={"DATA": data},
                  examples={"--out": "metrics.csv", "--plot": "backtest.png"}, owns={"--out": (b"method,",)})
    _checked_params(params)
    check_backtest_counts(initial, stride, max_folds, seasonal_period)
    check_count(flag_of("refit"), refit, 0)
    check_choice(flag_of("window"), window, ("expanding", "sliding"))
    series = read_data(data, date=date, target=target, past_covariates=past_covariates,
                       future_covariates=future_covariates, fill=fill, date_format=date_format)
    say(describe(series))
    first = max(int(0.7 * len(series.y)), 1) if initial is None else initial
    model = _from_data(series, series.y[:first], params, say, seasonal_period)
    result = run_backtest(series, model, horizon=model.horizon, initial=initial, stride=stride, window=window,
                          refit=refit, max_folds=max_folds, seasonal_period=seasonal_period, coverage=coverage,
                          progress=bool(model.progress), say=say, interval_method=interval_method)
    say(result.table())
    say(verdict(result))
    if out:
        write_metrics(out, result)
        say(f"metrics written to {out}")
    if plot:
        from .plots import plot_backtest
        plot_backtest(plot, result, series.y, series.dates[:len(series.y)], label=", ".join(series.target))
        say(f"plot written to {plot}")
    return result
