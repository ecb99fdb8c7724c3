r"""Sliding training windows over one scaled series.

Indices are on the model's time grid s = 0 .. n-1 (after differencing, row s
of the scaled targets ``u`` is the change into level time s + d). The input row
at step s is :math:`x_s = [u_s, p_s, f_{s+1}]` (see :mod:`rnnkit.forecast.model`):
known-future covariates are shifted one step so each input carries those of
the step it predicts.

A window of lookback L starting at i reads inputs :math:`x_i .. x_{i+L-1}`; its
origin is o = i + L - 1, the last step it sees. Targets lie strictly after
the inputs they are predicted from, so a window never sees its own answer.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

__all__ = ["stack_inputs", "recursive_windows", "direct_windows", "direct_targets"]


def stack_inputs(u: np.ndarray, past: Optional[np.ndarray], future: Optional[np.ndarray]) -> np.ndarray:
    """Input rows [u_s, p_s, f_{s+1}] for every s that has its f_{s+1}: (min(n, m-1), D).

    ``u`` (n, k); ``past`` (n, p) or None; ``future`` (m, f) or None on the same grid
    (m may exceed n by the forecast steps). Without future covariates every s has a row.
    """
    parts = [u]
    if past is not None:
        parts.append(past)
    rows = len(u)
    if future is not None:
        rows = min(rows, len(future) - 1)
        parts = [p[:rows] for p in parts] + [future[1:rows + 1]]
    return np.concatenate(parts, axis=1)


def _gather(a: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """a[starts[j] + t] for t < length: (length, N, ...), time-major as the RNN wants."""
    idx = starts[None, :] + np.arange(length)[:, None]            # (length, N)
    return a[idx]


def recursive_windows(X: np.ndarray, V: np.ndarray, lookback: int) -> Tuple[np.ndarray, np.ndarray]:
    """Teacher-forcing windows: inputs X[i .. i+L-1] and next-step targets V[i+1 .. i+L].

    X (n_x, D), V (n, n_out). Returns inputs (L, N, D) and targets (L, N, n_out),
    N = min(n_x, n - 1) - L + 1.
    """
    last = min(len(X), len(V) - 1)                                 # inputs that have a next target
    starts = np.arange(last - lookback + 1)
    return _gather(X, starts, lookback), _gather(V, starts + 1, lookback)


def direct_targets(u: np.ndarray, origins: np.ndarray, horizon: int, order: int) -> np.ndarray:
    """Targets for origins o: u[o+h] (d = 0) or the cumulative sum_{j<=h} u[o+j] (d = 1): (N, H, k)."""
    steps = _gather(u, origins + 1, horizon).transpose(1, 0, 2)    # (N, H, k)
    return np.cumsum(steps, axis=1) if order else steps


def direct_windows(X: np.ndarray, u: np.ndarray, future: Optional[np.ndarray], lookback: int,
                   horizon: int, order: int):
    """Windows for the direct strategy.

    Returns inputs (L, N, D), the horizon's known-future covariates (N, H*f)
    or None, and targets (N, H, k); N = min(len(X), n - H) - L + 1.
    """
    last_origin = min(len(X), len(u) - horizon) - 1
    starts = np.arange(last_origin - lookback + 2)
    if len(starts) == 0:
        return None, None, None
    origins = starts + lookback - 1
    fut = None
    if future is not None and future.shape[1]:
        fut = _gather(future, origins + 1, horizon).transpose(1, 0, 2).reshape(len(origins), -1)
    return _gather(X, starts, lookback), fut, direct_targets(u, origins, horizon, order)
