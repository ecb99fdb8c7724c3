"""Validation during training: when it is due, the best parameters so far, and early stopping.

:class:`Validation` runs the caller's ``validate(model) -> {"loss": float, ...}``
in eval mode (:meth:`~rnnkit.nn.module.Module.eval_mode`), records the result in
the :class:`~rnnkit.train.history.History`, keeps a copy of the parameters with
the best monitored metric so far (the lowest loss unless ``monitor`` names another
entry, e.g. the highest BLEU) and counts the validations in a row that did not
improve it. Its three counters (``best_state``, ``bad``, ``last_step``) are part of the
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
    ``monitor`` is the metric that decides the best validation ("loss" by default; a tie on it goes to the
    lower loss); ``maximize`` says whether higher is better (BLEU) or lower (a loss).
    """

    def __init__(self, validate: Optional[Callable[[Module], Dict[str, float]]], every: Optional[int],
                 patience: Optional[int], monitor: str = "loss", maximize: bool = False):
        self.validate, self.every, self.patience = validate, every, patience
        self.monitor, self.maximize = monitor, bool(maximize)
        # -- the state a checkpoint captures --
        self.best_state: Optional[Dict[str, np.ndarray]] = None
        self.bad = 0          # validations in a row without a better monitored metric
        self.last_step = -1   # the step of the last validation (never twice at one step)

    def due(self, step: int) -> bool:
        """Whether the every-``every``-steps rule asks for a validation after ``step`` steps."""
        return (self.validate is not None and self.every is not None and step > 0
                and step % self.every == 0 and self.last_step != step)

    def due_at_epoch_end(self, step: int) -> bool:
        return self.validate is not None and self.last_step != step

    @property
    def exhausted(self) -> bool:
        """True once ``patience`` validations in a row have not improved the monitored metric."""
        return self.patience is not None and self.bad >= self.patience

    def run(self, model: Module, step: int, history: History) -> Tuple[Dict[str, Any], bool]:
        """Validate ``model`` after ``step`` steps; return the metrics and whether they are the best yet.

        ``history.best_step`` is the best validation's step and ``history.best_val_loss`` its loss
        (the lowest loss when the monitor is the loss).
        """
        with model.eval_mode():
            metrics = self.validate(model)
        if not isinstance(metrics, dict) or "loss" not in metrics:
            raise TypeError(f"validate must return a dict with a 'loss' entry, got {metrics!r}")
        metrics = _plain(dict(metrics))
        metrics["loss"] = loss = float(metrics["loss"])
        if self.monitor not in metrics:
            raise TypeError(f"validate must return the monitored metric {self.monitor!r}, got {sorted(metrics)}")
        value = float(metrics[self.monitor])
        best = self._best(history)
        history.val.append((step, metrics))
        self.last_step = step
        better = (lambda a, b: a > b) if self.maximize else (lambda a, b: a < b)
        # a tie on the monitor (BLEU 0 or 100 at every early validation) goes to the lower loss
        improved = math.isfinite(value) and math.isfinite(loss) and (
            best is None or better(value, best[0]) or (value == best[0] and loss < best[1]))
        if improved:
            history.best_val_loss, history.best_step = loss, step
            self.best_state = model.state_dict()
            self.bad = 0
        else:
            self.bad += 1
        return metrics, improved

    def _best(self, history: History) -> Optional[Tuple[float, float]]:
        """The monitored metric and the loss of the best validation so far (None before the first)."""
        for s, m in reversed(history.val):
            if s == history.best_step and history.best_step is not None:
                return float(m[self.monitor]), float(m["loss"])
        return None


def validation_line(step: int, metrics: Dict[str, Any], improved: bool) -> str:
    """``"step 40: validation loss 1.2345  acc 0.5  (best)"``: the progress note of one validation."""
    extra = "".join(f"  {k} {v:.4g}" for k, v in metrics.items()
                    if k != "loss" and isinstance(v, (int, float)) and not isinstance(v, bool))
    return f"step {step}: validation loss {metrics['loss']:.4f}{extra}" + ("  (best)" if improved else "")
