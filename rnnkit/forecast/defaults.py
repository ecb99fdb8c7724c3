r"""Model settings chosen from the data, for ``rnnkit forecast train | backtest`` run without model flags.

Each setting in :data:`AUTO` that the user leaves out (or passes as None) is chosen here; a
setting the user gives is kept. With :math:`m` the seasonal period read from the dates
(:func:`guess_period`: 12 monthly, 4 quarterly, 5 business days, 7 daily, else 1), ``T``
values and horizon ``H``:

- ``lookback`` :math:`L = 2m` (two seasons, so the network sees each season's pattern twice;
  at least 8), capped at a third of the values left for training, so a short series still
  gets windows to learn from;
- ``transform``: differences remove a trend, which a network fitted on standardised levels
  extrapolates badly (a level it never saw is outside its training range): ``"log_return"``
  (differences of logs) when the values are positive and the seasonal swing grows with the level
  (multiplicative seasonality, :func:`is_multiplicative`), else ``"diff"``;
- ``strategy="direct"`` for ``H > 1`` (all steps at once: no feedback of its own errors, and
  it measured better on the README's series), ``"recursive"`` for one step;
- ``validation_fraction=0.1`` (more if a tenth is shorter than the horizon): early stopping
  (patience ``early_stopping_patience``, 10) on that part of the series just before the
  calibration part, ending with the best validated weights.

Why: on a plain trend-plus-season series the estimator's own defaults (levels, recursive, no early
stopping) can fall behind seasonal naive; these beat it (``tests/test_forecast_defaults.py``).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import numpy as np

from .dates import DateStep

__all__ = ["AUTO", "data_defaults", "guess_period", "is_multiplicative"]

AUTO = ("lookback", "strategy", "transform", "validation_fraction")
VALIDATION = 0.1


def guess_period(step: Optional[DateStep]) -> int:
    """The seasonal period of a date step: a year in months (12 monthly, 6 two-monthly, 4 quarterly, ...),
    5 business days, 7 daily, else 1."""
    if step is None:
        return 1
    if step.kind == "months":
        return 12 // step.size if step.size < 12 and 12 % step.size == 0 else 1
    if step.kind == "bdays":
        return 5
    if step.kind == "seconds" and step.size == 86400:
        return 7
    return 1


def is_multiplicative(y, period: int, threshold: float = 0.5) -> bool:
    r"""Whether positive values ``y`` (T,) or (T, k) swing more at higher levels.

    Per season :math:`s` (consecutive blocks of ``period`` values, at least 4): the level
    :math:`\bar y_s` and the swing :math:`r_s`, the range of the block's first differences; true if
    their correlation exceeds ``threshold`` and the swing grows (from the first half of the seasons to
    the second) at least 0.7 times as fast as the level, in logs, for the first column.
    """
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
    if np.any(y <= 0) or not np.all(np.isfinite(y)):
        return False
    m = max(int(period), 4)
    blocks = len(y) // m
    if blocks < 4:
        return False
    seasons = y[len(y) - blocks * m:].reshape(blocks, m)                    # (S, m), the most recent
    level = seasons.mean(axis=1)
    swing = np.ptp(np.diff(seasons, axis=1), axis=1)
    if np.std(level) == 0 or np.std(swing) == 0:
        return False
    half = blocks // 2
    level_growth = np.log(level[-half:].mean() / level[:half].mean())
    swing_growth = np.log(swing[-half:].mean() / swing[:half].mean())
    # the swing grows at least 0.7 times as fast as the level (proportionally: the same rate), and with it
    return bool(np.corrcoef(level, swing)[0, 1] > threshold and abs(level_growth) > 0.05
                and swing_growth / level_growth > 0.7)


def data_defaults(y, period: int, params: Dict[str, Any], calibration_fraction: float = 0.2) -> Dict[str, Any]:
    """``params`` with every :data:`AUTO` setting that is missing or None chosen from the values ``y``
    (T,) or (T, k) the model will be fitted on."""
    n = len(y)
    out = dict(params)
    chosen = {k: out.get(k) for k in AUTO}
    H = int(out.get("horizon") or 1)
    if chosen["validation_fraction"] is None:      # at least one horizon (and a step) to validate on
        # (a direct model validates whole horizons; recursive, the estimator's default strategy, any step)
        chosen["validation_fraction"] = min(max(VALIDATION, math.ceil(100 * (H + 1) / max(n, 1)) / 100), 0.4)
    if chosen["transform"] is None:
        chosen["transform"] = "log_return" if is_multiplicative(y, period) else "diff"
    if chosen["strategy"] is None:
        chosen["strategy"] = "direct" if H > 1 else "recursive"
    if chosen["lookback"] is None:
        cal = out.get("calibration_fraction", calibration_fraction) or 0.0
        left = n * (1 - float(cal) - float(chosen["validation_fraction"])) - H - 1
        chosen["lookback"] = int(max(2, min(max(2 * period, 8), left // 3)))
    out.update(chosen)
    return out
