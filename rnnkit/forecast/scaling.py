r"""From price levels to what the network sees, and exactly back.

A series of levels :math:`y_t` (shape (T, k)) goes through three steps:

1. **transform** ``g``: identity, or :math:`\log y` (needs :math:`y > 0`);
2. **difference** of order ``d`` (0 or 1): :math:`x_t = g(y_t) - g(y_{t-1})` when ``d = 1``;
3. **affine scaling**, fitted on the training part only:
   :math:`u_t = (x_t - a) / b` with :math:`b > 0`; ``standard``: a = mean, b = std;
   ``minmax``: a = min, b = max - min (u in [0, 1] on the training part);
   ``none``: a = 0, b = 1.

``transform`` names the first two together: ``"level"`` (g = id, d = 0),
``"log"`` (log, d = 0), ``"diff"`` (id, d = 1), ``"log_return"`` (log, d = 1).

Forecasts come back through the inverse. For a forecast h steps past the last
observed time t, written in scaled units as :math:`c_h`, the level is

.. math::
    \hat y_{t+h} = g^{-1}(a + b\,c_h)                        \quad (d = 0) \qquad
    \hat y_{t+h} = g^{-1}(g(y_t) + h\,a + b\,c_h)             \quad (d = 1)

where for d = 1, :math:`c_h = \sum_{j \le h} u_{t+j}` is the *cumulative* scaled
change from the origin. Both maps are increasing in :math:`c_h`, so quantiles
in scaled units map to quantiles of the level exactly (a median to a median).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from ..errors import DataError

__all__ = ["TRANSFORMS", "SCALERS", "SeriesScaler", "ScaleOverflow", "NonPositiveLog"]

# name -> (log?, difference order)
TRANSFORMS = {"level": (False, 0), "log": (True, 0), "diff": (False, 1), "log_return": (True, 1)}
SCALERS = ("standard", "minmax", "none")


class ScaleOverflow(DataError):
    """A value whose transformed and scaled form is not a finite number (1e300 in a price column).

    ``what`` names the array ("y", "past_covariates", ...), ``column`` and ``row``
    are 0-based positions in it, so a caller that knows the column names and
    dates can say where (see :func:`rnnkit.forecast.api.train`).
    """

    def __init__(self, what: str, column: int, row: int, value: float, why: str,
                 fix: str = "rescale the data (e.g. in thousands) or fix the value"):
        self.what, self.column, self.row, self.value, self.why = what, int(column), int(row), float(value), why
        self.fix = fix
        super().__init__(f"{what}: column {column}, row {row}: the value {value:g} {why}; {fix}")


class NonPositiveLog(ScaleOverflow):
    """A value <= 0 under a log transform (``log``, ``log_return``); positions as in :class:`ScaleOverflow`."""


def _first_bad(ok: np.ndarray, x: np.ndarray) -> tuple:
    """(row, column) of the first False in ``ok`` (T', k), or of the largest |x| in a bad column."""
    if ok.ndim == 1:                                                # per-column statistics
        j = int(np.argmin(ok))
        with np.errstate(invalid="ignore"):
            col = np.where(np.isfinite(x[:, j]), np.abs(x[:, j]), np.inf)
        return int(np.argmax(col)), j
    i, j = np.argwhere(~ok)[0]
    return int(i), int(j)


class SeriesScaler:
    """Transform, difference and scale a (T, k) series; invert forecasts exactly.

    ``fit(y)`` learns ``a`` and ``b`` (each (k,)) from ``y`` only: pass the
    training part. Work is done in float64 so the inverse is exact to rounding.
    """

    def __init__(self, transform: str = "level", scaler: str = "standard"):
        if transform not in TRANSFORMS:
            raise ValueError(f"transform: expected one of {sorted(TRANSFORMS)}, got {transform!r}")
        if scaler not in SCALERS:
            raise ValueError(f"scaler: expected one of {list(SCALERS)}, got {scaler!r}")
        self.transform = transform
        self.scaler = scaler
        self.log, self.order = TRANSFORMS[transform]
        self.a = None
        self.b = None

    # -- forward ----------------------------------------------------------
    def g(self, y: np.ndarray, what: str = "y") -> np.ndarray:
        """The level transform g (log or identity); a value <= 0 under log raises :class:`NonPositiveLog`
        naming the first one by its (row, column) in ``y`` (``what`` names ``y`` in the message)."""
        y = np.asarray(y, dtype=np.float64)
        if not self.log:
            return y
        bad = y <= 0
        if np.any(bad):
            pos = np.argwhere(bad.reshape(len(y), -1))             # (n_bad, 2): (row, column)
            i, j = pos[0]
            more = f" ({len(pos)} of the {y.size} values it was given are <= 0)" if len(pos) > 1 else ""
            raise NonPositiveLog(what, j, i, y.reshape(len(y), -1)[i, j],
                                 f"is <= 0, but --transform {self.transform} takes logarithms{more}",
                                 "use --transform level or --transform diff instead, or fix the value")
        return np.log(y)

    def unscaled(self, y: np.ndarray, what: str = "y") -> np.ndarray:
        """x = g(y), differenced: (T - d, k)."""
        z = self.g(y, what)
        return z[1:] - z[:-1] if self.order else z

    def _checked_unscaled(self, y: np.ndarray, what: str) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            x = self.unscaled(y, what)                             # (T - d, k)
        ok = np.isfinite(x)
        if not ok.all():
            i, j = _first_bad(ok, x)
            raise ScaleOverflow(what, j, i + self.order, np.asarray(y)[i + self.order, j],
                                f"overflows under transform {self.transform!r}")
        return x

    def fit(self, y: np.ndarray, constant_ok: bool = False, what: str = "y") -> "SeriesScaler":
        """Learn a and b from y (the training part). A constant column is an error unless
        ``constant_ok`` (covariates such as a flag that happens not to change), then b = 1.
        Statistics that overflow (values near the float64 limit) raise :class:`ScaleOverflow`."""
        x = self._checked_unscaled(y, what)                        # (T - d, k)
        if len(x) < 2:
            raise DataError(f"need at least {2 + self.order} training values to fit the scaling, got {len(y)}")
        with np.errstate(over="ignore", invalid="ignore"):
            if self.scaler == "standard":
                a, b = x.mean(axis=0), x.std(axis=0)
            elif self.scaler == "minmax":
                a, b = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
            else:
                a, b = np.zeros(x.shape[1]), np.ones(x.shape[1])
        ok = np.isfinite(a) & np.isfinite(b)
        if not ok.all():
            i, j = _first_bad(ok, x)
            raise ScaleOverflow(what, j, i + self.order, np.asarray(y)[i + self.order, j],
                                f"makes the {self.scaler} scaling statistics overflow")
        flat = b <= 1e-12 * np.maximum(1.0, np.abs(a))
        if np.any(flat) and constant_ok:
            b = np.where(flat, 1.0, b)
        elif np.any(flat):
            what = "differences are constant" if self.order else "series is constant"
            raise DataError(f"the training {what} (column {int(np.argmax(flat))}): there is nothing to "
                            "learn; a constant series is forecast exactly by the naive baseline")
        self.a, self.b = a, b
        return self

    def scale(self, y: np.ndarray) -> np.ndarray:
        """u = (x - a) / b for the levels y: (T - d, k)."""
        self._check_fitted()
        return (self.unscaled(y) - self.a) / self.b

    def scale_checked(self, y: np.ndarray, what: str = "y", dtype="float64") -> np.ndarray:
        """:meth:`scale`, refusing (:class:`ScaleOverflow`) a value whose u is not finite in ``dtype``."""
        self._check_fitted()
        x = self._checked_unscaled(y, what)
        with np.errstate(over="ignore", invalid="ignore"):
            u = (x - self.a) / self.b                              # (T - d, k)
            ok = np.isfinite(u) & (np.abs(u) <= np.finfo(np.dtype(dtype)).max)
        if not ok.all():
            i, j = _first_bad(ok, u)
            raise ScaleOverflow(what, j, i + self.order, np.asarray(y)[i + self.order, j],
                                f"is too large for the model's {np.dtype(dtype).name} network after "
                                f"{self.scaler} scaling")
        return u

    # -- inverse ----------------------------------------------------------
    def to_levels(self, c: np.ndarray, last_level: np.ndarray, axis: int = 0) -> np.ndarray:
        """Levels from scaled forecasts ``c`` (see the module docstring).

        ``c`` has the horizon h = 1, 2, ... along ``axis`` and k in the last axis
        (any other axes, samples or quantiles, are carried along). For d = 1 it
        holds the cumulative scaled changes from the origin whose level is
        ``last_level`` (k,).
        """
        self._check_fitted()
        c = np.asarray(c, dtype=np.float64)
        x = self.a + self.b * c
        if self.order:
            shape = [1] * c.ndim
            shape[axis] = c.shape[axis]
            h = np.arange(1, c.shape[axis] + 1, dtype=np.float64).reshape(shape)
            x = self.g(np.asarray(last_level)) + h * self.a + self.b * c
        return np.exp(x) if self.log else x

    def inverse(self, u: np.ndarray, first_level: np.ndarray = None) -> np.ndarray:
        """Levels from a whole scaled series u (T', k): the exact inverse of :meth:`scale`.

        With d = 1, ``first_level`` is the level before u's first change.
        """
        self._check_fitted()
        x = self.a + self.b * np.asarray(u, dtype=np.float64)
        if self.order:
            z0 = self.g(np.asarray(first_level, dtype=np.float64))
            x = np.concatenate([z0[None], z0 + np.cumsum(x, axis=0)])
        return np.exp(x) if self.log else x

    def _check_fitted(self):
        if self.a is None:
            raise RuntimeError("SeriesScaler is not fitted: call fit(y_train) first")

    # -- persistence ------------------------------------------------------
    def stats(self) -> Dict[str, list]:
        """``{"a": [...], "b": [...]}``: JSON-able and exact (floats round-trip through JSON)."""
        self._check_fitted()
        return {"a": [float(v) for v in self.a], "b": [float(v) for v in self.b]}

    @classmethod
    def from_stats(cls, transform: str, scaler: str, stats, k: int) -> "SeriesScaler":
        """A fitted scaler from :meth:`stats` for ``k`` columns (ValueError if they do not fit)."""
        s = cls(transform, scaler)
        s.a = np.asarray(stats["a"], dtype=np.float64)
        s.b = np.asarray(stats["b"], dtype=np.float64)
        if s.a.shape != (k,) or s.b.shape != (k,) or not (np.isfinite(s.a).all() and np.all(s.b > 0)
                                                          and np.isfinite(s.b).all()):
            raise ValueError(f"scaler statistics for {k} column(s) expected, got a {s.a.shape}, b {s.b.shape}")
        return s
