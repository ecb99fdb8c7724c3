r"""The three baselines reported beside every model (Hyndman & Athanasopoulos, *FPP*, 5.2).

For a history :math:`y_1 .. y_T` and h = 1..H:

- **naive** (persistence, the random walk): :math:`\hat y_{T+h} = y_T`;
- **seasonal naive** with period m: :math:`\hat y_{T+h} = y_{T+h-m\lceil h/m \rceil}`,
  the value one season before (m = 1 is the naive forecast);
- **drift**: :math:`\hat y_{T+h} = y_T + h\,\frac{y_T - y_1}{T - 1}`, the line
  through the first and last observation.

Each takes y (T,) or (T, k) and returns (H,) or (H, k).

Their prediction intervals are residual-based (*FPP* 5.5): with :math:`\hat\sigma`
the root mean square of the one-step in-sample residuals (:math:`y_t - y_{t-1}`
for naive and drift, :math:`y_t - y_{t-m}` for seasonal naive),
:math:`\hat y_{T+h} \pm \Phi^{-1}(\tfrac{1+c}{2})\,\hat\sigma_h` with
:math:`\hat\sigma_h = \hat\sigma\sqrt h` (naive),
:math:`\hat\sigma\sqrt{\lfloor (h-1)/m \rfloor + 1}` (seasonal naive) and
:math:`\hat\sigma\sqrt{h (1 + h/T)}` (drift): Gaussian random-walk intervals, the
honest yardstick for a model's intervals.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Callable, Dict, Sequence, Tuple

import numpy as np

from ..errors import DataError

__all__ = ["naive", "seasonal_naive", "drift", "BASELINES", "baseline_forecasts", "baseline_intervals"]


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


def _sigma_h(y: np.ndarray, horizon: int, m: int, method: str) -> np.ndarray:
    """The residual-based standard deviation of each step: (H, k) for y (T, k)."""
    lag = m if method == "seasonal_naive" else 1
    res = y[lag:] - y[:-lag]                                                 # (T - lag, k)
    if method == "drift" and len(y) > 2:
        res = res - (y[-1] - y[0]) / (len(y) - 1)                            # residuals about the drift
    sigma = np.sqrt(np.mean(res ** 2, axis=0)) if len(res) else np.zeros(y.shape[1])    # (k,)
    h = np.arange(1, horizon + 1, dtype=np.float64)
    growth = {"naive": np.sqrt(h), "seasonal_naive": np.sqrt(np.floor((h - 1) / m) + 1),
              "drift": np.sqrt(h * (1 + h / len(y)))}[method]
    return growth[:, None] * sigma[None, :]


def baseline_intervals(y, horizon: int, m: int, levels: Sequence[float]
                       ) -> Dict[str, Dict[float, Tuple[np.ndarray, np.ndarray]]]:
    """method -> coverage -> (lower, upper), each (H, k), for y (T, k) (see the module docstring)."""
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    points = baseline_forecasts(y, horizon, m)
    out: Dict[str, Dict[float, Tuple[np.ndarray, np.ndarray]]] = {}
    for name, point in points.items():
        sd = _sigma_h(y, horizon, m, name)                                   # (H, k)
        out[name] = {}
        for c in levels:
            z = NormalDist().inv_cdf((1 + c) / 2)
            out[name][c] = (point - z * sd, point + z * sd)
    return out
