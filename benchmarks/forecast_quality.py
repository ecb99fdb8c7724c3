"""Forecast quality of RNNForecaster on real series shipped offline by well-known packages.

Seasonal series (rolling-origin backtest, refit at every origin, MASE scaled by the
in-sample seasonal-naive error of each fold's training window):

- airline passengers, monthly 1949-1960, m = 12 (``sktime.datasets.load_airline``);
- Mauna Loa CO2, weekly 1958-2001 averaged to months (5 empty months interpolated), m = 12
  (``statsmodels.datasets.co2``);
- yearly sunspot numbers 1700-2008, m = 11, the solar cycle (``statsmodels.datasets.sunspots``).

Stocks (``bokeh_sampledata.stocks``, adjusted daily close 2000-2013): fitted once on the first
70% of the days, then a 5-day forecast from every 5th day after it; RMSE and directional
accuracy against the random walk (naive forecast).

    python benchmarks/forecast_quality.py            # everything (about 10 minutes on 2 cores)
    python benchmarks/forecast_quality.py --only airline,co2 --no-stocks

Every series runs twice: with the **default** settings (``rnnkit forecast backtest`` given only the
horizon: lookback, transform, strategy and early stopping chosen from the data by
``rnnkit.forecast.defaults.data_defaults``) and with the **tuned** settings below. Both report the
calibrated (split-conformal, the default) and the head's own 90% intervals: coverage, mean width
and interval (Winkler) score, beside the naive and seasonal-naive baselines' residual-based intervals.

Prints Markdown tables for the README; ``--out results.json`` also keeps every metric.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from rnnkit.forecast import RNNForecaster, backtest
from rnnkit.forecast.defaults import data_defaults
from rnnkit.io.atomic import check_outputs, write_json


def load_airline():
    from sktime.datasets import load_airline as load
    return load().to_numpy(dtype=float)


def load_co2():
    import statsmodels.api as sm
    s = sm.datasets.co2.load_pandas().data["co2"]
    monthly = s.groupby([s.index.year, s.index.month]).mean()     # weekly -> monthly means; skips NaN weeks
    monthly = monthly.interpolate(limit_direction="both")          # 5 months without any weekly reading
    return monthly.to_numpy(dtype=float)[:-1]                      # the last month is incomplete


def load_sunspots():
    import statsmodels.api as sm
    return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=float)


# name: (loader, seasonal period, model settings, backtest settings)
SEASONAL = {
    "airline": (load_airline, 12,
                dict(lookback=24, horizon=12, strategy="direct", transform="log_return", hidden_size=32, epochs=150),
                dict(horizon=12, initial=96, stride=6)),
    "co2": (load_co2, 12,
            dict(lookback=36, horizon=12, strategy="direct", transform="diff", hidden_size=32, epochs=60),
            dict(horizon=12, initial=408, stride=12)),
    "sunspots": (load_sunspots, 11,
                 dict(lookback=33, horizon=11, strategy="direct", transform="level", hidden_size=32, epochs=100),
                 dict(horizon=11, initial=220, stride=11)),
}

STOCK = dict(lookback=60, horizon=5, strategy="recursive", transform="log_return", hidden_size=32, epochs=20,
             validation_fraction=0.1, early_stopping_patience=3)
METHODS = ("conformal", "head")


def _row(mt, name):
    m = mt[name]
    return f"{m['coverage_90']:.2f} / {m['width_90']:.4g} / {m['winkler_90']:.4g}"


def run_seasonal(names, seed, record):
    print("| series | settings | folds x h | model MASE | seasonal-naive MASE | naive MASE | "
          "model 90% conformal: coverage / width / interval score | model 90% head (uncalibrated) | "
          "seasonal naive 90% | naive 90% | run time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        loader, m, tuned, bt = SEASONAL[name]
        y = loader()
        defaults = data_defaults(y[:bt["initial"]], m, {"horizon": bt["horizon"]})
        for label, cfg in (("default", defaults), ("tuned", tuned)):
            t0 = time.perf_counter()
            res = backtest(RNNForecaster(**cfg, random_state=seed), y, seasonal_period=m, coverage=0.9,
                           interval_method=METHODS, **bt)
            sec = time.perf_counter() - t0
            mt = res.metrics
            config = (f"{cfg.get('strategy', 'recursive')} GRU-{cfg.get('hidden_size', 32)}, L={cfg['lookback']}, {cfg['transform']}"
                      + (f", early stopping on {cfg['validation_fraction']:.0%}" if cfg.get("validation_fraction")
                         else f", {cfg['epochs']} epochs"))
            print(f"| {name} | {label}: {config} | {len(res.folds)} x {bt['horizon']} | **{mt['model']['mase']:.3f}** | "
                  f"{mt['seasonal_naive']['mase']:.3f} | {mt['naive']['mase']:.3f} | {_row(mt, 'model')} | "
                  f"{_row(mt, 'model_head')} | {_row(mt, 'seasonal_naive')} | {_row(mt, 'naive')} | {sec:.0f} s |",
                  flush=True)
            record.append({"series": name, "settings": label, "config": cfg, "folds": len(res.folds),
                           "horizon": bt["horizon"], "seconds": sec, "metrics": mt})


def run_stocks(tickers, seed, record):
    from rnnkit.forecast.data import load_stock
    print("| ticker | test days | model RMSE | random-walk RMSE | RMSE vs RW | model directional accuracy | "
          "90% coverage conformal / head / random walk | 90% interval score conformal / head / random walk | run time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in tickers:
        s = load_stock(t)
        y = s.y[:, 0]
        t0 = time.perf_counter()
        res = backtest(RNNForecaster(**STOCK, random_state=seed), y, horizon=5, initial=int(0.7 * len(y)),
                       stride=5, refit=False, seasonal_period=5, coverage=0.9, interval_method=METHODS)
        sec = time.perf_counter() - t0
        mt = res.metrics
        mm, rw = mt["model"], mt["naive"]
        print(f"| {t} | {len(y) - int(0.7 * len(y))} | {mm['rmse']:.3f} | {rw['rmse']:.3f} | "
              f"{mm['rmse'] / rw['rmse'] - 1:+.1%} | {mm['directional_accuracy']:.3f} | "
              f"{mm['coverage_90']:.2f} / {mt['model_head']['coverage_90']:.2f} / {rw['coverage_90']:.2f} | "
              f"{mm['winkler_90']:.3g} / {mt['model_head']['winkler_90']:.3g} / {rw['winkler_90']:.3g} | "
              f"{sec:.0f} s |", flush=True)
        record.append({"ticker": t, "config": STOCK, "seconds": sec, "metrics": mt})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SEASONAL), help="seasonal series to run")
    ap.add_argument("--tickers", default="AAPL,GOOG,IBM,MSFT")
    ap.add_argument("--no-stocks", action="store_true")
    ap.add_argument("--random-state", dest="seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON file for every metric")
    args = ap.parse_args(argv)
    if args.out:
        check_outputs({"--out": args.out})
    names = [n for n in args.only.split(",") if n]
    record = {"seasonal": [], "stocks": []}
    if names:
        run_seasonal(names, args.seed, record["seasonal"])
    if not args.no_stocks:
        print()
        run_stocks([t for t in args.tickers.split(",") if t], args.seed, record["stocks"])
    if args.out:
        write_json(args.out, record, what="--out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
