"""Argument checks for the whole package: one place, one exception type, one message form.

Every check returns the cleaned value or raises
:class:`~rnnkit.errors.HyperparameterError` (a ``ValueError``) whose message reads
``<name> must be <what is allowed>, got <value>``. ``name`` is whatever the caller
passes, so a library function can name both its keyword and the CLI flag that
sets it:

>>> check_count("hidden_size (--hidden-size)", 0, 1)
Traceback (most recent call last):
...
rnnkit.errors.HyperparameterError: hidden_size (--hidden-size) must be >= 1, got 0

Booleans and strings are refused where numbers are expected (``float(True) == 1.0``
and ``float("1e-3")`` work, but either is almost surely a mistake), and strings where
flags are expected (``bool("False")`` is True).
"""

from __future__ import annotations

import math
import operator
from typing import Any, Iterable, Optional

import numpy as np

from rnnkit.errors import HyperparameterError

__all__ = ["check_real", "check_optional_real", "check_count", "check_optional_count", "check_flag", "check_choice", "check_seed",
           "check_probability"]


def flag(name: str) -> str:
    """The command-line flag of keyword ``name``: ``hidden_size`` -> ``--hidden-size``."""
    return "--" + name.replace("_", "-")


def flag_of(name: str) -> str:
    """``"hidden_size (--hidden-size)"``: a keyword and the flag that sets it, as the checks' messages name them."""
    return f"{name} ({flag(name)})"


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def check_real(name: str, value: Any, low: float = 0.0, high: float = math.inf,
               low_open: bool = False, high_open: bool = False, allow_none: bool = False) -> Optional[float]:
    """``float(value)`` after checking it is finite and lies in the interval from ``low`` to ``high``.

    Ends are closed unless ``low_open`` / ``high_open``. ``high=inf`` means no
    upper bound, but the value itself must be finite: ``lr=inf`` would turn
    every parameter into NaN on the first step. ``allow_none`` lets ``None``
    through (returned as is), for settings such as a time budget that may be off.

    >>> check_real("lr", 0.01, low_open=True)
    0.01
    >>> check_real("max_minutes", None, low_open=True, allow_none=True) is None
    True
    >>> check_real("lr (--lr)", 0, low_open=True)
    Traceback (most recent call last):
    ...
    rnnkit.errors.HyperparameterError: lr (--lr) must be > 0, got 0
    """
    if value is None and allow_none:
        return None
    kind = f"a real number{' or none' if allow_none else ''}"
    if _is_bool(value) or isinstance(value, (str, bytes)):  # float("1e3") parses: a string is a mistake too
        raise HyperparameterError(f"{name} must be {kind}, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise HyperparameterError(f"{name} must be {kind}, got {value!r}") from None
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
    """``value`` as an int >= ``low`` (any integer type, NumPy's included; no floats, no bools).

    >>> check_count("layers", np.int64(2), 1)
    2
    >>> check_count("batch_size (--batch-size)", 2.5, 1)
    Traceback (most recent call last):
    ...
    rnnkit.errors.HyperparameterError: batch_size (--batch-size) must be an integer, got 2.5
    """
    if _is_bool(value):
        raise HyperparameterError(f"{name} must be an integer, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise HyperparameterError(f"{name} must be an integer, got {value!r}") from None
    if n < low:
        raise HyperparameterError(f"{name} must be >= {low}, got {value!r}")
    return n


def check_optional_count(name: str, value: Any, low: int) -> Optional[int]:
    """``None`` (the setting is off), or ``value`` as an int >= ``low``.

    >>> check_optional_count("max_steps", None, 1) is None
    True
    >>> check_optional_count("max_steps", "10", 1)
    Traceback (most recent call last):
    ...
    rnnkit.errors.HyperparameterError: max_steps must be an integer >= 1 or none, got '10'
    """
    if value is None:
        return None
    try:
        return check_count(name, value, low)
    except HyperparameterError:
        raise HyperparameterError(f"{name} must be an integer >= {low} or none, got {value!r}") from None


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool; strings and other truthy objects are refused (``bool("False")`` is True).

    >>> check_flag("resume", np.True_)
    True
    >>> check_flag("resume (--resume)", "no")
    Traceback (most recent call last):
    ...
    rnnkit.errors.HyperparameterError: resume (--resume) must be True or False, got 'no'
    """
    if not _is_bool(value):
        raise HyperparameterError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices`` (compared with ``==``; bools never match numbers).

    >>> check_choice("cell (--cell)", "lstm", ("rnn", "lstm", "gru"))
    'lstm'
    >>> check_choice("cell (--cell)", "LSTM", ("rnn", "lstm", "gru"))
    Traceback (most recent call last):
    ...
    rnnkit.errors.HyperparameterError: cell (--cell) must be one of 'rnn', 'lstm', 'gru', got 'LSTM'
    """
    choices = list(choices)
    for c in choices:
        if _is_bool(c) != _is_bool(value):  # True == 1 in Python: a flag is not a numbered choice
            continue
        try:
            if bool(value == c):
                return c
        except (TypeError, ValueError):  # e.g. an array compared with a string
            continue
    raise HyperparameterError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


def check_seed(name: str, value: Any) -> Any:
    """A random seed: ``None``, a non-negative int, or a NumPy ``Generator`` / ``SeedSequence`` (returned as is).

    Whatever passes can be given to ``numpy.random.default_rng``.

    >>> check_seed("random_state (--random-state)", 0)
    0
    >>> check_seed("random_state (--random-state)", -1)
    Traceback (most recent call last):
    ...
    rnnkit.errors.HyperparameterError: random_state (--random-state) must be an integer >= 0, or none for fresh \
entropy (in Python also a numpy Generator or SeedSequence), got -1
    """
    if value is None or isinstance(value, (np.random.Generator, np.random.SeedSequence)):
        return value
    if not _is_bool(value):
        try:
            n = operator.index(value)
        except TypeError:
            n = -1
        if n >= 0:
            return n
    raise HyperparameterError(f"{name} must be an integer >= 0, or none for fresh entropy (in Python also a numpy "
                              f"Generator or SeedSequence), got {value!r}")


def check_generator(name: str, rng: Any) -> Any:
    """``rng`` if it is None or a ``numpy.random.Generator``; a seed is refused with the fix.

    Masks are drawn at every call, so a seed here would draw the same mask at every step of training:
    the generator is made once, from the seed, by the caller.

    >>> check_generator("rng", 0)
    Traceback (most recent call last):
    ...
    rnnkit.errors.HyperparameterError: rng must be a numpy.random.Generator (made once: np.random.default_rng(seed)), got int
    """
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise HyperparameterError(f"{name} must be a numpy.random.Generator (made once: np.random.default_rng(seed)), "
                                  f"got {type(rng).__name__}")
    return rng


def check_probability(name: str, value: Any, high_open: bool = True) -> float:
    """``value`` as a float in [0, 1) (``high_open=False``: in [0, 1]).

    A dropout probability of 1 would zero every unit, hence the open upper end by default.

    >>> check_probability("dropout (--dropout)", 0.25)
    0.25
    >>> check_probability("dropout (--dropout)", 1.0)
    Traceback (most recent call last):
    ...
    rnnkit.errors.HyperparameterError: dropout (--dropout) must be in [0, 1), got 1.0
    """
    return check_real(name, value, 0.0, 1.0, high_open=high_open)


def check_optional_real(name: str, value: Any, low: float = 0.0, high: float = math.inf,
                        low_open: bool = False, high_open: bool = False) -> Optional[float]:
    """None, or ``value`` checked as by :func:`check_real` (``check_real(..., allow_none=True)``)."""
    return check_real(name, value, low, high, low_open, high_open, allow_none=True)
