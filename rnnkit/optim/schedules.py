"""Learning-rate schedules as pure functions of the step count (one, of the share of a time budget).

A schedule maps ``step`` (the number of optimiser steps already taken: 0 for
the first step) to a learning rate. A training loop does::

    for step in range(start, n_steps):
        optimizer.lr = schedule.lr_at(step)
        ...
        optimizer.step()

Because ``lr_at`` depends on nothing but ``step``, resuming a run needs no
schedule state: rebuild the schedule from :meth:`Schedule.config` (via
:func:`make_schedule`) and continue from the saved step count. The sequences
equal those of ``torch.optim.lr_scheduler`` read the same way (the lr used by
``optimizer.step()`` number ``step``, with ``scheduler.step()`` after each),
up to rounding: PyTorch updates most schedules recursively, we use the closed
forms.

One schedule follows time instead: :class:`TimeCosineLR` maps the fraction of a
``max_minutes`` budget already used to a learning rate, so a run stopped by the
clock ends its decay when the budget ends, on a fast machine or a slow one. Its
state on resume is that fraction, which checkpoints record (:mod:`rnnkit.train.resume`).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Dict

from rnnkit.checks import check_count, check_real
from rnnkit.errors import HyperparameterError

__all__ = [
    "Schedule",
    "ConstantLR",
    "StepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearWarmup",
    "TimeCosineLR",
    "follows_time",
    "make_schedule",
]


class Schedule:
    """Base class: ``lr_at(step)`` and a ``config()`` that :func:`make_schedule` accepts."""

    def lr_at(self, step: int) -> float:
        raise NotImplementedError

    def config(self) -> Dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class ConstantLR(Schedule):
    """lr(step) = base_lr.

    Not PyTorch's ``ConstantLR``, which scales by ``factor`` for ``total_iters`` steps.
    """

    def __init__(self, base_lr: float):
        self.base_lr = check_real("base_lr", base_lr)

    def lr_at(self, step: int) -> float:
        check_count("step", step, 0)
        return self.base_lr

    def config(self) -> Dict[str, Any]:
        return {"name": "constant", "base_lr": self.base_lr}


class StepLR(Schedule):
    """lr(step) = base_lr * gamma ** (step // step_size): decay by ``gamma`` every ``step_size`` steps."""

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1):
        self.base_lr = check_real("base_lr", base_lr)
        self.step_size = check_count("step_size", step_size, 1)
        self.gamma = check_real("gamma", gamma)

    def lr_at(self, step: int) -> float:
        return self.base_lr * self.gamma ** (check_count("step", step, 0) // self.step_size)

    def config(self) -> Dict[str, Any]:
        return {"name": "step", "base_lr": self.base_lr, "step_size": self.step_size,
                "gamma": self.gamma}


class ExponentialLR(Schedule):
    """lr(step) = base_lr * gamma ** step."""

    def __init__(self, base_lr: float, gamma: float):
        self.base_lr = check_real("base_lr", base_lr)
        self.gamma = check_real("gamma", gamma)

    def lr_at(self, step: int) -> float:
        return self.base_lr * self.gamma ** check_count("step", step, 0)

    def config(self) -> Dict[str, Any]:
        return {"name": "exponential", "base_lr": self.base_lr, "gamma": self.gamma}


class CosineAnnealingLR(Schedule):
    """lr(step) = eta_min + (base_lr - eta_min) * (1 + cos(pi * step / T_max)) / 2.

    Falls from ``base_lr`` at step 0 to ``eta_min`` at step ``T_max``. This
    closed form equals PyTorch's ``CosineAnnealingLR`` exactly for
    ``step <= T_max`` (PyTorch's recursive update is written to reproduce it);
    past ``T_max`` both climb back along the same cosine, with PyTorch drifting
    from it by rounding. Train for ``T_max`` steps to end at ``eta_min``.
    """

    def __init__(self, base_lr: float, T_max: int, eta_min: float = 0.0):
        self.base_lr = check_real("base_lr", base_lr)
        self.T_max = check_count("T_max", T_max, 1)
        self.eta_min = check_real("eta_min", eta_min)

    def lr_at(self, step: int) -> float:
        step = check_count("step", step, 0)
        return self.eta_min + (self.base_lr - self.eta_min) * (
            1 + math.cos(math.pi * step / self.T_max)) / 2

    def config(self) -> Dict[str, Any]:
        return {"name": "cosine", "base_lr": self.base_lr, "T_max": self.T_max,
                "eta_min": self.eta_min}


class LinearWarmup(Schedule):
    """A linear ramp over ``warmup_steps`` steps, then ``schedule`` from its own step 0.

    .. math::

        lr(step) = lr0 * (start_factor + (1 - start_factor) * step / warmup_steps)
                                                    for step < warmup_steps
        lr(step) = schedule.lr_at(step - warmup_steps)   otherwise

    where ``lr0 = schedule.lr_at(0)``. This is PyTorch's
    ``SequentialLR([LinearLR(opt, start_factor, 1.0, total_iters=warmup_steps),
    inner], milestones=[warmup_steps])``: the inner schedule is delayed, not cut
    short, so a cosine with ``T_max`` still reaches ``eta_min`` ``T_max`` steps
    after the warmup. The default ``start_factor=1/3`` is ``LinearLR``'s.
    ``warmup_steps=0`` means no warmup.
    """

    def __init__(self, schedule: Schedule, warmup_steps: int, start_factor: float = 1 / 3):
        if isinstance(schedule, LinearWarmup):
            raise HyperparameterError("schedule already has a warmup; give one LinearWarmup only")
        if follows_time(schedule):
            raise HyperparameterError("a warmup counts steps and TimeCosineLR follows the clock; they do not combine")
        self.schedule = schedule
        self.warmup_steps = check_count("warmup_steps", warmup_steps, 0)
        # As LinearLR: a factor of 0 would make the first step a no-op.
        self.start_factor = check_real("start_factor", start_factor, 0.0, 1.0, low_open=True)

    def lr_at(self, step: int) -> float:
        step = check_count("step", step, 0)
        if step >= self.warmup_steps:
            return self.schedule.lr_at(step - self.warmup_steps)
        factor = self.start_factor + (1 - self.start_factor) * step / self.warmup_steps
        return self.schedule.lr_at(0) * factor

    def config(self) -> Dict[str, Any]:
        return {**self.schedule.config(), "warmup_steps": self.warmup_steps,
                "warmup_start_factor": self.start_factor}


class TimeCosineLR(Schedule):
    r"""lr(f) = eta_min + (base_lr - eta_min) * (1 + cos(pi * f)) / 2, f the fraction of a time budget used.

    :class:`CosineAnnealingLR`'s curve laid over wall-clock time instead of steps,
    for a run whose end is ``max_minutes`` rather than a step count: a step schedule
    planned from a guess of the machine's speed is cut short on a slower machine
    (still at a high rate when the clock stops) and ends early on a faster one.
    :func:`rnnkit.train.fit` passes f (clamped to [0, 1]) to :meth:`lr_at_fraction`
    before each update, the same f on every rank of a distributed run, and a
    resumed run continues from the fraction its checkpoint reached (see ``fit``).
    Decaying to the end of the budget, whatever the budget, is the "budget-aware"
    schedule of Li, Yumer and Ramanan, *Budgeted Training* (ICLR 2020).

    The price: which steps get which rate depends on the machine's speed, so two runs
    of the same seed agree step for step only as far as their clocks do.
    """

    follows = "time"

    def __init__(self, base_lr: float, eta_min: float = 0.0):
        self.base_lr = check_real("base_lr", base_lr)
        self.eta_min = check_real("eta_min", eta_min)

    def lr_at(self, step: int) -> float:
        raise TypeError("TimeCosineLR follows the clock, not the step: call lr_at_fraction(f), f the share of "
                        "the time budget used (rnnkit.train.fit does, given max_minutes)")

    def lr_at_fraction(self, fraction: float) -> float:
        f = min(max(float(fraction), 0.0), 1.0)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * f)) / 2

    def config(self) -> Dict[str, Any]:
        return {"name": "time_cosine", "base_lr": self.base_lr, "eta_min": self.eta_min}


