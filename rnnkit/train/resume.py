"""The state of a training run that a checkpoint captures, and putting it back for a resume.

:func:`capture` turns a running loop (:mod:`rnnkit.train.loop`) into a
:class:`~rnnkit.train.checkpoint.Checkpoint`; :func:`restore` puts one back into
a fresh loop, all or nothing. Together they make a resumed run end with the same
parameters, bit for bit, as a run that was never interrupted. What is captured:

- the model's and the optimiser's state, and the best parameters so far;
- the step, epoch and batch counters, so the epoch's batches can be rebuilt
  and the ones already done skipped;
- the step Generator's state and ``ctx.carry`` (e.g. a TBPTT hidden state);
- the validation counters (early stopping), the :class:`History`, the time
  spent so far and the partly filled logging window;
- ``schedule_fraction``: how far a schedule that follows the clock
  (:class:`~rnnkit.optim.schedules.TimeCosineLR`) had got through its budget; a
  resumed run goes on from there (0 for checkpoints written before it existed);
- the state of every callback that keeps one (one with a ``checkpoint_key`` and
  the methods ``checkpoint_state``, ``prepare_restore`` and ``restore_state``,
  such as :class:`~rnnkit.train.averaging.CheckpointAverager`'s snapshots), so
  that what a run keeps besides its parameters resumes bit for bit too.

The checkpoint also records the seed and the schedule's ``config()``, so a
resume with other ones warns that it will not reproduce the original run.

A run on K > 1 processes (:mod:`rnnkit.distributed`) records ``world_size`` K,
every rank's Generator state (``rank_rng_states``) and every rank's carry
(``carry/rank<r>/<key>``); rank 0's are also in the single-process places, so
the file still loads anywhere. It resumes only on K processes, each taking its
own rank's state back; any other count is refused.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..distributed import mark_collective
from ..errors import ModelFileError, ShapeError
from ..io.jsonable import plain as _plain
from ..nn.xp import host_copy
from ..optim.schedules import follows_time
from .checkpoint import Checkpoint

__all__ = ["capture", "restore"]


def _schedule_config(schedule):
    return schedule.config() if hasattr(schedule, "config") else None


def _schedule_words(config) -> str:
    """A schedule's ``config()`` as a user reads it: "cosine from 0.002 to 0.0001 over 160 steps"."""
    if not isinstance(config, dict):
        return "a constant rate"
    c = dict(config)
    name, base = c.pop("name", "?"), c.pop("base_lr", None)
    warm = c.pop("warmup_steps", 0)
    c.pop("warmup_start_factor", None)
    start = f" from {base:g}" if isinstance(base, (int, float)) else ""
    if name == "cosine":
        words = f"cosine{start} to {c.get('eta_min', 0):g} over {c.get('T_max')} steps"
    elif name == "time_cosine":
        words = f"cosine{start} to {c.get('eta_min', 0):g} over the time budget"
    elif name == "constant":
        words = f"constant{start.replace(' from', '')}"
    else:
        words = name + start + "".join(f", {k} {v}" for k, v in c.items())
    return words + (f" after {warm} warm-up steps" if warm else "")


def capture(loop, now: float, ranks=None) -> Checkpoint:
    """The checkpoint of ``loop`` (a ``rnnkit.train.loop._Loop``) at time ``now`` of the loop's clock.

    ``ranks``: with several processes, every rank's ``(rng_state, carry)`` in rank order.
    """
    ctx, val = loop.ctx, loop.validation
    window = dict(loop.window, seconds=now - loop.window_t0)
    train_state = {
        "seed": loop.seed, "step": ctx.step, "epoch": ctx.epoch, "batch_index": ctx.batch_index,
        "rng_state": ctx.rng.bit_generator.state, "schedule": _schedule_config(loop.schedule),
        "bad_validations": val.bad, "last_val_step": val.last_step,
        "window": window, "elapsed_s": loop.history.elapsed_s, "schedule_fraction": loop.fraction,
    }
    carry = {key: _host(a) for key, a in ctx.carry.items()}
    if ranks is not None and len(ranks) > 1:
        train_state["world_size"] = len(ranks)
        train_state["rank_rng_states"] = [state for state, _ in ranks]
        carry.update({f"rank{r}/{key}": a for r, (_, c) in enumerate(ranks) for key, a in c.items()})
    best = None if val.best_state is None else {k: _host(a) for k, a in val.best_state.items()}
    states = {}
    for cb in _stateful(loop):
        scalars, arrays = cb.checkpoint_state()
        states[cb.checkpoint_key] = (scalars, {k: _host(a) for k, a in arrays.items()})
    return Checkpoint(model_state={k: _host(a) for k, a in loop.model.state_dict().items()},
                      optimizer_state=loop.optimizer.state_dict(), train_state=train_state, history=loop.history,
                      carry=carry, best_state=best, config=loop.config, meta=loop.meta, callback_states=states)


def _stateful(loop):
    """The loop's callbacks that keep state across a resume."""
    return [cb for cb in (getattr(loop, "callbacks", None) or []) if hasattr(cb, "checkpoint_state")]


