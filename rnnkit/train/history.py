"""What a training run records: losses, validation metrics, learning rates, throughput."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

__all__ = ["History", "thin_history", "trained_line"]


@dataclass
class History:
    """The record of one training run (continued across resumes).

    Every ``step`` below counts optimiser steps completed at that point, so the
    first training loss is at step 1 and a validation after 100 steps is at 100.

    Attributes
    ----------
    train : (step, loss) pairs; the loss is the mean over the steps since the
        previous entry, weighted by each step's number of units (tokens, ...).
    val : (step, metrics) pairs; ``metrics`` is what ``validate`` returned.
    lr : (step, learning rate used for that step).
    throughput : (step, units per second since the previous entry).
    epochs : (epoch, step) at the end of each completed epoch.
    best_step, best_val_loss : the best validation so far (None without validation).
    stop_reason : "epochs", "max_steps", "max_minutes", "early_stopping",
        "callback" or "interrupted" once training has stopped.
    steps : optimiser steps completed; elapsed_s : training seconds over all runs.
    """

    unit: str = "tok"
    train: List[Tuple[int, float]] = field(default_factory=list)
    val: List[Tuple[int, Dict[str, Any]]] = field(default_factory=list)
    lr: List[Tuple[int, float]] = field(default_factory=list)
    throughput: List[Tuple[int, float]] = field(default_factory=list)
    epochs: List[Tuple[int, int]] = field(default_factory=list)
    best_step: Optional[int] = None
    best_val_loss: Optional[float] = None
    stop_reason: Optional[str] = None
    steps: int = 0
    elapsed_s: float = 0.0

    @property
    def val_loss(self) -> List[Tuple[int, float]]:
        """(step, validation loss) pairs, ready for plotting."""
        return [(s, m["loss"]) for s, m in self.val]

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-able dict (pairs become 2-element lists)."""
        pairs = lambda xs: [[a, b] for a, b in xs]
        return {"unit": self.unit, "train": pairs(self.train), "val": pairs(self.val), "lr": pairs(self.lr),
                "throughput": pairs(self.throughput), "epochs": pairs(self.epochs),
                "best_step": self.best_step, "best_val_loss": self.best_val_loss,
                "stop_reason": self.stop_reason, "steps": self.steps, "elapsed_s": self.elapsed_s}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "History":
        pairs = lambda xs: [(a, b) for a, b in xs]
        return cls(unit=d.get("unit", "tok"), train=pairs(d.get("train", [])), val=pairs(d.get("val", [])),
                   lr=pairs(d.get("lr", [])), throughput=pairs(d.get("throughput", [])),
                   epochs=pairs(d.get("epochs", [])), best_step=d.get("best_step"),
                   best_val_loss=d.get("best_val_loss"), stop_reason=d.get("stop_reason"),
                   steps=int(d.get("steps", 0)), elapsed_s=float(d.get("elapsed_s", 0.0)))


def trained_line(steps: int, seconds: float, stop_reason: Optional[str]) -> str:
    """The line every ``train`` command prints first: ``trained 1,200 steps in 47 s (stopped: max_steps)``."""
    took = f"{seconds:.1f} s" if round(seconds, 1) < 10 else f"{seconds:,.0f} s"
    return f"trained {steps:,} step{'' if steps == 1 else 's'} in {took} (stopped: {stop_reason})"


def thin_history(history: Optional[Mapping[str, Any]], points: int = 500) -> Optional[Dict[str, Any]]:
    """A training history with each curve cut to at most ``points`` evenly spaced entries (the last kept).

    Model files keep this summary (500 points), and checkpoints keep 20,000 per curve, so neither grows
    with the number of steps (a million-step run rewrote about 75 MB of header at every checkpoint).
    """
    if history is None:
        return None
    out = dict(history)
    for key, value in history.items():
        if isinstance(value, list) and len(value) > points:
            idx = np.unique(np.linspace(0, len(value) - 1, points).round().astype(int))
            out[key] = [value[i] for i in idx]
    return out
