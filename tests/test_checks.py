"""rnnkit.checks: the package's one argument-checking module (one exception type, one message form)."""

import doctest
import math

import numpy as np
import pytest

import rnnkit.checks as checks
from rnnkit.checks import (check_choice, check_count, check_flag, check_optional_count, check_probability,
                           check_real, check_seed)
from rnnkit.errors import HyperparameterError

NAME = "hidden_size (--hidden-size)"


def test_docstring_examples_hold():
    result = doctest.testmod(checks, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 14 and result.failed == 0


def test_every_check_is_exported_and_the_optimiser_module_re_exports_them():
    from rnnkit.optim import checks as optim_checks
    assert set(checks.__all__) == {"check_real", "check_optional_real", "check_count", "check_optional_count", "check_flag",
                                   "check_choice", "check_seed", "check_probability"}
    for name in ("check_real", "check_count", "check_flag"):
        assert getattr(optim_checks, name) is getattr(checks, name)


@pytest.mark.parametrize("call,expected", [
    (lambda: check_real(NAME, "x"), "must be a real number, got 'x'"),
    (lambda: check_real(NAME, True), "must be a real number, got True"),
    (lambda: check_real(NAME, "0.5"), "must be a real number, got '0.5'"),
    (lambda: check_real(NAME, math.inf), "must be finite, got inf"),
    (lambda: check_real(NAME, math.nan), "must be >= 0, got nan"),
    (lambda: check_real(NAME, 0.0, low_open=True), "must be > 0, got 0.0"),
    (lambda: check_real(NAME, 2, 0, 1, high_open=True), r"must be in \[0, 1\), got 2"),
    (lambda: check_real(NAME, None), "must be a real number, got None"),
    (lambda: check_real(NAME, [], allow_none=True), r"must be a real number or none, got \[\]"),
    (lambda: check_count(NAME, 1.0, 1), "must be an integer, got 1.0"),
    (lambda: check_count(NAME, True, 1), "must be an integer, got True"),
    (lambda: check_count(NAME, 0, 1), "must be >= 1, got 0"),
    (lambda: check_optional_count(NAME, 0, 1), "must be an integer >= 1 or none, got 0"),
    (lambda: check_optional_count(NAME, "3", 1), "must be an integer >= 1 or none, got '3'"),
    (lambda: check_flag(NAME, 1), "must be True or False, got 1"),
    (lambda: check_flag(NAME, "False"), "must be True or False, got 'False'"),
    (lambda: check_choice(NAME, "tiny", ["small", "big"]), "must be one of 'small', 'big', got 'tiny'"),
    (lambda: check_choice(NAME, True, [1, 2]), "must be one of 1, 2, got True"),
    (lambda: check_seed(NAME, -1), "must be an integer >= 0, or none .* got -1"),
    (lambda: check_seed(NAME, 1.5), "must be .* got 1.5"),
    (lambda: check_seed(NAME, False), "must be .* got False"),
    (lambda: check_seed(NAME, "7"), "must be .* got '7'"),
    (lambda: check_probability(NAME, 1.0), r"must be in \[0, 1\), got 1.0"),
    (lambda: check_probability(NAME, -0.1, high_open=False), r"must be in \[0, 1\], got -0.1"),
])
def test_each_mistake_raises_one_error_type_naming_the_argument_and_the_value(call, expected):
    with pytest.raises(HyperparameterError, match=r"^hidden_size \(--hidden-size\) " + expected + "$"):
        call()


def test_hyperparameter_error_is_a_value_error():
    assert issubclass(HyperparameterError, ValueError)


def test_accepted_values_come_back_cleaned():
    assert check_real("x", np.float32(0.5)) == 0.5 and type(check_real("x", 3)) is float
    assert check_real("x", None, allow_none=True) is None
    assert check_count("n", np.int64(3), 1) == 3 and type(check_count("n", np.int64(3), 1)) is int
    assert check_count("n", 0, 0) == 0
    assert check_optional_count("n", None, 1) is None and check_optional_count("n", 4, 1) == 4
    assert check_flag("f", np.bool_(False)) is False
    assert check_choice("c", "gru", ("rnn", "gru")) == "gru"
    assert check_choice("c", 2.0, (1, 2)) == 2
    assert check_choice("c", False, (True, False)) is False
    assert check_probability("p", 0) == 0.0 and check_probability("p", 1, high_open=False) == 1.0


def test_seeds_that_numpy_takes():
    g = np.random.default_rng(0)
    ss = np.random.SeedSequence(1)
    assert check_seed("s", None) is None
    assert check_seed("s", g) is g and check_seed("s", ss) is ss
    assert check_seed("s", np.uint32(5)) == 5 and check_seed("s", 2 ** 70) == 2 ** 70
    for ok in (None, g, ss, 0, 2 ** 70):
        np.random.default_rng(check_seed("s", ok))  # everything accepted is a valid numpy seed
