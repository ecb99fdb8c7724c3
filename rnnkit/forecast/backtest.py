r"""Rolling-origin backtesting (time-series cross-validation).

Fold j has origin :math:`o_j = \text{initial} + j \cdot \text{stride}`. The model
(and the scaling inside it) is fitted on :math:`y_{s_j} .. y_{o_j - 1}` only and
forecasts :math:`y_{o_j} .. y_{o_j + H - 1}`; with ``window="expanding"``
:math:`s_j = 0`, with ``"sliding"`` :math:`s_j = o_j - \text{initial}` (a fixed-length
window). Known-future covariates are the only data of the horizon the model
sees, which is what "known future" means. With ``refit=False`` the model is
fitted on the first fold's window once, and later folds only condition on
their longer history (no weights change); ``refit=k`` refits every k folds.

The baselines (naive, seasonal naive, drift) get the same history as the
model, and MASE is scaled per fold on that fold's training window.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..checks import check_choice, check_count, check_optional_count
from ..errors import DataError
from ..estimator import flag_of
from .baselines import baseline_forecasts
from .metrics import evaluate, mase_scale
from .scaling import ScaleOverflow
from .validation import as_matrix

__all__ = ["rolling_origin_splits", "backtest", "BacktestResult", "Fold"]


def rolling_origin_splits(n: int, *, initial: int, horizon: int, stride: int = 1, window: str = "expanding",
                          max_folds: Optional[int] = None) -> List[Tuple[int, int]]:
    """(train_start, origin) of every fold; training is [train_start, origin), test [origin, origin + H).

    With ``max_folds`` only the last that many folds are kept (the most recent origins).
    """
    for name, v in (("initial", initial), ("horizon", horizon), ("stride", stride)):
        check_count(flag_of(name), v, 1)
    check_choice(flag_of("window"), window, ("expanding", "sliding"))
    check_optional_count(flag_of("max_folds"), max_folds, 1)
    if initial + horizon > n:
        raise DataError(f"backtest: the series has {n} values, fewer than --initial {initial} + --horizon "
                        f"{horizon}; lower --initial or --horizon")
    origins = list(range(initial, n - horizon + 1, stride))
    if max_folds is not None:
        origins = origins[-max_folds:]
    return [(0 if window == "expanding" else o - initial, o) for o in origins]


@dataclass
class Fold:
    start: int
    origin: int
    actual: np.ndarray                                  # (H, k)
    forecasts: Dict[str, np.ndarray]                    # method -> (H, k)
    lower: Optional[np.ndarray] = None                  # model interval, (H, k)
    upper: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None                  # MASE scale of this fold's training window
    seconds: float = 0.0


@dataclass
class BacktestResult:
    """Folds and their summary: ``metrics[method][metric]`` averaged over folds."""

    folds: List[Fold]
    horizon: int
    seasonal_period: int
    coverage_level: Optional[float]
    methods: List[str]
    metrics: Dict[str, Dict[str, float]] = field(default_factory=dict)

    def per_horizon(self, method: str, metric: str = "mae") -> np.ndarray:
        """Error by horizon step h = 1..H, averaged over folds: (H,)."""
        e = np.stack([f.actual - f.forecasts[method] for f in self.folds])   # (F, H, k)
        vals = np.abs(e) if metric == "mae" else e ** 2
        out = vals.mean(axis=(0, 2))
        return np.sqrt(out) if metric == "rmse" else out

    def table(self, columns=("mase", "rmse", "mae", "mape", "smape", "directional_accuracy", "coverage")) -> str:
        """The metrics as an aligned text table, one row per method."""
        cols = [c for c in columns if any(c in m for m in self.metrics.values())]
        head = ["method"] + cols
        rows = [[name] + [_fmt(self.metrics[name].get(c)) for c in cols] for name in self.methods]
        widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
        line = lambda r: "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
        return "\n".join([line(head)] + [line(r) for r in rows])


def _fmt(v) -> str:
    if v is None:
        return "-"
    if v != v:      # NaN
        return "n/a"
    return f"{v:.4g}"


def _slice(a, lo, hi):
    return None if a is None else a[lo:hi]


def _clone(forecaster):
    return type(forecaster)(**forecaster.get_params(deep=False))


def backtest(forecaster, y, *, horizon: int, initial: int, stride: int = 1, window: str = "expanding",
             refit=True, past_covariates=None, future_covariates=None, seasonal_period: int = 1,
             coverage: Optional[float] = 0.9, max_folds: Optional[int] = None,
             progress: bool = False) -> BacktestResult:
    """Rolling-origin evaluation of ``forecaster`` beside the baselines (see the module docstring).

    ``forecaster`` has ``fit(y, past_covariates=, future_covariates=)`` and
    ``predict(horizon, y=, past_covariates=, future_covariates=)`` (and
    ``predict_interval`` for coverage); it is cloned, never modified. Pass
    ``forecaster=None`` to evaluate the baselines alone.
    """
    Y = as_matrix("y", y)
    n = len(Y)
    P = as_matrix("past_covariates", past_covariates, rows=n)
    F = as_matrix("future_covariates", future_covariates, rows=n)
    check_count(flag_of("seasonal_period"), seasonal_period, 1)
    if not (refit is True or refit is False):
        check_count(flag_of("refit"), refit, 1)        # refit every k folds
    splits = rolling_origin_splits(n, initial=initial, horizon=horizon, stride=stride, window=window,
                                   max_folds=max_folds)
    one_d = np.ndim(y) == 1 or (hasattr(y, "ndim") and y.ndim == 1)
    use_intervals = (forecaster is not None and coverage is not None
                     and getattr(forecaster, "head", "gaussian") != "point")
    methods = (["model"] if forecaster is not None else []) + ["naive", "seasonal_naive", "drift"]
    every = 1 if refit is True else (0 if refit is False else int(refit))
    model, folds = None, []
    for j, (s, o) in enumerate(splits):
        t0 = time.perf_counter()
        hist = Y[s:o]
        kw_hist = {"past_covariates": _slice(P, s, o), "future_covariates": _slice(F, s, o)}
        forecasts = baseline_forecasts(hist, horizon, seasonal_period)
        lower = upper = None
        if forecaster is not None:
            try:
                if model is None or (every and j % every == 0):
                    model = _clone(forecaster)
                    model.fit(_flat(hist, one_d), **kw_hist)
                kw_pred = {"y": _flat(hist, one_d), "past_covariates": kw_hist["past_covariates"],
                           "future_covariates": _slice(F, s, o + horizon)}
                forecasts["model"] = _cols(model.predict(horizon, **kw_pred))
                if use_intervals:
                    lo, hi = model.predict_interval(coverage, horizon, **kw_pred)
                    lower, upper = _cols(lo), _cols(hi)
            except ScaleOverflow as e:   # positions in the fold's window -> positions in the whole series
                raise type(e)(e.what, e.column, e.row + s, e.value, e.why, e.fix) from None
        folds.append(Fold(start=s, origin=o, actual=Y[o:o + horizon], forecasts=forecasts, lower=lower,
                          upper=upper, scale=mase_scale(hist, seasonal_period),
                          seconds=time.perf_counter() - t0))
        if progress:
            print(f"backtest fold {j + 1}/{len(splits)}: train [{s}, {o}), test [{o}, {o + horizon}) "
                  f"{folds[-1].seconds:.1f}s", file=sys.stderr, flush=True)
    result = BacktestResult(folds, horizon, seasonal_period, coverage if use_intervals else None, methods)
    result.metrics = {m: _summarise(folds, m, seasonal_period, with_interval=(m == "model" and use_intervals))
                      for m in methods}
    return result


def _flat(a, one_d):
    return a[:, 0] if one_d else a


def _cols(a):
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _summarise(folds: List[Fold], method: str, m: int, with_interval: bool) -> Dict[str, float]:
    """Pooled MSE/MAE/MAPE/sMAPE over every fold and step; MASE and DA averaged over folds."""
    actual = np.concatenate([f.actual for f in folds])
    pred = np.concatenate([f.forecasts[method] for f in folds])
    kw = {}
    if with_interval:
        kw = {"lower": np.concatenate([f.lower for f in folds]), "upper": np.concatenate([f.upper for f in folds])}
    out = evaluate(actual, pred, **kw)
    if all(np.all(f.scale > 0) for f in folds):
        out["mase"] = float(np.mean([np.mean(np.abs(f.actual - f.forecasts[method]).mean(axis=0) / f.scale)
                                     for f in folds]))
    else:
        out["mase"] = float("nan")      # some window never changes at lag m: MASE is undefined there
    da = []
    for f in folds:
        origin = f.forecasts["naive"][0]                                  # y at the origin, (k,)
        dy, dp = np.sign(f.actual - origin), np.sign(f.forecasts[method] - origin)
        keep = (dy != 0) & (dp != 0)
        da.append((np.sum(dy[keep] == dp[keep]), np.sum(keep)))
    hits, count = map(sum, zip(*da))
    out["directional_accuracy"] = float(hits / count) if count else float("nan")
    return out
