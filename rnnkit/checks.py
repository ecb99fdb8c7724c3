"""The one argument-checking module: every user-facing value is checked here, one error type per mistake.

Each check returns the cleaned value or raises
:class:`~rnnkit.errors.HyperparameterError` (a ``ValueError``) whose message
names the argument as the caller passes it, the valid range and the value::

    >>> check_count("hidden_size (--hidden-size)", 0, 1)
    Traceback (most recent call last):
    rnnkit.errors.HyperparameterError: hidden_size (--hidden-size) must be >= 1, got 0

Applications pass ``"keyword (--flag)"`` as the name (see
:func:`rnnkit.estimator.flag_of`), so a CLI user and a library user both read
what to change.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Optional, Sequence

import numpy as np

from rnnkit.errors import HyperparameterError

__all__ = ["check_real", "check_count", "check_flag", "check_choice", "check_optional_count", "check_optional_real",
           "check_seed", "check_probability"]


def check_real(name: str, value: Any, low: float = 0.0, high: float = math.inf,
               low_open: bool = False, high_open: bool = False) -> float:
    """``float(value)`` after checking it is finite and lies in the interval from ``low`` to ``high``.

    Ends are closed unless ``low_open`` / ``high_open``. ``high=inf`` means no
    upper bound, but the value itself must be finite: ``lr=inf`` would turn
    every parameter into NaN on the first step.
    """
    if isinstance(value, (bool, np.bool_)):  # float(True) == 1.0: almost surely a mistake
        raise HyperparameterError(f"{name} must be a real number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise HyperparameterError(f"{name} must be a real number, got {value!r}") from None
    if math.isinf(x):
        raise HyperparameterError(f"{name} must be finite, got {value!r}")
    lower_ok = low < x if low_open else low <= x
    upper_ok = x < high if high_open else x <= high
    if not (lower_ok and upper_ok):  # NaN fails both comparisons, so it is rejected too
        if high == math.inf:
            expected = f"{'>' if low_open else '>='} {low:g}"
        else:
            expected = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise HyperparameterError(f"{name} must be {expected}, got {value!r}")
    return x


def check_count(name: str, value: Any, low: int) -> int:
    """``value`` as an int >= ``low`` (any integer type; no floats, no bools)."""
    if isinstance(value, (bool, np.bool_)):
        raise HyperparameterError(f"{name} must be an integer, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise HyperparameterError(f"{name} must be an integer, got {value!r}") from None
    if n < low:
        raise HyperparameterError(f"{name} must be >= {low}, got {value!r}")
    return n


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool; strings and other truthy objects are refused (``bool("False")`` is True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise HyperparameterError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_optional_count(name: str, value: Any, low: int) -> Optional[int]:
    """None, or ``value`` as an int >= ``low``."""
    return None if value is None else check_count(name, value, low)


def check_optional_real(name: str, value: Any, low: float = 0.0, high: float = math.inf,
                        low_open: bool = False, high_open: bool = False) -> Optional[float]:
    """None, or ``value`` checked as by :func:`check_real`."""
    return None if value is None else check_real(name, value, low, high, low_open, high_open)


def check_probability(name: str, value: Any, high_open: bool = True) -> float:
    """A probability in [0, 1) (``high_open``, e.g. dropout) or [0, 1]."""
    return check_real(name, value, 0.0, 1.0, high_open=high_open)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    try:
        ok = value in choices
    except TypeError:
        ok = False
    if not ok:
        raise HyperparameterError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_seed(name: str, value: Any) -> Any:
    """None, an int >= 0, or NumPy randomness passed in (a ``Generator`` or ``SeedSequence``)."""
    if value is None or isinstance(value, (np.random.Generator, np.random.SeedSequence)):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise HyperparameterError(f"{name} must be None, an integer >= 0 or a numpy Generator, got {value!r}")
    return int(value)
