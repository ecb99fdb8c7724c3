"""What a training run needs around its estimator: files beside ``--out``, the checks before any work,
and the memory the machine (or its container) has left.

Every ``train`` command and function starts with :func:`prepare_run`; estimators ask
:func:`check_memory` before building a network (see ``Estimator._check_memory``).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import HyperparameterError, ModelFileError, PathError
from .io.atomic import check_model_kind, check_outputs

__all__ = ["available_memory", "beside", "check_memory", "checkpoint_beside", "format_bytes", "prepare_run",
           "unwritten_model_hint"]


def _cgroup_room(root: str = "/sys/fs/cgroup") -> Optional[int]:
    """Bytes left under this process's cgroup memory limit (v2, then v1), or None without a limit."""
    for limit_file, usage_file in ((f"{root}/memory.max", f"{root}/memory.current"),
                                   (f"{root}/memory/memory.limit_in_bytes", f"{root}/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:   # no limit set
            return None
        return max(0, int(limit) - usage)
    return None


def available_memory() -> Optional[int]:
    """Bytes a new allocation may use: the machine's MemAvailable, capped by a cgroup limit (a container, a
    Slurm or Kubernetes job), whichever is lower; None where neither is known."""
    machine = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    machine = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if machine is None:
        try:
            machine = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            machine = None
    room = _cgroup_room()
    known = [m for m in (machine, room) if m is not None]
    return min(known) if known else None


def format_bytes(n: float) -> str:
    """A memory size for messages: GiB from 1 GiB up, MiB below."""
    return f"{n / (1 << 30):,.1f} GiB" if n >= (1 << 30) else f"{n / (1 << 20):,.0f} MiB"


_STATE_FACTOR = 4         # parameters + gradients + two optimiser moments (Adam)


def check_memory(shapes: Mapping[str, Tuple[int, ...]], dtype, extra_bytes: int = 0, *,
                 what: str = "these settings", size_flags: Sequence[str] = ()) -> None:
    """Refuse, before allocating, training whose state would not fit in the available memory.

    The need is the parameters of ``shapes`` with their gradients and Adam's two moments, plus ``extra_bytes``
    (activations, data); the refusal names ``size_flags``, the flags that set it.
    """
    from .nn.shapes import count
    n = count(shapes)
    need = n * np.dtype(dtype).itemsize * _STATE_FACTOR + int(extra_bytes)
    have = available_memory()
    if have is not None and need > have:
        raise HyperparameterError(
            f"{what} need about {format_bytes(need)} of memory ({n:,} parameters, with their gradients and "
            f"optimiser state{', plus activations' if extra_bytes else ''}), but {format_bytes(have)} is available; "
            f"choose smaller sizes ({', '.join(size_flags)})")


def beside(out, suffix: str) -> str:
    """A file beside model file ``out``: ``beside("run.npz", ".ckpt.npz")`` is ``run.ckpt.npz``."""
    out = os.fspath(out)
    return (out[:-4] if out.endswith(".npz") else out) + suffix


def checkpoint_beside(out) -> str:
    """The checkpoint path the CLI and the function APIs use for model file ``out``: ``run.npz`` -> ``run.ckpt.npz``."""
    return beside(out, ".ckpt.npz")


def _unfinished(ckpt: str, kind: Optional[str] = None) -> Optional[str]:
    """Why a fresh run (of application ``kind``) must not overwrite ``ckpt``: the refusal's message, or None."""
    from .train.checkpoint import load_checkpoint
    where = f"{ckpt} (the checkpoint beside --out)"
    try:
        ck = load_checkpoint(ckpt)
    except ModelFileError as e:
        return f"{where} is not a readable rnnkit checkpoint ({e}); move it away, or choose another --out"
    reason = ck.history.stop_reason
    other = (ck.config or {}).get("kind")
    if reason not in (None, "interrupted") and kind is not None and isinstance(other, str) and other != kind:
        return (f"{where} holds a finished {other} run, not a {kind} run: this run would replace it beside that "
                f"run's model; choose another --out")
    if reason in (None, "interrupted"):
        how = "interrupted" if reason else "stopped without finishing (killed, or still running)"
        if kind is not None and isinstance(other, str) and other != kind:   # --resume here would be refused
            return f"{where} holds a {other} run {how} at step {ck.step}, not a {kind} run; choose another " \
                   f"--out for this one (that run continues with its own command and --resume)"
        return f"{where} holds a run {how} at step {ck.step}; continue it with --resume, or delete the file to " \
               "start afresh"
    return None


def unwritten_model_hint(out, since: float = 0.0) -> Optional[str]:
    """What to do when a train command stops after its last step but before writing the model file, or None.

    A Ctrl-C or SIGTERM in the final validation, averaging or write leaves the checkpoint of a finished run
    beside ``out`` (and no model, or an older one). ``--resume`` continues from it; ``--max-steps`` at its
    step count stops at once (a ``--max-minutes`` budget is per invocation and would train again). Only a
    checkpoint written at or after ``since`` (the command's start, ``time.time()``) is this run's.
    """
    from .io.modelfile import file_header
    if out is None:
        return None
    ckpt = checkpoint_beside(out)
    header = file_header(ckpt)
    if header is None or header["kind"] != "checkpoint":
        return None
    history = header["meta"].get("history") or {}
    reason, steps = history.get("stop_reason"), history.get("steps")
    if reason in (None, "interrupted") or not isinstance(steps, int):
        return None
    try:
        if os.path.getmtime(ckpt) < since - 1.0:      # (a coarse file-system clock)
            return None                                 # an earlier run's checkpoint: this one stopped before its own
        if os.path.getmtime(out) >= os.path.getmtime(ckpt):
            return None                                 # the model was written after the checkpoint
    except OSError:
        pass                                            # no model file
    return (f"training had finished ({steps:,} steps, stopped: {reason}) and {ckpt} holds it, but the model was "
            f"not written to {out}: to write it without training more, run the same command again with --resume "
            f"--max-steps {steps}")


def prepare_run(out, *, resume: bool, outputs: Optional[Mapping[str, Any]] = None,
                inputs: Optional[Mapping[str, Any]] = None,
                examples: Optional[Mapping[str, str]] = None, kind: Optional[str] = None) -> str:
    """The checks every ``train`` command and function make before any work; returns the checkpoint path.

    ``--out``, the checkpoint beside it and the other ``outputs`` are checked
    (:func:`rnnkit.io.atomic.check_outputs`, ``inputs`` included). With
    ``resume`` the checkpoint must exist (a typo must not restart a long run);
    without it, a checkpoint of an unfinished run is not overwritten: the user
    continues it with ``--resume`` or deletes it.
    """
    ckpt = checkpoint_beside(out)
    # an --out (or another output) that is a checkpoint is refused there: the model would destroy it
    check_outputs({"--out": out, **(outputs or {}), "the checkpoint beside --out": ckpt}, inputs=inputs,
                  examples={"the checkpoint beside --out": "model.ckpt.npz", **(examples or {})},
                  models=("--out",), checkpoints=("the checkpoint beside --out",))
    if kind is not None:         # a model of another application is not retrained over (a model over its own kind is)
        check_model_kind("--out", out, kind, f"training a {kind} model")
    if resume and not os.path.exists(ckpt):
        raise PathError(f"--resume: there is no checkpoint {ckpt} beside --out {out}; pass the --out of the run "
                        "to continue, or start afresh without --resume")
    if not resume and os.path.exists(ckpt):
        refusal = _unfinished(ckpt, kind)
        if refusal:
            raise PathError(refusal)
    return ckpt
