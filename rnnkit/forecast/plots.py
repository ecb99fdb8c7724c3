"""PNG figures for forecasts and backtests (matplotlib is an optional extra; see :mod:`rnnkit.plotting`).

- :func:`plot_forecast`: the recent history, the forecast and its interval
  (and the actual values over the forecast period when they are known);
- :func:`plot_backtest`: every fold's forecast path over the actual series, and
  the error by horizon step for the model and each baseline;
- :func:`save_loss_curve`: training (and validation) loss against the step (the shared one of
  :mod:`rnnkit.plotting`).

Every figure is written through :func:`rnnkit.io.atomic.save_figure`: a failed
write leaves the previous file whole.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..plotting import require_pyplot, save_loss_curve, save_png
from .backtest import BacktestResult
from .conformal import percent

__all__ = ["plot_forecast", "plot_backtest", "save_loss_curve"]


def _save(fig, path, what: Optional[str]) -> str:
    """Lay out, write atomically, close (the shared helper)."""
    return save_png(fig, path, what=what)


def plot_forecast(path: str, hist_x: Sequence, hist_y: np.ndarray, fut_x: Sequence, mean: np.ndarray,
                  lower: Optional[np.ndarray] = None, upper: Optional[np.ndarray] = None,
                  actual: Optional[np.ndarray] = None, coverage: Optional[float] = None,
                  label: str = "value", title: str = "", show_last: int = 200, what: Optional[str] = "--plot") -> str:
    """History (last ``show_last`` points), forecast mean and interval; 1-D series."""
    plt = require_pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    hx, hy = list(hist_x)[-show_last:], np.asarray(hist_y)[-show_last:]
    ax.plot(hx, hy, color="0.25", lw=1, label="history")
    if actual is not None:
        ax.plot(fut_x, actual, color="0.25", lw=1, ls="--", label="actual")
    # join the forecast to the last observation so the line is continuous
    fx, fm = [hx[-1]] + list(fut_x), np.concatenate([hy[-1:], mean])
    ax.plot(fx, fm, color="C1", lw=1.5, label="forecast")
    if lower is not None and upper is not None:
        name = f"{percent(coverage)} interval" if coverage else "interval"
        ax.fill_between(list(fut_x), lower, upper, color="C1", alpha=0.25, lw=0, label=name)
    ax.set_ylabel(label)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.autofmt_xdate()
    return _save(fig, path, what)


def plot_backtest(path: str, result: BacktestResult, y: np.ndarray, x: Optional[Sequence] = None,
                  label: str = "value", title: str = "", what: Optional[str] = "--plot") -> str:
    """Top: actual series over the test period with each fold's forecasts (and intervals).
    Bottom: MAE by horizon step for the model and the baselines."""
    plt = require_pyplot()
    y = np.asarray(y, dtype=np.float64)
    y = y[:, 0] if y.ndim == 2 else y
    x = list(range(len(y))) if x is None else list(x)
    folds = result.folds
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 7), gridspec_kw={"height_ratios": [3, 2]})
    start = max(0, folds[0].origin - 3 * result.horizon)
    end = folds[-1].origin + result.horizon
    ax.plot(x[start:end], y[start:end], color="0.25", lw=1, label="actual")
    method = "model" if "model" in result.methods else "naive"
    for i, f in enumerate(folds):
        fx = x[f.origin:f.origin + result.horizon]
        ax.plot(fx, f.forecasts[method][:, 0], color="C1", lw=1.2, alpha=0.9,
                label=f"{method} forecasts" if i == 0 else None)
        if f.lower is not None:
            ax.fill_between(fx, f.lower[:, 0], f.upper[:, 0], color="C1", alpha=0.12, lw=0,
                            label=f"{percent(result.coverage_level)} intervals" if i == 0 else None)
    ax.set_ylabel(label)
    ax.set_title(title or f"rolling-origin backtest: {len(folds)} folds, horizon {result.horizon}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    h = np.arange(1, result.horizon + 1)
    for j, m in enumerate(result.methods):
        style = {"lw": 2.0, "color": "C1"} if m == "model" else {"lw": 1.0, "ls": "--", "color": f"C{j + 2}"}
        mase = result.metrics[m].get("mase", float("nan"))
        ax2.plot(h, result.per_horizon(m, "mae"), marker="o", ms=3, label=f"{m} (MASE {mase:.3g})", **style)
    ax2.set_xlabel("horizon step")
    ax2.set_ylabel("MAE")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="best", fontsize=8)
    return _save(fig, path, what)
