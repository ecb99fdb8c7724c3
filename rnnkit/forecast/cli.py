"""``rnnkit forecast train | predict | backtest | stock``: thin calls into :mod:`rnnkit.forecast.api`.

The model flags are generated from :class:`RNNForecaster`'s keywords and
docstring (:mod:`rnnkit.cli.builder`): ``--lookback``, ``--hidden-size``,
``--random-state``, ... Data flags (``--date``, ``--target``,
``--past-covariates``, ``--future-covariates``, ``--fill``, ``--date-format``)
are those of :func:`rnnkit.forecast.api.read_data`. User mistakes raise
:class:`~rnnkit.errors.RnnkitError`/``ValueError``; the shell prints one line and exits 2.
"""

from __future__ import annotations

from ..cli.builder import add_estimator_flags, add_output_flags, command, estimator_kwargs, param_docs, subcommands
from . import api
from .data import FILL_POLICIES, STOCK_TICKERS
from .defaults import AUTO
from .estimator import INTERVAL_METHODS, RNNForecaster
from .stock import STOCK_DEFAULTS

__all__ = ["register"]

DATA_FLAGS = ("date", "target", "past_covariates", "future_covariates", "fill", "date_format")
BACKTEST_FLAGS = ("initial", "stride", "window", "refit", "max_folds", "seasonal_period", "coverage",
                  "interval_method")
INTERVAL_HELP = ("conformal: calibrated on the held-out end of the training data (see --calibration-fraction); "
                 "head: the network's own interval, uncalibrated")
AUTO_HELP = " (default: chosen from the data; see the README's Forecasting section)"


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _add_data_flags(p, target: str | None = "Close") -> None:
    g = p.add_argument_group("data")
    g.add_argument("--date", default="Date", help="date column")
    g.add_argument("--target", default=target, help="target column(s), comma-separated")
    g.add_argument("--past-covariates", default=None, help="columns known only up to the forecast origin")
    g.add_argument("--future-covariates", default=None,
                   help="columns known for the forecast steps too (give their values in trailing rows)")
    g.add_argument("--fill", choices=FILL_POLICIES, default="none", help="what to do with missing values")
    g.add_argument("--date-format", default=None,
                   help="strptime format of the dates, e.g. %%d/%%m/%%Y (ISO dates, 2013-03, quarters like "
                        "2013Q1 and numbers are read without it)")


def _add_model_flags(p, defaults=None, checkpoints: bool = False, auto: bool = False):
    """The model flags; ``--checkpoint-every`` only where the command trains with a checkpoint (train);
    with ``auto`` the settings of :data:`~rnnkit.forecast.defaults.AUTO` default to "chosen from the data"."""
    exclude = ("progress",) if checkpoints else ("progress", "checkpoint_every")
    helps = None
    if auto:
        docs = param_docs(RNNForecaster)
        defaults = dict(defaults or {}, **{name: None for name in AUTO})
        helps = {name: docs.get(name, name) + AUTO_HELP for name in AUTO}
    return add_estimator_flags(p, RNNForecaster, exclude=exclude, defaults=defaults, helps=helps, title="model")


def _add_backtest_flags(p, refit: int = 1) -> None:
    g = p.add_argument_group("backtest")
    g.add_argument("--initial", type=int, default=None, help="first training window (default: 70%% of the series)")
    g.add_argument("--stride", type=int, default=None, help="steps between origins (default: the horizon)")
    g.add_argument("--window", choices=["expanding", "sliding"], default="expanding", help="training window")
    g.add_argument("--refit", type=int, default=refit, help="refit every k folds; 0 = fit once on the first window")
    g.add_argument("--max-folds", type=int, default=None, help="keep only the last this many folds")
    g.add_argument("--seasonal-period", type=int, default=None,
                   help="m of seasonal naive and MASE (default: from the dates: 12 monthly, 4 quarterly, "
                        "5 business days, 7 daily, else 1)")
    g.add_argument("--coverage", type=float, default=0.9, help="prediction-interval coverage (the 80%% and 90%% "
                                                               "intervals are scored too)")
    g.add_argument("--interval-method", choices=INTERVAL_METHODS, default="conformal", help=INTERVAL_HELP)


