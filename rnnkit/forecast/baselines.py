r"""The three baselines reported beside every model (Hyndman & Athanasopoulos, *FPP*, 5.2).

For a history :math:`y_1 .. y_T` and h = 1..H:

- **naive** (persistence, the random walk): :math:`\hat y_{T+h} = y_T`;
- **seasonal naive** with period m: :math:`\hat y_{T+h} = y_{T+h-m\lceil h/m \rceil}`,
  the value one season before (m = 1 is the naive forecast);
- **drift**: :math:`\hat y_{T+h} = y_T + h\,\frac{y_T - y_1}{T - 1}`, the line
  through the first and last observation.

Each takes y (T,) or (T, k) and returns (H,) or (H, k).
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from ..errors import DataError

__all__ = ["naive", "seasonal_naive", "drift", "BASELINES", "baseline_forecasts"]


def naive(y, horizon: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return np.repeat(y[-1:], horizon, axis=0)


def seasonal_naive(y, horizon: int, m: int = 1) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if len(y) < m:
        raise DataError(f"seasonal naive with --seasonal-period {m} needs at least {m} values, got {len(y)}; "
                        "lower --seasonal-period")
    h = np.arange(1, horizon + 1)
    idx = len(y) - 1 + h - m * np.ceil(h / m).astype(int)           # T + h - m*ceil(h/m), 0-based
    return y[idx]


def drift(y, horizon: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 2:
        return naive(y, horizon)
    slope = (y[-1] - y[0]) / (len(y) - 1)
    h = np.arange(1, horizon + 1).reshape((-1,) + (1,) * (y.ndim - 1))
    return y[-1] + h * slope


BASELINES: Dict[str, Callable] = {"naive": naive, "seasonal_naive": seasonal_naive, "drift": drift}


def baseline_forecasts(y, horizon: int, m: int = 1) -> Dict[str, np.ndarray]:
    """All three baselines for one history, keyed by name."""
    return {"naive": naive(y, horizon), "seasonal_naive": seasonal_naive(y, horizon, m),
            "drift": drift(y, horizon)}