def _host(a):
    """A device array as a host copy (checkpoints hold NumPy arrays, whatever device trained); NumPy arrays and
    anything that is not an array pass unchanged (the checkpoint writer refuses the latter by name)."""
    return a if isinstance(a, np.ndarray) or not hasattr(a, "shape") else host_copy(a)


def restore(loop, ck: Checkpoint) -> None:
    """Continue ``loop`` from ``ck``; on any error the model and the loop are left as they were."""
    path = loop.checkpoint_path
    ts = ck.train_state
    world = getattr(loop, "world", None)
    size, rank = (1, 0) if world is None else (world.size, world.rank)
    written = ts.get("world_size", 1)
    if written != size:   # raised alike on every rank
        raise mark_collective(ModelFileError(f"{path}: this checkpoint was written by a run on {written} process(es), and this run "
                             f"has {size}; resume it on {written} (mpiexec -n {written} ... --distributed), since "
                             "each process's share of the batches, random stream and carried state belong to its "
                             "rank, or start afresh without resume"))
    carry = dict(ck.carry)
    if size > 1:
        carry = {k[len(f"rank{rank}/"):]: a for k, a in ck.carry.items() if k.startswith(f"rank{rank}/")}
    try:  # read every counter first: a malformed checkpoint must change nothing
        counters = {k: int(ts[k]) for k in ("step", "epoch", "batch_index", "bad_validations", "last_val_step")}
        elapsed, window = float(ts["elapsed_s"]), dict(ts["window"])
        fraction = float(ts.get("schedule_fraction", 0.0))     # checkpoints before time schedules: none
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"schedule_fraction {fraction} is not within [0, 1]")
        rng = np.random.default_rng()
        rng.bit_generator.state = ts["rng_state"] if size == 1 else ts["rank_rng_states"][rank]
        # a callback whose state this checkpoint lacks (written before it kept one, or without it) starts afresh
        owners = [cb for cb in _stateful(loop) if cb.checkpoint_key in ck.callback_states]
        like = loop.model.state_dict() if owners else None         # a copy of the parameters: only when needed
        prepared = [(cb, cb.prepare_restore(*ck.callback_states[cb.checkpoint_key], like=like)) for cb in owners]
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: the checkpoint's training state is malformed ({type(e).__name__}: {e}); "
                             "the file was not written by rnnkit.train, start afresh without resume") from e
    model = loop.model
    before = model.state_dict()
    try:
        model.load_state_dict(ck.model_state)  # all or nothing
    except (ShapeError, TypeError) as e:
        raise ModelFileError(f"{path}: the checkpoint does not fit this model ({e}); build the model "
                             "from the checkpoint's config (load_checkpoint(path).config)") from e
    try:
        loop.optimizer.load_state_dict(ck.optimizer_state)  # all or nothing too
    except BaseException as e:
        model.load_state_dict(before)  # so a failed resume leaves the model as it was
        if isinstance(e, ShapeError):
            raise ModelFileError(f"{path}: the checkpoint's optimiser state does not fit this optimiser "
                                 f"({e}); resume with the optimiser and model of the original run") from e
        raise
    # stacklevel 4: the warning points at the caller of fit() (restore <- run <- fit <- caller)
    if ts.get("seed") != loop.seed and isinstance(ts.get("seed"), int):
        # the checkpoint carries the run's random state: continuing it under another seed would mix two runs
        # (the epochs' batch order from the new seed, the draws from the old), so its own seed is kept
        warnings.warn(f"resuming {path}: the run continues with its own seed {ts['seed']} (its random state is in "
                      f"the checkpoint), not {loop.seed}, so it ends as the uninterrupted run would",
                      RuntimeWarning, stacklevel=4)
        loop.seed = ts["seed"]
    sched = _schedule_config(loop.schedule)
    if _plain(sched) != ts.get("schedule"):
        warnings.warn(f"resuming {path} with another learning-rate schedule: {_schedule_words(sched)}, not "
                      f"{_schedule_words(ts.get('schedule'))}; the rate follows the new one from step "
                      f"{counters['step']}", RuntimeWarning, stacklevel=4)
    if follows_time(loop.schedule) and fraction >= 1.0:
        warnings.warn(f"resuming {path}: its time schedule had used its whole budget, so this run trains at "
                      f"the final rate ({loop.schedule.lr_at_fraction(1.0):g}) throughout; start afresh "
                      "(without resume) for a new decay", RuntimeWarning, stacklevel=4)
    ctx, val = loop.ctx, loop.validation
    ctx.rng.bit_generator.state = rng.bit_generator.state
    ctx.step, ctx.epoch, ctx.batch_index = counters["step"], counters["epoch"], counters["batch_index"]
    ctx.carry = carry
    loop.history = ck.history
    loop.history.stop_reason = None
    val.best_state, val.bad, val.last_step = ck.best_state, counters["bad_validations"], counters["last_val_step"]
    loop.elapsed_before = elapsed
    loop.fraction_before = loop.fraction = fraction
    loop.window = window
    for cb, state in prepared:
        cb.restore_state(state)
    loop.last_checkpoint_step = ctx.step
