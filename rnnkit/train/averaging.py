r"""Checkpoint averaging: the mean of the parameters of the K best validations of one run.

.. math::
    \bar\theta = \frac{1}{K} \sum_{k=1}^{K} \theta^{(s_k)}

where :math:`s_1, \dots, s_K` are the steps of the K validations with the best
monitored metric (the highest BLEU, or the lowest loss). Vaswani et al. (2017)
averaged the last 5 or 20 checkpoints of a run; Junczys-Dowmunt et al. (2016)
the best ones by validation score. We keep the K *best*, not the last K: with a
cosine schedule over a fixed number of epochs the validation score of a small
data set peaks well before the end (issue 15: BLEU 34.5 at epoch 20, 31.4 at
epoch 30), and the last K would average the overfitted end of the run.

:class:`CheckpointAverager` is a :func:`rnnkit.train.fit` callback: at each
"validate" event it copies the parameters (``model.state_dict()``) when they
rank among the K best so far. It reads neither the step Generator nor the
batches, so a run with it trains exactly as a run without it. Its snapshots are
part of the training checkpoint (``cb/averager/<i>/<name>``, K copies of the
parameters), so a resumed run averages the same validations as a run never
interrupted. A checkpoint written before they were kept (2026-12-05) resumes
with none: that run averages the validations made since the resume.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from ..nn.xp import to_host

__all__ = ["CheckpointAverager", "average_states", "describe_averaging", "keep_better_average"]


def average_states(states: Sequence[Mapping[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """The element-wise mean of ``states`` (same names and shapes), summed in float64, in each array's dtype.

    The arrays may live on a GPU (a CuPy model's ``state_dict``); the mean is a host array, which
    ``load_state_dict`` copies back onto the parameters' device.
    """
    if not states:
        raise ValueError("average_states: no states to average")
    names = list(states[0])
    for s in states[1:]:
        if list(s) != names or any(np.shape(s[k]) != np.shape(states[0][k]) for k in names):
            raise ValueError("average_states: the states differ in their arrays' names or shapes")
    out = {}
    for k in names:
        total = np.zeros(np.shape(states[0][k]), dtype=np.float64)
        for s in states:
            total += to_host(s[k])
        out[k] = (total / len(states)).astype(to_host(states[0][k]).dtype)
    return out


class CheckpointAverager:
    """A ``fit`` callback that keeps the parameters of the ``k`` best validations by ``monitor``.

    ``snapshots`` holds ``(value, step, state, loss)``, best first; :meth:`average` is their mean.
    A validation whose metric is not finite is never kept. A tie on the monitor (BLEU 0 at every early
    validation) goes to the lower validation loss, as in :class:`~rnnkit.train.validation.Validation`;
    a tie on both to the earlier validation.
    """

    def __init__(self, k: int, monitor: str = "loss", maximize: bool = False):
        if int(k) < 1:
            raise ValueError(f"CheckpointAverager: k must be >= 1, got {k}")
        self.k, self.monitor, self.maximize = int(k), monitor, bool(maximize)
        self.snapshots: List[Tuple[float, int, Dict[str, np.ndarray], float]] = []

    def _rank(self, snapshot) -> Tuple[float, float]:
        """``(monitor, loss)`` of a ``(value, step, state, loss)`` snapshot, lower first."""
        value, _, _, loss = snapshot
        return self._key(value, loss)

    def _key(self, value: float, loss: float) -> Tuple[float, float]:
        return (-value if self.maximize else value), loss

    def __call__(self, event: str, info: Dict[str, Any]) -> None:
        if event == "validate":
            self.offer(info["step"], info["model"], info["metrics"])

    def offer(self, step: int, model, metrics: Mapping[str, Any]) -> None:
        """Keep a copy of ``model``'s parameters if ``metrics`` rank them among the k best so far."""
        value = float(metrics[self.monitor])
        loss = _tiebreak(metrics.get("loss"))
        if not math.isfinite(value):
            return
        if len(self.snapshots) == self.k and self._key(value, loss) >= self._rank(self.snapshots[-1]):
            return                                     # not among the k best: no copy made
        self.snapshots.append((value, int(step), model.state_dict(), loss))
        # a stable sort: of equal values and losses the earlier validation ranks first
        self.snapshots.sort(key=self._rank)
        del self.snapshots[self.k:]

    # -- across a resume (rnnkit.train.resume) ----------------------------------
    checkpoint_key = "averager"

    def checkpoint_state(self) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        """``(scalars, arrays)`` for a checkpoint: each snapshot's value, step and loss, its arrays as ``<i>/<name>``."""
        scalars = {"k": self.k, "monitor": self.monitor, "maximize": self.maximize,
                   "kept": [[value, step, loss if math.isfinite(loss) else None]
                            for value, step, _, loss in self.snapshots]}
        arrays = {f"{i}/{name}": a for i, (_, _, state, _) in enumerate(self.snapshots) for name, a in state.items()}
        return scalars, arrays

    def prepare_restore(self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray], like):
        """The snapshots ``checkpoint_state`` wrote, checked against ``like`` (the model's ``state_dict``).

        Changes nothing (the resume applies the result with :meth:`restore_state` once everything
        read); raises ValueError/KeyError/TypeError on anything malformed. Snapshots ranked by another
        metric than this averager's are dropped: the run averages from the resume on. A checkpoint
        written before the loss was kept beside each snapshot (2026-12-05) ranks its ties by order.
        """
        if scalars["monitor"] != self.monitor or bool(scalars["maximize"]) != self.maximize:
            return []
        kept, snaps, used = scalars["kept"], [], set()
        if not isinstance(kept, list):
            raise TypeError(f"averager: 'kept' is {type(kept).__name__}, not a list")
        for i, entry in enumerate(kept):
            if not isinstance(entry, list) or len(entry) not in (2, 3):
                raise ValueError(f"averager snapshot {i} is {entry!r}, not [value, step, loss]")
            value, step, loss = (entry + [None])[:3]
            state = {}
            for name, ref in like.items():
                key = f"{i}/{name}"
                a = arrays[key]
                if np.shape(a) != np.shape(ref) or a.dtype != ref.dtype:
                    raise ValueError(f"averager snapshot {key} is {a.dtype} {np.shape(a)}, the model's "
                                     f"{ref.dtype} {np.shape(ref)}")
                state[name] = a
                used.add(key)
            if not math.isfinite(float(value)):        # offer() never keeps one
                raise ValueError(f"averager snapshot {i} has the validation value {value!r}")
            snaps.append((float(value), int(step), state, _tiebreak(loss)))
        extra = sorted(set(arrays) - used)
        if extra:
            raise ValueError(f"averager: arrays no snapshot owns ({', '.join(extra[:3])})")
        return snaps

    def restore_state(self, snapshots) -> None:
        self.snapshots = sorted(snapshots, key=self._rank)[:self.k]

    @property
    def steps(self) -> List[int]:
        return [s for _, s, _, _ in self.snapshots]

    def average(self) -> Dict[str, np.ndarray]:
        """The mean of the kept snapshots' parameters."""
        return average_states([state for _, _, state, _ in self.snapshots])


