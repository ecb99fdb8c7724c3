r"""Forecast accuracy metrics. ``y`` is the actual, :math:`\hat y` the forecast, e = y - ŷ.

- MSE :math:`\overline{e^2}`, RMSE :math:`\sqrt{\mathrm{MSE}}`, MAE :math:`\overline{|e|}`.
- MAPE :math:`100\,\overline{|e| / |y|}` in percent. **Zeros:** a point whose actual
  is exactly 0 has no percentage error and is left out; with no point left the
  MAPE is NaN. (Use sMAPE or MASE for series that touch zero.)
- sMAPE :math:`200\,\overline{|e| / (|y| + |\hat y|)}` in percent (0..200); a point
  where both are 0 counts as 0.
- MASE :math:`\mathrm{MAE} / \overline{|y_t - y_{t-m}|}_{\text{train}}` (Hyndman &
  Koehler 2006): the error relative to the in-sample one-step seasonal-naive
  error with period m (m = 1: naive). Below 1 beats that in-sample benchmark.
- Directional accuracy: the share of steps where the forecast moves in the
  same direction from the origin's last value :math:`y_o` as the actual,
  :math:`\mathrm{sign}(\hat y - y_o) = \mathrm{sign}(y - y_o)`; steps where either
  change is exactly 0 are left out (NaN if none remain: the naive forecast
  never moves, so it has none).
- Coverage: the share of actuals inside [lower, upper]; width: the mean of
  :math:`u - l`.
- Interval (Winkler) score of a central :math:`(1-\alpha)` interval (Winkler 1972;
  Gneiting & Raftery 2007, eq. 43):
  :math:`\overline{(u - l) + \tfrac{2}{\alpha}(l - y)[y < l] + \tfrac{2}{\alpha}(y - u)[y > u]}`,
  lower is better: it rewards narrow intervals and charges each miss by how far
  it misses, so an interval cannot win by being narrow and wrong.
- Pinball loss of a quantile :math:`q_\tau`: :math:`\overline{\max(\tau e, (\tau - 1) e)}`
  with :math:`e = y - q_\tau`, averaged over the levels given.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from ..errors import DataError

__all__ = ["mse", "rmse", "mae", "mape", "smape", "mase", "mase_scale", "directional_accuracy",
           "coverage", "interval_width", "interval_score", "pinball_loss", "interval_metrics", "evaluate"]


def _pair(y, yhat):
    y, yhat = np.asarray(y, dtype=np.float64), np.asarray(yhat, dtype=np.float64)
    if y.shape != yhat.shape:
        raise ValueError(f"actual shape {y.shape} differs from forecast shape {yhat.shape}")
    return y, yhat


def mse(y, yhat) -> float:
    y, yhat = _pair(y, yhat)
    return float(np.mean((y - yhat) ** 2))


def rmse(y, yhat) -> float:
    return float(np.sqrt(mse(y, yhat)))


def mae(y, yhat) -> float:
    y, yhat = _pair(y, yhat)
    return float(np.mean(np.abs(y - yhat)))


def mape(y, yhat) -> float:
    y, yhat = _pair(y, yhat)
    keep = y != 0
    if not keep.any():
        return float("nan")
    return float(100.0 * np.mean(np.abs(y - yhat)[keep] / np.abs(y[keep])))


def smape(y, yhat) -> float:
    y, yhat = _pair(y, yhat)
    den = np.abs(y) + np.abs(yhat)
    ratio = np.divide(np.abs(y - yhat), den, out=np.zeros_like(den), where=den > 0)
    return float(200.0 * np.mean(ratio))


def mase_scale(train, m: int = 1) -> np.ndarray:
    """In-sample MAE of the seasonal-naive forecast with period m, per column."""
    train = np.asarray(train, dtype=np.float64)
    if train.ndim == 1:
        train = train[:, None]
    if len(train) <= m:
        raise DataError(f"MASE with --seasonal-period {m} needs more than {m} training values, got {len(train)}; "
                        "lower --seasonal-period or give a longer --initial")
    return np.mean(np.abs(train[m:] - train[:-m]), axis=0)


def mase(y, yhat, train, m: int = 1) -> float:
    """MAE scaled by :func:`mase_scale` (per column for several targets, then averaged)."""
    y, yhat = _pair(y, yhat)
    scale = mase_scale(train, m)
    if np.any(scale == 0):
        raise DataError(f"MASE is undefined: the training series does not change at lag {m} (--seasonal-period), "
                        "so the seasonal-naive error it is scaled by is 0; choose another --seasonal-period")
    err = np.abs(y - yhat).reshape(len(y), -1) if y.ndim > 1 else np.abs(y - yhat)[:, None]
    return float(np.mean(err.mean(axis=0) / scale))


def directional_accuracy(y, yhat, origin) -> float:
    y, yhat = _pair(y, yhat)
    dy, dp = np.sign(y - origin), np.sign(yhat - origin)
    keep = (dy != 0) & (dp != 0)
    if not keep.any():
        return float("nan")
    return float(np.mean(dy[keep] == dp[keep]))


def coverage(y, lower, upper) -> float:
    y, lower = _pair(y, lower)
    upper = np.asarray(upper, dtype=np.float64)
    return float(np.mean((y >= lower) & (y <= upper)))


def interval_width(lower, upper) -> float:
    lower, upper = _pair(lower, upper)
    return float(np.mean(upper - lower))


def interval_score(y, lower, upper, coverage: float) -> float:
    """Mean Winkler score of the central ``coverage`` interval [lower, upper] (see the module docstring)."""
    y, lower = _pair(y, lower)
    upper = np.asarray(upper, dtype=np.float64)
    alpha = 1.0 - coverage
    below, above = np.maximum(lower - y, 0.0), np.maximum(y - upper, 0.0)
    return float(np.mean(upper - lower + (2.0 / alpha) * (below + above)))


def pinball_loss(y, quantiles: Dict[float, np.ndarray]) -> float:
    """Mean pinball loss over the levels ``tau -> q_tau`` (each shaped like y)."""
    losses = []
    for tau, q in quantiles.items():
        y_, q = _pair(y, q)
        e = y_ - q
        losses.append(np.mean(np.maximum(tau * e, (tau - 1.0) * e)))
    return float(np.mean(losses))


def interval_metrics(y, intervals: Dict[float, tuple]) -> Dict[str, float]:
    """Coverage, width and interval score per nominal level (keys ``coverage_90`` ...), and the
    pinball loss of the interval ends as quantiles (levels (1 -+ c) / 2) in ``pinball``."""
    out, quant = {}, {}
    for c, (lo, hi) in sorted(intervals.items()):
        tag = f"{100 * c:g}".replace(".", "_")
        out[f"coverage_{tag}"] = coverage(y, lo, hi)
        out[f"width_{tag}"] = interval_width(lo, hi)
        out[f"winkler_{tag}"] = interval_score(y, lo, hi, c)
        quant[(1 - c) / 2], quant[(1 + c) / 2] = lo, hi
    if quant:
        out["pinball"] = pinball_loss(y, quant)
    return out


def evaluate(y, yhat, *, train=None, m: int = 1, origin=None, lower=None, upper=None) -> Dict[str, float]:
    """Every metric that the given arguments allow, in one dict."""
    out = {"mse": mse(y, yhat), "rmse": rmse(y, yhat), "mae": mae(y, yhat), "mape": mape(y, yhat),
           "smape": smape(y, yhat)}
    if train is not None:
        out["mase"] = mase(y, yhat, train, m)
    if origin is not None:
        out["directional_accuracy"] = directional_accuracy(y, yhat, origin)
    if lower is not None and upper is not None:
        out["coverage"] = coverage(y, lower, upper)
    return out
