"""Argument checks of the optimisers: their ``params`` and a saved optimiser state.

The general checks (``check_real``, ``check_count``, ``check_flag`` ...) live in
:mod:`rnnkit.checks` and are re-exported here for the modules that import them
from this one. A wrong kind of ``params`` raises ``TypeError`` saying what to pass
instead; a malformed optimiser state (from a checkpoint) raises
:class:`~rnnkit.errors.ModelFileError` naming the field.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from rnnkit.checks import check_count, check_flag, check_real
from rnnkit.errors import ModelFileError
from rnnkit.nn.module import Module, Parameter
from rnnkit.nn.xp import is_numpy, namespace

__all__ = ["check_real", "check_count", "check_flag", "check_parameters", "check_optimizer_state",
           "first_nonfinite"]


def check_parameters(params: Iterable[Parameter], who: str) -> List[Parameter]:
    """``params`` as a list of :class:`Parameter`; a Module passed by mistake gets a hint."""
    if isinstance(params, Module):
        raise TypeError(f"{who}: got the {type(params).__name__} module itself; pass model.parameters()")
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{who}: params must be an iterable of rnnkit Parameters (model.parameters()), "
                        f"got {type(params).__name__}") from None
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"params[{i}] must be an rnnkit Parameter, got {type(p).__name__}")
    return params


def first_nonfinite(named_arrays) -> Optional[Tuple[str, str]]:
    """``(name, "nan" or "inf")`` of the first array holding a non-finite entry, or None when all are finite.

    ``named_arrays``: (name, array) pairs. NumPy arrays are checked one by one as
    before; device arrays with one all-finite test on the device and one boolean
    read back (the per-array search runs only when something is wrong).
    """
    named_arrays = list(named_arrays)
    if not is_numpy(*(a for _, a in named_arrays)):
        xp = namespace(*(a for _, a in named_arrays))
        if bool(xp.all(xp.stack([xp.all(xp.isfinite(a)) for _, a in named_arrays]))):
            return None
    for name, a in named_arrays:
        xp = namespace(a)
        if not bool(xp.all(xp.isfinite(a))):
            return name, ("nan" if bool(xp.any(xp.isnan(a))) else "inf")
    return None


def check_optimizer_state(state: Any) -> Tuple[Dict[str, Any], Mapping[str, Any]]:
    """The scalars and arrays of an optimiser ``state_dict``, each field checked (ModelFileError naming it)."""
    def bad(field: str, expected: str, got: Any) -> ModelFileError:
        return ModelFileError(f"optimiser state: {field!r} must be {expected}, got {got!r}")

    if not isinstance(state, Mapping) or "scalars" not in state or "arrays" not in state:
        raise ModelFileError("not an optimiser state_dict (expected a dict with 'scalars' and 'arrays')")
    scalars, arrays = state["scalars"], state["arrays"]
    if not isinstance(scalars, Mapping):
        raise bad("scalars", "a dict", scalars)
    if not isinstance(arrays, Mapping):
        raise bad("arrays", "a dict of arrays", type(arrays).__name__)
    missing = [k for k in ("optimizer", "steps", "lr", "hyperparameters", "param_shapes") if k not in scalars]
    if missing:
        raise ModelFileError(f"not an optimiser state_dict (missing {missing})")
    if not isinstance(scalars["optimizer"], str):
        raise bad("optimizer", "a class name", scalars["optimizer"])
    steps = scalars["steps"]
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, (bool, np.bool_)) or steps < 0:
        raise bad("steps", "a non-negative integer", steps)
    hyper = scalars["hyperparameters"]
    if not isinstance(hyper, Mapping) or not all(isinstance(k, str) for k in hyper):
        raise bad("hyperparameters", "a dict of keyword arguments", hyper)
    shapes = scalars["param_shapes"]
    if not isinstance(shapes, (list, tuple)) or not all(
            isinstance(sh, (list, tuple)) and all(
                isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) and n >= 0
                for n in sh)
            for sh in shapes):
        raise bad("param_shapes", "a list of shapes (lists of non-negative integers)", shapes)
    return {**scalars, "steps": int(steps), "hyperparameters": dict(hyper)}, arrays
