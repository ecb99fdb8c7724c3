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

Intervals are scored at every nominal level in ``levels`` (and ``coverage``):
empirical coverage, mean width, the interval (Winkler) score and the pinball
loss of the interval ends (:mod:`.metrics`), for the model (its
``predict_interval``, by default the split-conformal intervals calibrated inside
each fold's own training window) and for the baselines' residual-based
intervals (:func:`.baselines.baseline_intervals`), so a model's intervals are
compared with the baselines' on coverage and sharpness together.
"""

from __future__ import annotations

import inspect
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..checks import check_choice, check_count, check_optional_count
from ..errors import DataError
from ..estimator import flag_of
from .baselines import baseline_forecasts, baseline_intervals
from .metrics import evaluate, interval_metrics, mase_scale
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
    lower: Optional[np.ndarray] = None                  # model interval at the coverage level, (H, k)
    upper: Optional[np.ndarray] = None
    # method -> nominal level -> (lower, upper), each (H, k): the model's and the baselines'
    intervals: Dict[str, Dict[float, Tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
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
        """The metrics as an aligned text table, one row per method (interval scores appended)."""
        kinds = ("coverage", "width", "winkler")
        extra = sorted({c for m in self.metrics.values() for c in m if c.split("_")[0] in kinds and "_" in c},
                       key=lambda c: (c.split("_", 1)[1], kinds.index(c.split("_")[0])))   # by level, then kind
        columns = tuple(c for c in columns if c != "coverage") + tuple(extra) + ("pinball",)
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
             progress: bool = False, levels: Sequence[float] = (0.8, 0.9),
             interval_method: Union[str, Sequence[str], None] = "conformal") -> BacktestResult:
    """Rolling-origin evaluation of ``forecaster`` beside the baselines (see the module docstring).

    ``forecaster`` has ``fit(y, past_covariates=, future_covariates=)`` and
    ``predict(horizon, y=, past_covariates=, future_covariates=)`` (and
    ``predict_interval`` for coverage); it is cloned, never modified. Pass
    ``forecaster=None`` to evaluate the baselines alone. ``levels`` (with
    ``coverage``) are the nominal levels whose intervals are scored (``coverage=None``:
    none). ``interval_method`` is passed to ``predict_interval(method=...)`` when
    it takes one; with several (e.g. ``("conformal", "head")``) the first is the
    model's row and each other adds a row ``model_<method>`` (same point forecast).
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
    if initial < seasonal_period:         # the first fold's seasonal naive baseline needs a whole season
        raise DataError(f"backtest: --initial {initial} gives the first fold {initial} value(s), fewer than the "
                        f"season of {seasonal_period} (--seasonal-period) that the seasonal naive baseline repeats; "
                        f"raise --initial to at least {seasonal_period} or lower --seasonal-period")
    one_d = np.ndim(y) == 1 or (hasattr(y, "ndim") and y.ndim == 1)
    levels = [] if coverage is None else sorted({float(c) for c in levels} | {float(coverage)})
    iv_methods = _interval_methods(forecaster, interval_method)
    use_intervals = forecaster is not None and coverage is not None and bool(iv_methods)
    rows = {meth: ("model" if i == 0 else f"model_{meth}") for i, meth in enumerate(iv_methods)} \
        if use_intervals else {}
    methods = (["model"] if forecaster is not None else []) + [r for r in rows.values() if r != "model"] \
        + ["naive", "seasonal_naive", "drift"]
    every = 1 if refit is True else (0 if refit is False else int(refit))
    model, folds = None, []
    for j, (s, o) in enumerate(splits):
        t0 = time.perf_counter()
        hist = Y[s:o]
        kw_hist = {"past_covariates": _slice(P, s, o), "future_covariates": _slice(F, s, o)}
        forecasts = baseline_forecasts(hist, horizon, seasonal_period)
        intervals = baseline_intervals(hist, horizon, seasonal_period, levels) if levels else {}
        lower = upper = None
        if forecaster is not None:
            try:
                if model is None or (every and j % every == 0):
                    model = _clone(forecaster)
                    model.fit(_flat(hist, one_d), **kw_hist)
                kw_pred = {"y": _flat(hist, one_d), "past_covariates": kw_hist["past_covariates"],
                           "future_covariates": _slice(F, s, o + horizon)}
                forecasts["model"] = _cols(model.predict(horizon, **kw_pred))
                for meth, row in rows.items():
                    forecasts[row] = forecasts["model"]
                    kw_m = {} if meth is None else {"method": meth}
                    intervals[row] = {c: tuple(map(_cols, model.predict_interval(c, horizon, **kw_pred, **kw_m)))
                                      for c in levels}
                if rows:
                    lower, upper = intervals["model"][float(coverage)]
            except ScaleOverflow as e:   # positions in the fold's window -> positions in the whole series
                raise type(e)(e.what, e.column, e.row + s, e.value, e.why, e.fix) from None
        folds.append(Fold(start=s, origin=o, actual=Y[o:o + horizon], forecasts=forecasts, lower=lower,
                          upper=upper, intervals=intervals, scale=mase_scale(hist, seasonal_period),
                          seconds=time.perf_counter() - t0))
        if progress:
            print(f"backtest fold {j + 1}/{len(splits)}: train [{s}, {o}), test [{o}, {o + horizon}) "
                  f"{folds[-1].seconds:.1f}s", file=sys.stderr, flush=True)
    result = BacktestResult(folds, horizon, seasonal_period, coverage if use_intervals else None, methods)
    result.metrics = {m: _summarise(folds, m, seasonal_period, coverage=coverage if levels else None)
                      for m in methods}
    return result


def _interval_methods(forecaster, interval_method) -> List[Optional[str]]:
    """The interval methods to ask ``forecaster`` for; [None] for one whose predict_interval takes no method."""
    if forecaster is None or interval_method is None or not hasattr(forecaster, "predict_interval"):
        return []
    names = [interval_method] if isinstance(interval_method, str) else list(interval_method)
    if "method" not in inspect.signature(forecaster.predict_interval).parameters:
        return [None] if getattr(forecaster, "head", "gaussian") != "point" else []
    if getattr(forecaster, "head", None) == "point":
        names = [n for n in names if n != "head"]        # a point head has no interval of its own
    return names


def _flat(a, one_d):
    return a[:, 0] if one_d else a


def _cols(a):
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _summarise(folds: List[Fold], method: str, m: int, coverage: Optional[float]) -> Dict[str, float]:
    """Pooled MSE/MAE/MAPE/sMAPE and interval scores over every fold and step; MASE and DA averaged over folds."""
    actual = np.concatenate([f.actual for f in folds])
    pred = np.concatenate([f.forecasts[method] for f in folds])
    out = evaluate(actual, pred)
    if coverage is not None and method in folds[0].intervals:
        pooled = {c: (np.concatenate([f.intervals[method][c][0] for f in folds]),
                      np.concatenate([f.intervals[method][c][1] for f in folds])) for c in folds[0].intervals[method]}
        out.update(interval_metrics(actual, pooled))
        out["coverage"] = out[f"coverage_{100 * coverage:g}".replace(".", "_")]
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