def _tiebreak(loss) -> float:
    """A validation's loss as the second ranking key: missing or not finite ranks last."""
    loss = float("inf") if loss is None else float(loss)
    return loss if math.isfinite(loss) else float("inf")


def keep_better_average(model, averager: CheckpointAverager, validate, best: Mapping[str, Any]):
    """Validate the mean of ``averager``'s snapshots; keep it in ``model`` only if it beats ``best``.

    ``model`` holds the single parameters chosen so far (the best validation's) and ``best`` their
    validation metrics. Returns ``(info, unkept_state)``: ``info`` says which was kept (JSON-able, for a
    model file's meta), ``unkept_state`` is the other candidate's ``state_dict`` so a benchmark can score
    both.
    """
    monitor, maximize = averager.monitor, averager.maximize
    best_state = model.state_dict()
    model.load_state_dict(averager.average())
    with model.eval_mode():
        averaged = {k: float(v) for k, v in validate(model).items()}
    a, b = averaged[monitor], float(best[monitor])
    # a tie on the monitor goes to the lower loss, as at every validation
    tie = a == b and monitor != "loss" and averaged.get("loss", math.inf) < float(best.get("loss", math.inf))
    kept = bool(math.isfinite(a) and ((a > b if maximize else a < b) or tie))
    if kept:
        unkept = best_state
    else:
        unkept = model.state_dict()
        model.load_state_dict(best_state)
    info = {"k": averager.k, "steps": averager.steps, "monitor": monitor,
            "best": {k: float(v) for k, v in best.items() if isinstance(v, (int, float))},
            "averaged": averaged, "kept": "averaged" if kept else "best"}
    return info, unkept


def describe_averaging(info: Mapping[str, Any]) -> str:
    """One line for a CLI: the steps averaged, both validations and which model was kept."""
    m = info["monitor"]
    return (f"checkpoint averaging: the mean of the {len(info['steps'])} best validations (steps "
            f"{', '.join(map(str, sorted(info['steps'])))}) has validation {m} {info['averaged'][m]:.4g} against "
            f"the best single model's {info['best'][m]:.4g}: kept the "
            f"{'average' if info['kept'] == 'averaged' else 'best single model'}")
