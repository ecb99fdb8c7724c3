"""Training checkpoints: everything :func:`rnnkit.train.fit` needs to resume bit for bit.

A checkpoint is a model file (:mod:`rnnkit.io.modelfile`) of kind
``"checkpoint"``, so it is written atomically and loaded without pickle.
Arrays are stored under prefixes::

    model/<name>   parameters now           best/<name>   parameters at the best validation
    optim/<key>    optimiser state arrays   carry/<key>   ctx.carry (e.g. a TBPTT hidden state)
    cb/<owner>/<key>  the arrays of a callback that keeps state across a resume (``callback_states``)

The file's ``config`` is the caller's ``config`` verbatim (what an application
needs to rebuild its model); its ``meta`` holds the caller's ``meta`` under
``"user"``, the loop's counters, random state and settings under ``"train"``,
the optimiser's scalars under ``"optimizer"``, the :class:`History` under
``"history"`` and the stateful callbacks' scalars under ``"callbacks"``.

An application rebuilds its model from a checkpoint like this::

    ck = load_checkpoint("run.ckpt.npz")
    model = build_model(**ck.config)
    model.load_state_dict(ck.best_state or ck.model_state)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..errors import ModelFileError
from ..io.modelfile import load_model_file, save_model_file
from .history import History, thin_history

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "CHECKPOINT_KIND"]

CHECKPOINT_KIND = "checkpoint"
# curve entries a checkpoint keeps: all of any run up to 20,000 logged steps, a thinned curve beyond
CHECKPOINT_HISTORY_POINTS = 20_000
_PREFIXES = ("model/", "best/", "optim/", "carry/", "cb/")


@dataclass
class Checkpoint:
    """The contents of a training checkpoint (see the module docstring).

    ``train_state`` is JSON: ``seed``, ``step``, ``epoch``, ``batch_index``
    (batches done in ``epoch``), ``rng_state`` (the training Generator's
    ``bit_generator.state``), ``schedule`` (its ``config()``),
    ``bad_validations``, ``last_val_step``, ``window`` (the partial log window)
    and ``elapsed_s``. ``callback_states`` maps a stateful callback's
    ``checkpoint_key`` (e.g. checkpoint averaging's snapshots) to its
    ``(scalars, arrays)``.
    """

    model_state: Dict[str, np.ndarray]
    optimizer_state: Dict[str, Any]
    train_state: Dict[str, Any]
    history: History
    carry: Dict[str, np.ndarray] = field(default_factory=dict)
    best_state: Optional[Dict[str, np.ndarray]] = None
    config: Dict[str, Any] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)
    callback_states: Dict[str, Tuple[Dict[str, Any], Dict[str, np.ndarray]]] = field(default_factory=dict)

    @property
    def step(self) -> int:
        return int(self.train_state["step"])

    @property
    def epoch(self) -> int:
        return int(self.train_state["epoch"])


def save_checkpoint(path, ck: Checkpoint) -> None:
    """Write ``ck`` atomically to ``path`` (the previous file survives any failure)."""
    arrays: Dict[str, np.ndarray] = {}
    for prefix, part in (("model/", ck.model_state), ("best/", ck.best_state or {}),
                         ("optim/", ck.optimizer_state.get("arrays", {})), ("carry/", ck.carry)):
        for key, a in part.items():
            if not isinstance(a, np.ndarray):
                where = "ctx.carry" if prefix == "carry/" else prefix.rstrip("/")
                raise TypeError(f"{where}[{key!r}]: checkpoints store NumPy arrays only, got "
                                f"{type(a).__name__}; store each array under its own key")
            arrays[prefix + key] = a
    for owner, (_, part) in ck.callback_states.items():
        if not owner or "/" in owner:
            raise ValueError(f"callback_states: a checkpoint_key is one non-empty name without '/', got {owner!r}")
        for key, a in part.items():
            if not isinstance(a, np.ndarray):
                raise TypeError(f"callback {owner!r}: checkpoints store NumPy arrays only, got {type(a).__name__} "
                                f"for {key!r}")
            arrays[f"cb/{owner}/{key}"] = a
    meta = {"user": ck.meta, "train": ck.train_state, "optimizer": ck.optimizer_state.get("scalars", {}),
            "history": thin_history(ck.history.to_dict(), CHECKPOINT_HISTORY_POINTS), "has_best": ck.best_state is not None}
    if ck.callback_states:
        meta["callbacks"] = {owner: scalars for owner, (scalars, _) in ck.callback_states.items()}
    save_model_file(path, kind=CHECKPOINT_KIND, config=ck.config, arrays=arrays, meta=meta)


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (raises :class:`ModelFileError` otherwise)."""
    mf = load_model_file(path, expected_kind=CHECKPOINT_KIND)
    parts: Dict[str, Dict[str, np.ndarray]] = {p: {} for p in _PREFIXES}
    for name, a in mf.arrays.items():
        prefix = next((p for p in _PREFIXES if name.startswith(p)), None)
        if prefix is None:
            raise ModelFileError(f"{path}: unexpected array {name!r} in a checkpoint; the file was not "
                                 "written by rnnkit.train, re-create it")
        parts[prefix][name[len(prefix):]] = a
    meta = mf.meta
    if not isinstance(meta.get("train"), dict) or not isinstance(meta.get("history"), dict):
        raise ModelFileError(f"{path}: checkpoint has no training state; the file was not written by "
                             "rnnkit.train, re-create it")
    scalars = meta.get("callbacks", {})
    if not isinstance(scalars, dict) or not all(isinstance(v, dict) for v in scalars.values()):
        raise ModelFileError(f"{path}: the checkpoint's callback state is malformed; the file was not written by "
                             "rnnkit.train, start afresh without resume")
    callback_states = {owner: (dict(v), {}) for owner, v in scalars.items()}
    for name, a in parts["cb/"].items():
        owner, _, key = name.partition("/")
        if owner not in callback_states or not key:
            raise ModelFileError(f"{path}: unexpected array 'cb/{name}' in a checkpoint; the file was not "
                                 "written by rnnkit.train, re-create it")
        callback_states[owner][1][key] = a
    return Checkpoint(
        model_state=parts["model/"],
        optimizer_state={"scalars": meta.get("optimizer", {}), "arrays": parts["optim/"]},
        train_state=meta["train"],
        history=History.from_dict(meta["history"]),
        carry=parts["carry/"],
        best_state=parts["best/"] if meta.get("has_best") else None,
        config=mf.config,
        meta=meta.get("user", {}),
        callback_states=callback_states,
    )