def follows_time(schedule) -> bool:
    """Whether ``schedule`` follows the share of a time budget (``lr_at_fraction``) rather than the step."""
    return schedule is not None and getattr(schedule, "follows", "steps") == "time"


_SCHEDULES = {
    "constant": ConstantLR,
    "step": StepLR,
    "exponential": ExponentialLR,
    "cosine": CosineAnnealingLR,
    "time_cosine": TimeCosineLR,
}


def make_schedule(name: str, base_lr: float, warmup_steps: int = 0,
                  warmup_start_factor: float = 1 / 3, **kwargs: Any) -> Schedule:
    """Build a schedule by name; ``make_schedule(**s.config())`` rebuilds ``s``.

    ``name`` is one of "constant", "step", "exponential", "cosine", "time_cosine"; ``kwargs``
    are that class's other arguments (``step_size``, ``gamma``, ``T_max``,
    ``eta_min``). With ``warmup_steps > 0`` the result is wrapped in
    :class:`LinearWarmup`.

    >>> make_schedule("cosine", 0.1, T_max=100, warmup_steps=10).lr_at(0)
    0.03333333333333333
    """
    if name not in _SCHEDULES:
        raise HyperparameterError(
            f"unknown schedule {name!r}; valid names are {', '.join(map(repr, _SCHEDULES))}"
        )
    cls = _SCHEDULES[name]
    signature = inspect.signature(cls)
    try:
        signature.bind(base_lr, **kwargs)
    except TypeError as exc:
        takes = [k for k in signature.parameters if k != "base_lr"]
        raise HyperparameterError(
            f"schedule {name!r}: {exc}; it takes {takes} plus warmup_steps, warmup_start_factor"
        ) from None
    schedule = cls(base_lr, **kwargs)
    if check_count("warmup_steps", warmup_steps, 0) > 0:
        schedule = LinearWarmup(schedule, warmup_steps, warmup_start_factor)
    return schedule
