"""Checking arrays handed to the forecaster: numeric, finite, and of the expected shape.

Every problem raises :class:`~rnnkit.errors.DataError` naming the argument and,
for missing or infinite values, the rows, so a user can find them.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import DataError
from ..nn.xp import to_host

__all__ = ["as_matrix", "describe_rows"]


def describe_rows(rows, limit: int = 8) -> str:
    """'3, 7 and 12' or '3, 7, 12, ... (40 in all)' for a list of row numbers."""
    rows = [int(r) for r in rows]
    if len(rows) > limit:
        return ", ".join(map(str, rows[:limit])) + f", ... ({len(rows)} in all)"
    if len(rows) == 1:
        return str(rows[0])
    return ", ".join(map(str, rows[:-1])) + " and " + str(rows[-1])


def as_matrix(name: str, a, rows: Optional[int] = None, cols: Optional[int] = None,
              what: str = "") -> Optional[np.ndarray]:
    """``a`` as a float64 (T, k) array (a 1-D input becomes one column); None stays None.

    ``rows`` / ``cols``: the required number of rows / columns (``what`` says why).
    """
    if a is None:
        return None
    if hasattr(a, "to_numpy"):                 # pandas objects, without importing pandas
        a = a.to_numpy()
    arr = np.asarray(to_host(a))               # a device array (CuPy, ...) comes to the host: forecasting runs there
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{name}: expected numbers, got values of type {arr.dtype} "
                            "(convert text columns to numbers first)") from None
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name}: expected real numbers, got complex values")
    arr = arr.astype(np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 1-D series or a 2-D array (time, columns), got shape {arr.shape}")
    if len(arr) == 0 or arr.shape[1] == 0:
        raise DataError(f"{name}: is empty (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        kind = "missing (NaN)" if np.isnan(arr[bad]).all() else "missing or infinite"
        raise DataError(f"{name}: {kind} values at rows {describe_rows(np.nonzero(bad.any(axis=1))[0])}; "
                        "fill or drop them first")
    if rows is not None and len(arr) != rows:
        raise DataError(f"{name}: expected {rows} rows{' (' + what + ')' if what else ''}, got {len(arr)}")
    if cols is not None and arr.shape[1] != cols:
        raise DataError(f"{name}: expected {cols} column(s) as in training, got {arr.shape[1]}")
    return arr
