"""Validation during training: when it is due, the best parameters so far, and early stopping.

:class:`Validation` runs the caller's ``validate(model) -> {"loss": float, ...}``
in eval mode (:meth:`~rnnkit.nn.module.Module.eval_mode`), records the result in
the :class:`~rnnkit.train.history.History`, keeps a copy of the parameters with
the lowest loss so far and counts the validations in a row that did not lower
it. Its three counters (``best_state``, ``bad``, ``last_step``) are part of the
state a checkpoint captures (:mod:`rnnkit.train.resume`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ..io.jsonable import plain as _plain
from ..nn.module import Module
from .history import History

__all__ = ["Validation", "validation_line"]


class Validation:
    """Validation every ``every`` steps and at every epoch end, with early stopping after ``patience``.

    ``validate=None`` turns it off: nothing is ever due. ``every=None``
    validates at epoch ends only; ``patience=None`` never stops early.
    """

    def __init__(self, validate: Optional[Callable[[Module], Dict[str, float]]], every: Optional[int],
                 patience: Optional[int]):
        self.validate, self.every, self.patience = validate, every, patience
        # -- the state a checkpoint captures --
        self.best_state: Optional[Dict[str, np.ndarray]] = None
        self.bad = 0          # validations in a row without a lower loss
        self.last_step = -1   # the step of the last validation (never twice at one step)

    def due(self, step: int) -> bool:
        """Whether the every-``every``-steps rule asks for a validation after ``step`` steps."""
        return (self.validate is not None and self.every is not None and step > 0
                and step % self.every == 0 and self.last_step != step)

    def due_at_epoch_end(self, step: int) -> bool:
        return self.validate is not None and self.last_step != step

    @property
    def exhausted(self) -> bool:
        """True once ``patience`` validations in a row have not lowered the loss."""
        return self.patience is not None and self.bad >= self.patience

    def run(self, model: Module, step: int, history: History) -> Tuple[Dict[str, Any], bool]:
        """Validate ``model`` after ``step`` steps; return the metrics and whether the loss is the best yet."""
        with model.eval_mode():
            metrics = self.validate(model)
        if not isinstance(metrics, dict) or "loss" not in metrics:
            raise TypeError(f"validate must return a dict with a 'loss' entry, got {metrics!r}")
        metrics = _plain(dict(metrics))
        metrics["loss"] = loss = float(metrics["loss"])
        history.val.append((step, metrics))
        self.last_step = step
        best = history.best_val_loss
        improved = math.isfinite(loss) and (best is None or loss < best)
        if improved:
            history.best_val_loss, history.best_step = loss, step
            self.best_state = model.state_dict()
            self.bad = 0
        else:
            self.bad += 1
        return metrics, improved


def validation_line(step: int, metrics: Dict[str, Any], improved: bool) -> str:
    """``"step 40: validation loss 1.2345  acc 0.5  (best)"``: the progress note of one validation."""
    extra = "".join(f"  {k} {v:.4g}" for k, v in metrics.items()
                    if k != "loss" and isinstance(v, (int, float)) and not isinstance(v, bool))
    return f"step {step}: validation loss {metrics['loss']:.4f}{extra}" + ("  (best)" if improved else "")