def register(subparsers) -> None:
    fc = subparsers.add_parser("forecast", help="time-series and stock-price forecasting",
                               description="Forecast time series with a recurrent network, beside the "
                                           "naive, seasonal-naive and drift baselines.")
    sub = subcommands(fc, "forecast_command")

    t = command(sub, "train", help="train a forecaster on a CSV file and save it", func=cmd_train)
    t.add_argument("data", metavar="DATA", help="CSV file with a header row")
    _add_data_flags(t)
    t.set_defaults(model_flags=_add_model_flags(t, checkpoints=True, auto=True))
    add_output_flags(t, out="forecaster.npz", out_help="the model file; the checkpoint (NAME.ckpt.npz) is "
                                                       "written beside it", resume=True, progress=True)
    t.add_argument("--plot", default=None, metavar="PNG", help="training-loss curve")

    p = command(sub, "predict", help="forecast the steps after a CSV file's last row with a saved model",
                func=cmd_predict)
    p.add_argument("model", metavar="MODEL", help="model file (or checkpoint) written by `forecast train`")
    p.add_argument("data", metavar="DATA", nargs="?", default=None,
                   help="history to forecast from (default: the end of the training data)")
    p.add_argument("--horizon", type=int, default=None, help="steps to forecast (default: the model's)")
    p.add_argument("--coverage", type=float, default=0.9, help="prediction-interval coverage")
    p.add_argument("--interval-method", choices=INTERVAL_METHODS, default=None,
                   help=INTERVAL_HELP + " (default: conformal when the model has its calibration, else head)")
    p.add_argument("--fill", choices=FILL_POLICIES, default="none", help="what to do with missing values")
    p.add_argument("--date-format", default=None, help="strptime format of the dates (default: the model's)")
    p.add_argument("--out", default=None, metavar="CSV", help="write the forecast here")
    p.add_argument("--plot", default=None, metavar="PNG", help="history, forecast and interval")

    b = command(sub, "backtest", help="rolling-origin backtest with the baselines beside", func=cmd_backtest)
    b.add_argument("data", metavar="DATA", help="CSV file with a header row")
    _add_data_flags(b)
    b.set_defaults(model_flags=_add_model_flags(b, auto=True))
    _add_backtest_flags(b)
    add_output_flags(b, progress=True)
    b.add_argument("--out", default=None, metavar="CSV", help="metrics table")
    b.add_argument("--plot", default=None, metavar="PNG", help="forecasts over the test period and errors by step")

    s = command(sub, "stock", help="the whole stock example on the embedded daily prices", func=cmd_stock)
    s.add_argument("--ticker", default=None, choices=STOCK_TICKERS,
                   help="embedded daily prices (default: AAPL, unless --data gives your own)")
    s.add_argument("--data", default=None, metavar="CSV", help="your own prices instead (with --date, --target)")
    _add_data_flags(s, target=None)
    s.set_defaults(model_flags=_add_model_flags(s, STOCK_DEFAULTS))
    # fit once on the first 70% and forecast from every 5th day after it: one fit, ~200 folds
    _add_backtest_flags(s, refit=0)
    add_output_flags(s, progress=True)
    s.add_argument("--out-dir", default="stock_forecast", help="where the model, forecast and plots go")


def _params(args):
    return dict(estimator_kwargs(args, args.model_flags), progress=args.progress)


def cmd_train(args) -> int:
    api.train(args.data, out=args.out, plot=args.plot, resume=args.resume, say=_say,
              **estimator_kwargs(args, DATA_FLAGS), **_params(args))
    return 0


def cmd_predict(args) -> int:
    api.predict(args.model, args.data, horizon=args.horizon, coverage=args.coverage, fill=args.fill,
                date_format=args.date_format, out=args.out, plot=args.plot, say=_say,
                interval_method=args.interval_method)
    return 0


def cmd_backtest(args) -> int:
    api.backtest(args.data, out=args.out, plot=args.plot, say=_say, **estimator_kwargs(args, DATA_FLAGS),
                 **estimator_kwargs(args, BACKTEST_FLAGS), **_params(args))
    return 0


def cmd_stock(args) -> int:
    from .stock import stock
    stock(ticker=args.ticker, data=args.data, out_dir=args.out_dir, say=_say, **estimator_kwargs(args, DATA_FLAGS),
          **estimator_kwargs(args, BACKTEST_FLAGS), **_params(args))
    return 0
