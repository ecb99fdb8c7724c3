"""What the training loop hands to the caller's code: the step context, and the way to stop.

:func:`rnnkit.train.fit` calls ``step_fn(batch, ctx)`` with a :class:`StepContext`
and lets a callback end training by raising :class:`StopTraining`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import numpy as np

from ..nn.module import Module

__all__ = ["StepContext", "StopTraining"]


@dataclass
class StepContext:
    """What ``step_fn(batch, ctx)`` gets besides the batch.

    ``rng`` is the training Generator (dropout, sampling). ``carry`` is a dict
    of NumPy arrays kept from one step to the next within an epoch (e.g. the
    hidden state of truncated BPTT); it is emptied at the start of every epoch
    and checkpointed. Replace its entries (``ctx.carry["h"] = h_new``) rather
    than modifying the arrays in place. ``step`` counts optimiser steps done
    before this one; ``batch_index`` is this batch's position in ``epoch``.
    """

    model: Module
    rng: np.random.Generator
    carry: Dict[str, np.ndarray] = field(default_factory=dict)
    step: int = 0
    epoch: int = 0
    batch_index: int = 0


class StopTraining(Exception):
    """Raise from a callback to end training cleanly (``History.stop_reason == "callback"``)."""
