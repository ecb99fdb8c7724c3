"""The :class:`Optimizer` base of every optimiser in :mod:`rnnkit.optim` (same rules as ``torch.optim``).

Every optimiser updates ``p.data`` in place from ``p.grad`` for each
:class:`~rnnkit.nn.module.Parameter` it was given. Notation used in the
docstrings (and, where it helps, in the code):

    theta  parameter ``p.data``         g      gradient ``p.grad`` (after L2 decay)
    lr     learning rate ``self.lr``    t      step number, 1 for the first step
    wd     ``weight_decay`` (0 for a parameter that ``decay_mask`` leaves out)

``decay_mask`` (every optimiser with a ``weight_decay``) says which parameters
decay: one bool per parameter, or a function of the Parameter, such as
``lambda p: p.data.ndim > 1`` (the weight matrices and embeddings, not the
biases and gains, as most AdamW recipes do). It does what two ``torch.optim``
parameter groups, one with ``weight_decay=0``, do; the default decays all.

The arithmetic follows PyTorch's single-tensor (CPU) code path operation by
operation where that stays readable, so a run matches ``torch.optim`` to
rounding (tests check rtol 1e-10 in float64). Updates are computed in the
parameter's own dtype: hyperparameters are kept as Python floats, which NumPy
treats as "weak" scalars that do not promote a float32 array to float64.

Per-parameter state (moment estimates, momentum buffers) is allocated eagerly
in ``__init__`` and lives in ``self.state[name][i]`` for parameter ``i``.
``lr`` is a plain attribute: a training loop sets it from a schedule
(:mod:`rnnkit.optim.schedules`) before each ``step()``.

The updates are written against the array namespace of the parameters
(:mod:`rnnkit.nn.xp`): on NumPy they are NumPy's own operations, on a device
(CuPy, array-api-strict) they run there, state included. ``state_dict`` always
returns host (NumPy) copies and ``load_state_dict`` moves saved arrays onto the
parameters' device, so checkpoints are the same files wherever a run trained.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from rnnkit.checks import check_real
from rnnkit.errors import HyperparameterError, ModelFileError, ShapeError
from rnnkit.nn.module import Parameter
from rnnkit.nn.xp import assign, device_of, host_copy, namespace, to_device
from rnnkit.optim.checks import check_optimizer_state, check_parameters

__all__ = ["Optimizer", "l2_gradient", "DecayMask"]

DecayMask = Union[None, Sequence[bool], Callable[[Parameter], bool]]


def _param_list(params: Iterable[Parameter]) -> List[Parameter]:
    params = check_parameters(params, "optimiser")
    if not params:
        raise HyperparameterError("params is empty: the optimiser needs at least one Parameter")
    # A parameter listed twice would be updated twice per step.
    if len({id(p) for p in params}) != len(params):
        raise HyperparameterError("params contains the same Parameter more than once")
    return params


def _decay_mask(mask: DecayMask, params: List[Parameter]) -> Optional[Tuple[bool, ...]]:
    """``decay_mask`` as one bool per parameter (None: every parameter decays)."""
    if mask is None:
        return None
    if callable(mask):
        mask = [mask(p) for p in params]
    elif isinstance(mask, (str, bytes, Mapping)) or not hasattr(mask, "__len__"):
        raise HyperparameterError(f"decay_mask must be one bool per parameter or a function of a Parameter "
                                  f"(lambda p: p.data.ndim > 1), got {type(mask).__name__}")
    mask = list(mask)
    if len(mask) != len(params):
        raise HyperparameterError(f"decay_mask has {len(mask)} entries for {len(params)} parameters: give one "
                                  "bool per parameter, in the order of params")
    bad = next((i for i, m in enumerate(mask) if not isinstance(m, (bool, np.bool_))), None)
    if bad is not None:
        raise HyperparameterError(f"decay_mask[{bad}] must be True or False, got {mask[bad]!r}")
    return tuple(bool(m) for m in mask)


class Optimizer:
    """Base class: the parameter list, ``lr``, the step count and per-parameter state.

    Subclasses implement :meth:`hyperparameters` (the constructor keywords other
    than ``lr``, JSON-serialisable), :meth:`_state_fill` (which state arrays
    exist and their initial value) and :meth:`_update` (one parameter's update).
    """

    def __init__(self, params: Iterable[Parameter], lr: float, decay_mask: DecayMask = None):
        self.params: List[Parameter] = _param_list(params)
        self.lr: float = check_real("lr", lr)
        self.decay_mask: Optional[Tuple[bool, ...]] = _decay_mask(decay_mask, self.params)
        self.steps: int = 0  # optimiser steps taken so far
        self.state: Dict[str, List[np.ndarray]] = {}

    def _init_state(self) -> None:
        """Allocate every state array; subclasses call this at the end of ``__init__``."""
        self.state = {
            name: [namespace(p.data).full_like(p.data, fill) for p in self.params]
            for name, fill in self._state_fill().items()
        }

    # -- subclass interface -------------------------------------------------
    def hyperparameters(self) -> Dict[str, Any]:
        """Constructor keywords except ``params`` and ``lr``."""
        raise NotImplementedError

    def _state_fill(self) -> Dict[str, float]:
        """Name -> initial value of each per-parameter state array."""
        return {}

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        raise NotImplementedError

    # -- weight decay, for the subclasses that have one ---------------------------
    def _decay(self, i: int) -> float:
        """wd of parameter ``i``: ``weight_decay``, or 0 where ``decay_mask`` leaves it out."""
        return self.weight_decay if self.decay_mask is None or self.decay_mask[i] else 0.0

    def _mask_hyperparameter(self) -> Dict[str, Any]:
        """``{"decay_mask": [...]}`` when one was given (JSON-able, for :meth:`hyperparameters`), else ``{}``."""
        return {} if self.decay_mask is None else {"decay_mask": list(self.decay_mask)}

    # -- public API ---------------------------------------------------------
    def step(self) -> None:
        """Update every parameter once from its current gradient."""
        lr = float(self.lr)  # a NumPy float64 would make float64 temporaries for float32 params
        self._follow_parameters()
        self.steps += 1
        for i, p in enumerate(self.params):
            self._update(i, p, lr)

    def _follow_parameters(self) -> None:
        """Move state made before ``Module.to(device)`` to where the parameters are now (once, at the next step)."""
        if not self.state or not self.params:
            return
        first = next(iter(self.state.values()))[0]
        if type(first) is np.ndarray and type(self.params[0].data) is np.ndarray:
            return                                                  # the host path: nothing to look at
        for arrays in self.state.values():
            for j, (a, p) in enumerate(zip(arrays, self.params)):
                if type(a) is not type(p.data) or device_of(a) != device_of(p.data):
                    arrays[j] = to_device(a, device_of(p.data), namespace(p.data))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad[...] = 0

    def state_dict(self) -> Dict[str, Dict[str, Any]]:
        """Copies of everything needed to continue exactly where this optimiser is.

        ``{"scalars": {...}, "arrays": {"<state name>.<param index>": ndarray}}``;
        the scalars are JSON-serialisable.
        """
        scalars = {
            "optimizer": type(self).__name__,
            "steps": self.steps,
            "lr": float(self.lr),
            "hyperparameters": self.hyperparameters(),
            "param_shapes": [list(p.data.shape) for p in self.params],
        }
        arrays = {
            f"{name}.{i}": host_copy(a) for name, per_param in self.state.items()
            for i, a in enumerate(per_param)
        }
        return {"scalars": scalars, "arrays": arrays}

    def load_state_dict(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        """Restore lr, hyperparameters, step count and state arrays from :meth:`state_dict`.

        Nothing changes unless the whole state fits: same optimiser class, same
        number and shapes of parameters, exactly the expected array keys. A
        malformed state (a crafted or damaged checkpoint) raises
        :class:`~rnnkit.errors.ModelFileError` naming the bad field.

        As in ``torch.optim``, the saved ``lr`` and hyperparameters *replace*
        the ones this optimiser was built with: ``Adam(params, lr=0.1)``
        followed by loading a state saved with ``lr=0.001`` continues with
        0.001 (and the saved betas, weight decay ...). To change them for the
        rest of a run, set the attributes (e.g. ``opt.lr``) after loading, or
        use a schedule, which sets ``lr`` before every step. ``decay_mask`` is the
        exception: like the parameters' shapes, the saved one must be this
        optimiser's (as torch refuses another number of parameter groups).
        """
        scalars, arrays = check_optimizer_state(state)
        kind, steps, lr = scalars["optimizer"], scalars["steps"], scalars["lr"]
        hyper, shapes = scalars["hyperparameters"], scalars["param_shapes"]
        if kind != type(self).__name__:
            raise ModelFileError(f"state_dict is for {kind}, cannot load it into {type(self).__name__}")
        if len(shapes) != len(self.params):
            raise ShapeError(
                f"state_dict holds {len(shapes)} parameters, this optimiser has {len(self.params)}"
            )
        for i, (shape, p) in enumerate(zip(shapes, self.params)):
            if tuple(shape) != tuple(p.data.shape):
                raise ShapeError(f"parameter {i}: expected shape {tuple(p.data.shape)}, got {tuple(shape)}")

        # Rebuilding through the constructor re-validates the saved hyperparameters
        # and allocates exactly the state arrays they call for (e.g. amsgrad's max).
        try:
            fresh = type(self)(self.params, lr=lr, **hyper)
        except (TypeError, HyperparameterError) as exc:  # an unknown keyword, a value out of range
            raise ModelFileError(f"state_dict hyperparameters do not fit {kind}: {exc}") from None
        everyone = (True,) * len(self.params)
        if (fresh.decay_mask or everyone) != (self.decay_mask or everyone):
            # which parameters decay is the grouping of the parameters, like their shapes: not replaced
            raise ModelFileError(f"state_dict decays other parameters than this optimiser: decay_mask "
                                 f"{list(fresh.decay_mask or everyone)} saved, {list(self.decay_mask or everyone)} "
                                 "here; build the optimiser with the saved decay_mask")
        expected = {f"{name}.{i}" for name in fresh.state for i in range(len(self.params))}
        if set(arrays) != expected:
            raise ModelFileError(
                f"state_dict arrays do not match {type(self).__name__}{fresh.hyperparameters()}: "
                f"missing {sorted(expected - set(arrays))}, unexpected {sorted(set(arrays) - expected)}"
            )
        for name, per_param in fresh.state.items():
            for i, a in enumerate(per_param):
                saved = np.asarray(arrays[f"{name}.{i}"])
                if saved.dtype.kind not in "biuf":
                    raise ModelFileError(f"optimiser state: array {name}.{i} must hold numbers, got dtype {saved.dtype}")
                if saved.shape != tuple(a.shape):  # checked, not broadcast: a scalar must not fill a buffer
                    raise ShapeError(f"{name}.{i}: expected shape {tuple(a.shape)}, got {saved.shape}")
                if not np.all(np.isfinite(saved)):   # the next step would turn every parameter into NaN
                    raise ModelFileError(f"optimiser state: array {name}.{i} holds NaN or infinite values")
                if name in _SQUARES and np.any(saved < 0):
                    raise ModelFileError(f"optimiser state: array {name}.{i} sums squares but holds negative values")
                assign(a, saved)                # onto the parameter's device
        fresh.steps = steps
        # Adopt the fresh optimiser's attributes wholesale: lr, step count, state and
        # every hyperparameter attribute, whatever a subclass names them.
        self.__dict__.update(fresh.__dict__)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({len(self.params)} params, lr={self.lr!r}, {args})"


# state arrays that accumulate squared gradients: never negative (a square root is taken of them)
_SQUARES = ("exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum")


def l2_gradient(p: Parameter, weight_decay: float) -> np.ndarray:
    """g = grad + wd * theta, as a new array so that ``p.grad`` stays what backward produced."""
    if weight_decay == 0:
        return p.grad
    return p.grad + weight_decay * p.data
