"""``fit``: the one training loop every rnnkit application uses.

The loop is generic: the caller supplies the model, an optimiser, a function
that builds an epoch's batches and a function that does one step's forward and
backward pass. The loop owns everything around them: zeroing and checking
gradients, clipping, the learning-rate schedule, validation and early stopping,
checkpoints and resuming, the time budget, progress and the :class:`History`.

Determinism. All randomness comes from ``seed``:

- epoch ``e``'s batches are built by ``batches(e, np.random.default_rng([seed, 1, e]))``,
  so an epoch's order can be rebuilt on resume (``batches`` must depend only on
  its arguments);
- the step's own randomness (dropout, sampling) uses ``ctx.rng``, one
  ``Generator`` seeded with ``[seed, 0]`` whose state is checkpointed.

A resumed run therefore ends with the same parameters, bit for bit, as a run
that was never interrupted (given the same arguments).

Checkpoints and interrupts. With ``checkpoint_path`` a checkpoint is written
atomically every ``checkpoint_every`` steps (else at the end of every epoch),
when training stops, and on an interrupt. Ctrl-C (SIGINT) and SIGTERM (what job
schedulers send), main thread only, let the current step finish, save a
checkpoint and then raise ``KeyboardInterrupt``; a second signal stops at once
(:mod:`rnnkit.train.interrupt`). A ``KeyboardInterrupt`` raised by a callback,
``validate`` or ``batches`` does the same. In every case ``fit`` re-raises the
``KeyboardInterrupt`` after saving: the caller decides what an interrupt means
(the CLI exits with status 130, or 143 after SIGTERM). A ``KeyboardInterrupt`` in the middle of a step
(inside ``step_fn`` or the update) saves nothing, since the parameters may be
half updated; the last checkpoint stays. After an interrupt a note on stderr
says where the checkpoint is and how to resume, even with ``progress=False``.

The loop's state and a checkpoint are converted into each other in
:mod:`rnnkit.train.resume`; validation and early stopping are in
:mod:`rnnkit.train.validation`.

A non-finite loss or gradient raises :class:`TrainingError` before the update,
so the model keeps the last good parameters and no checkpoint is written.

Several processes (:mod:`rnnkit.distributed`, what it does here is described
there): the application's ``batches`` gives each rank its share of every batch
(None: nothing), one all-reduce after ``step_fn`` gives every rank the whole
batch's gradient and loss before clipping and the update, the stop decisions
are agreed at that reduce, rank 0 alone validates (metrics broadcast; every rank
runs a ``validate`` marked :func:`~rnnkit.distributed.on_every_rank`), shows
progress and writes checkpoints (with every rank's random state and carry), and
callbacks, which run on every rank, must decide alike.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from .. import distributed as _distributed
from ..checks import check_count, check_optional_count, check_real
from ..errors import HyperparameterError, TrainingError
from ..io.atomic import check_writable
from ..io.jsonable import to_json as _to_json
from ..nn.module import Module
from ..optim.checks import first_nonfinite
from ..optim.schedules import follows_time
from . import resume as _resume
from .checkpoint import load_checkpoint, save_checkpoint
from .context import StepContext, StopTraining
from .history import History
from .interrupt import DeferredSigint
from .progress import Progress
from .validation import Validation, validation_line

__all__ = ["fit", "StepContext", "StopTraining"]

# The clock for max_minutes, throughput and elapsed time (tests replace it with a fake one).
_clock = time.monotonic


def fit(model: Module, optimizer, step_fn: Callable[[Any, StepContext], Tuple[float, int]],
        batches: Callable[[int, np.random.Generator], Iterable[Any]], *, seed: int,
        epochs: Optional[int] = None, max_steps: Optional[int] = None, max_minutes: Optional[float] = None,
        clip_norm: Optional[float] = None, clip_value: Optional[float] = None, schedule=None,
        validate: Optional[Callable[[Module], Dict[str, float]]] = None, validate_every: Optional[int] = None,
        early_stopping_patience: Optional[int] = None, restore_best: bool = True,
        monitor: str = "loss", maximize: bool = False, checkpoint_path=None, checkpoint_every: Optional[int] = None, resume: bool = False,
        callbacks: Sequence[Callable[[str, Dict[str, Any]], None]] = (), progress: bool = True,
        log_every: int = 1, unit: str = "tok", config: Optional[dict] = None,
        meta: Optional[dict] = None) -> History:
    """Train ``model`` and return its :class:`History` (see the module docstring).

    Parameters
    ----------
    model : the Module being trained (put in training mode; its mode is restored at the end).
    optimizer : has ``lr``, ``step()``, ``zero_grad()``, ``state_dict()``, ``load_state_dict()``.
    step_fn : ``step_fn(batch, ctx) -> (loss, n_units)``: forward and backward for one batch,
        *adding* gradients into the parameters' ``.grad`` (they are zeroed before the call).
        ``loss`` is a float (for the history), ``n_units`` how many tokens/samples it covered.
    batches : ``batches(epoch, rng) -> iterable of batches`` for one epoch; must depend only on
        its arguments, so the loop can rebuild an epoch on resume and skip the batches done.
    seed : the root of all randomness in the run (non-negative int).
    epochs, max_steps : stop after this many epochs / optimiser steps in total (counted across
        resumes). max_minutes : stop after this many minutes of this call. At least one is needed.
    clip_value : clip each gradient entry to [-clip_value, clip_value]; clip_norm : then scale
        all gradients together so their global L2 norm is at most clip_norm.
    schedule : object with ``lr_at(step) -> float`` (and ``config()``); ``optimizer.lr`` is set
        to ``lr_at(step)`` before each step, ``step`` counting the steps done before it. A schedule
        with ``follows = "time"`` (:class:`~rnnkit.optim.schedules.TimeCosineLR`) gets
        ``lr_at_fraction(f)`` instead, f the fraction of the ``max_minutes`` budget used when the
        step's gradients are ready (rank 0's clock on every rank); a resumed run's f starts where the
        checkpoint's ended and reaches 1 at the end of this call's budget. With ``max_steps`` or
        ``epochs`` as well, whichever ends the run first cuts the decay short where it is.
    validate : ``validate(model) -> {"loss": float, ...}``, run in eval mode every
        ``validate_every`` steps and at the end of every epoch.
    early_stopping_patience : stop after this many validations in a row without a better monitored metric.
    restore_best : with validation, end with the parameters of the best validation.
    monitor, maximize : the entry of ``validate``'s dict that decides the best validation and early
        stopping ("loss", lower is better, by default; e.g. ``monitor="bleu", maximize=True``).
    checkpoint_path, checkpoint_every, resume : see the module docstring. ``resume=True``
        continues from ``checkpoint_path`` if it exists, else starts afresh.
    callbacks : callables ``cb(event, info)`` for events "step", "validate", "epoch_end",
        "checkpoint" and "end"; ``info`` is a dict (``step``, ``epoch``, ``history``, ``model``,
        ``optimizer`` and the event's own entries). Raise :class:`StopTraining` to stop.
    progress : show a tqdm bar (or plain lines without tqdm); the notes after an interrupt (where the
        checkpoint is, how to resume) are printed to stderr either way. unit : what ``n_units`` counts.
    log_every : record a History entry every this many steps (averaged over them).
    config, meta : JSON-able dicts stored in checkpoints so an application can rebuild its model.
    """
    if not callable(step_fn):
        raise TypeError("step_fn: expected a function step_fn(batch, ctx) -> (loss, n_units)")
    if not callable(batches):
        raise TypeError("batches: expected a function batches(epoch, rng) -> iterable of batches; "
                        "for a fixed list use `lambda epoch, rng: data`")
    seed = check_count("seed", seed, 0)
    for name, v in (("epochs", epochs), ("max_steps", max_steps), ("validate_every", validate_every),
                    ("early_stopping_patience", early_stopping_patience), ("checkpoint_every", checkpoint_every)):
        check_optional_count(name, v, 1)
    check_count("log_every", log_every, 1)
    for name, v in (("max_minutes", max_minutes), ("clip_norm", clip_norm), ("clip_value", clip_value)):
        check_real(name, v, 0.0, low_open=True, allow_none=True)
    if epochs is None and max_steps is None and max_minutes is None:
        raise HyperparameterError("give at least one of epochs, max_steps or max_minutes, or training never ends")
    if not isinstance(monitor, str) or not monitor:
        raise HyperparameterError(f"monitor: expected the name of a validation metric such as 'loss', got {monitor!r}")
    if validate is None and (validate_every is not None or early_stopping_patience is not None):
        raise HyperparameterError("validate_every and early_stopping_patience need a validate function")
    if checkpoint_path is None and (checkpoint_every is not None or resume):
        raise HyperparameterError("checkpoint_every and resume need a checkpoint_path")
    if checkpoint_path is not None:
        check_writable(checkpoint_path, "checkpoint_path", example="run.ckpt.npz")
    if follows_time(schedule):
        if not callable(getattr(schedule, "lr_at_fraction", None)):
            raise TypeError("schedule: a schedule that follows time needs lr_at_fraction(f) -> float")
        if max_minutes is None:
            raise HyperparameterError("the schedule follows the time budget (TimeCosineLR): give max_minutes, "
                                      "or use a step schedule such as CosineAnnealingLR")
    elif schedule is not None and not callable(getattr(schedule, "lr_at", None)):
        raise TypeError("schedule: expected an object with lr_at(step) -> float (see rnnkit.optim.schedules)")
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks: expected callables cb(event, info), got {cb!r}")
    config, meta = dict(config or {}), dict(meta or {})
    _to_json(config, "config")  # fail now, not at the first checkpoint
    _to_json(meta, "meta")
    loop = _Loop(model, optimizer, step_fn, batches, seed=seed, epochs=epochs, max_steps=max_steps,
                 max_minutes=max_minutes, clip_norm=clip_norm, clip_value=clip_value, schedule=schedule,
                 validate=validate, validate_every=validate_every, patience=early_stopping_patience,
                 monitor=monitor, maximize=maximize, restore_best=restore_best, checkpoint_path=checkpoint_path,
                 checkpoint_every=checkpoint_every, callbacks=list(callbacks), log_every=log_every,
                 unit=unit, config=config, meta=meta)
    return loop.run(resume=resume, show=progress)


class _Loop:
    """One call of :func:`fit`: its settings and the training state a checkpoint captures."""

    def __init__(self, model, optimizer, step_fn, batches, *, seed, epochs, max_steps, max_minutes, clip_norm,
                 clip_value, schedule, validate, validate_every, patience, monitor, maximize, restore_best,
                 checkpoint_path, checkpoint_every, callbacks, log_every, unit, config, meta):
        self.model, self.optimizer, self.step_fn, self.batches = model, optimizer, step_fn, batches
        self.seed, self.epochs, self.max_steps, self.max_minutes = seed, epochs, max_steps, max_minutes
        self.clip_norm, self.clip_value, self.schedule = clip_norm, clip_value, schedule
        self.restore_best = restore_best
        self.checkpoint_path, self.checkpoint_every = checkpoint_path, checkpoint_every
        self.callbacks, self.log_every, self.unit = callbacks, log_every, unit
        self.config, self.meta = config, meta
        self.params = list(model.named_parameters())
        self.world = w = _distributed.world()
        if w.size > 1 and validate is not None and not _distributed.runs_on_every_rank(validate):
            # rank 0 validates; every rank takes the same decisions
            validate = (lambda f: lambda m: w.on_root(lambda: _to_json(dict(f(m)), "validate()"),
                                                      "validation"))(validate)
        self.agreed = _distributed.StepFlags()    # the stop flags every rank agreed at the last reduce
        # -- the state a checkpoint captures --
        self.ctx = StepContext(model=model, rng=np.random.default_rng([seed, 0] if w.size == 1 else [seed, 0, w.rank]))
        self.history = History(unit=unit)
        self.validation = Validation(validate, validate_every, patience, monitor, maximize)
        self.elapsed_before = 0.0
        self.fraction_before = 0.0   # of a time schedule's budget, used before this call (by resumed runs)
        self.fraction = 0.0          # ... and at the last step
        self.window = {"loss_wsum": 0.0, "units": 0, "loss_sum": 0.0, "steps": 0, "seconds": 0.0}
        # -- this call only --
        self.phase = "idle"  # "compute" / "update" while a step is half done
        self.stop_requested = False
        self.last_checkpoint_step: Optional[int] = None
        self.t_start = _clock()
        self.window_t0 = self.t_start

    # -- the run ----------------------------------------------------------
    def run(self, resume: bool, show: bool) -> History:
        if self.world.size > 1 and not _distributed.started():
            failed, _ = self.world.start_together(False)   # the ranks that failed before getting here
            if failed:
                raise _distributed.mark_collective(TrainingError(
                    f"rank{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))} of {self.world.size} "
                    "failed before training (the reason is on that rank's line); nothing was trained"))
            # a host with another copy of the input trained one model on two texts, or hung when the ranks'
            # epochs ended at different steps: the data's digest and the fitted facts must agree
            seen = json.dumps(_to_json({"data": self.meta.get("data_sha256"), "fitted": self.config.get("fitted")},
                                       "config"), sort_keys=True)
            if not self.world.same_everywhere(seen):
                raise _distributed.mark_collective(TrainingError(
                    f"the {self.world.size} ranks read different data (the digests of the input and of what was "
                    "learned from it differ): every host must see the same input files at the same paths; "
                    "nothing was trained"))
        if resume and os.path.exists(self.checkpoint_path):
            _resume.restore(self, load_checkpoint(self.checkpoint_path))
        if self.world.size > 1:   # every rank starts from rank 0's parameters and optimiser state
            self.world.bcast_arrays([p.data for _, p in self.params]
                                    + [a for arrays in self.optimizer.state.values() for a in arrays])
        self.progress = Progress(self.max_steps, initial=self.ctx.step, unit=self.unit,
                                 enabled=show and self.world.is_root)
        self.t_start = _clock()
        self.window_t0 = self.t_start - self.window["seconds"]
        self.deadline = None if self.max_minutes is None else self.t_start + 60.0 * self.max_minutes
        self.sigint = DeferredSigint(self.checkpoint_path is not None)
        try:
            with self.model.train_mode(), self.sigint:
                reason = self._train()
                self.history.stop_reason = reason
                if reason == "interrupted":  # printed here, never from the signal handler
                    name = self.sigint.signal_name          # None: the signal reached another rank of the job
                    again = ("Ctrl-C again" if name == "SIGINT" else "a signal again" if name is None
                             else f"{name} or Ctrl-C again")
                    self._note(f"interrupt: saving a checkpoint at step {self.ctx.step} ({again} to stop now)")
                if self.checkpoint_path is not None:
                    self._save_checkpoint()
            if reason == "interrupted":
                self._note_interrupt(saved=self.checkpoint_path is not None)
                raise _distributed.mark_collective(KeyboardInterrupt())   # agreed by every rank
        except KeyboardInterrupt:
            if self.history.stop_reason != "interrupted":  # raised by user code, not by the flag
                saved = False
                # (with several processes a save is collective: an interrupt raised on one rank keeps the last)
                if self.checkpoint_path is not None and self.phase == "idle" and self.world.size == 1:
                    self.history.stop_reason = "interrupted"
                    try:
                        self._save_checkpoint()
                        saved = True
                    except Exception as e:  # keep the interrupt; the previous checkpoint stays
                        self._note(f"could not save a checkpoint on interrupt: {e}")
                self._note_interrupt(saved)
            raise
        finally:
            self.progress.close()
        self._callback("end", reason=reason)
        if self.restore_best and self.validation.best_state is not None:
            self.model.load_state_dict(self.validation.best_state)
        self._sync_history()
        return self.history

    def _note(self, message: str) -> None:
        """A note the user must see after an interrupt: printed even with progress off (by rank 0)."""
        if self.world.is_root:
            self.progress.note(message, always=True)

    def _note_interrupt(self, saved: bool) -> None:
        if saved:
            self._note(f"interrupted at step {self.ctx.step}: checkpoint saved to {self.checkpoint_path}; "
                       "run it again with resume (--resume on the command line) to continue")
        elif self.checkpoint_path is not None:
            self._note(f"interrupted in the middle of step {self.ctx.step + 1}: no checkpoint written; "
                       f"{self.checkpoint_path} is from step {self.last_checkpoint_step}")

    def _train(self) -> str:
        ctx = self.ctx
        self._validate_if_due()  # a resumed run may stop right after a step whose validation was due
        while True:
            reason = self._stop_reason()
            if reason is None and self.epochs is not None and ctx.epoch >= self.epochs:
                reason = "epochs"
            if reason is not None:
                return reason
            data = self.batches(ctx.epoch, np.random.default_rng([self.seed, 1, ctx.epoch]))
            if self.epochs is not None and hasattr(data, "__len__"):
                total = ctx.step - ctx.batch_index + len(data) * (self.epochs - ctx.epoch)
                self.progress.set_total(total if self.max_steps is None else min(total, self.max_steps))
            skip, seen = ctx.batch_index, 0
            for batch in data:
                seen += 1
                if seen <= skip:
                    continue
                reason = self._stop_reason()
                if reason is not None:
                    return reason
                self._step(batch)
                self._after_step()
            if seen < skip:
                raise TrainingError(
                    f"the checkpoint is at batch {skip} of epoch {ctx.epoch}, but batches() now gives only "
                    f"{seen} for that epoch: the data or the seed changed since the checkpoint. Resume with "
                    "the same data and seed, or start afresh without resume")
            if seen == 0:
                raise TrainingError(f"batches(epoch={ctx.epoch}, rng) gave no batches; "
                                    "check the data and the batch size")
            self._end_epoch()

    def _stop_reason(self) -> Optional[str]:
        if self.world.size > 1:   # what every rank agreed at the last step's reduce, so all stop together
            return ("interrupted" if self.agreed.stop else "callback" if self.stop_requested else
                    "max_steps" if self.max_steps is not None and self.ctx.step >= self.max_steps else
                    "early_stopping" if self.validation.exhausted else
                    "max_minutes" if self.agreed.deadline else None)
        if self.sigint.requested:
            return "interrupted"
        if self.stop_requested:
            return "callback"
        if self.max_steps is not None and self.ctx.step >= self.max_steps:
            return "max_steps"
        if self.validation.exhausted:
            return "early_stopping"
        if self.deadline is not None and _clock() >= self.deadline:
            return "max_minutes"
        return None

    # -- one step ---------------------------------------------------------
    def _step(self, batch) -> None:
        ctx, opt = self.ctx, self.optimizer
        where = f"step {ctx.step + 1} (epoch {ctx.epoch}, batch {ctx.batch_index})"
        self.phase = "compute"
        self.model.zero_grad()
        opt.zero_grad()
        if self.world.size > 1:
            loss, n_units = self._step_shared(batch, where)
        else:
            loss, n_units = self._call_step_fn(batch)
        if not math.isfinite(loss):
            self._diverged(where, f"the loss is {loss}")
        bad = first_nonfinite((name, p.grad) for name, p in self.params)   # host or device gradients
        if bad is not None:
            self._diverged(where, f"the gradient of {bad[0]!r} contains {bad[1]}")
        if self.clip_value is not None or self.clip_norm is not None:
            from ..optim.clip import clip_grad_norm, clip_grad_value
            grads = [p for _, p in self.params]
            if self.clip_value is not None:
                clip_grad_value(grads, self.clip_value)
            if self.clip_norm is not None:
                clip_grad_norm(grads, self.clip_norm)
        if follows_time(self.schedule):
            self.fraction = self.agreed.progress if self.world.size > 1 else self._budget_fraction()
            opt.lr = float(self.schedule.lr_at_fraction(self.fraction))
        elif self.schedule is not None:
            opt.lr = float(self.schedule.lr_at(ctx.step))
        lr = float(opt.lr)
        self.phase = "update"
        opt.step()
        ctx.step += 1
        ctx.batch_index += 1
        self._record(loss, n_units, lr)
        self.phase = "idle"

    def _call_step_fn(self, batch) -> Tuple[float, int]:
        out = self.step_fn(batch, self.ctx)
        try:
            loss, n_units = out
            return float(loss), int(n_units)
        except (TypeError, ValueError):
            raise TypeError(f"step_fn must return (loss: float, n_units: int), got {out!r}") from None

    def _step_shared(self, batch, where: str) -> Tuple[float, int]:
        """This rank's share of the step, then the one all-reduce (see :mod:`rnnkit.distributed`)."""
        error = None
        try:
            loss, n_units = self._call_step_fn(batch) if batch is not None else (0.0, 0)
        except Exception as e:          # noqa: BLE001 (every rank raises it after the reduce)
            error, loss, n_units = e, 0.0, 0
            self.model.zero_grad()
        mine = _distributed.StepFlags(error is not None, self.sigint.requested,
                                      self.deadline is not None and _clock() >= self.deadline,
                                      self._budget_fraction() if follows_time(self.schedule) else 0.0)
        loss, n_units, self.agreed = self.world.reduce_step([p.grad for _, p in self.params], loss, n_units, mine)
        if self.agreed.failed:
            self.world.raise_failure(error, where)
        return loss, n_units

    def _budget_fraction(self) -> float:
        """The fraction of a time schedule's budget used: what resumed runs used before, plus this call's
        share of the rest, which ends with this call's ``max_minutes``."""
        f = (_clock() - self.t_start) / (60.0 * self.max_minutes)
        return min(1.0, self.fraction_before + (1.0 - self.fraction_before) * f)

    def _diverged(self, where: str, what: str):
        ck = ""
        if self.checkpoint_path is not None:
            ck = (f"; the checkpoint {self.checkpoint_path} is from step {self.last_checkpoint_step}"
                  if self.last_checkpoint_step is not None else "; no checkpoint was written")
        # with several processes every rank sees the same reduced loss and gradients, so all raise this
        raise _distributed.mark_collective(TrainingError(
            f"training diverged at {where}: {what}. The model keeps the parameters from before this step{ck}. "
            "Lower the learning rate, set clip_norm, or check the data for NaN/Inf"))

    def _record(self, loss: float, n_units: int, lr: float) -> None:
        w, step = self.window, self.ctx.step
        w["loss_wsum"] += loss * n_units
        w["units"] += n_units
        w["loss_sum"] += loss
        w["steps"] += 1
        if step % self.log_every == 0:
            now = _clock()
            mean = w["loss_wsum"] / w["units"] if w["units"] > 0 else w["loss_sum"] / w["steps"]
            self.history.train.append((step, mean))
            self.history.lr.append((step, lr))
            self.history.throughput.append((step, w["units"] / max(now - self.window_t0, 1e-9)))
            self.window = {"loss_wsum": 0.0, "units": 0, "loss_sum": 0.0, "steps": 0, "seconds": 0.0}
            self.window_t0 = now
        self.progress.update(step, loss, n_units)
        self._step_info = {"loss": loss, "units": n_units, "lr": lr}

    def _after_step(self) -> None:
        self._callback("step", **self._step_info)
        self._validate_if_due()
        if self.checkpoint_every is not None and self.ctx.step % self.checkpoint_every == 0:
            self._save_checkpoint()

    def _end_epoch(self) -> None:
        ctx = self.ctx
        if self.validation.due_at_epoch_end(ctx.step):
            self._validate()
        finished = ctx.epoch
        self.history.epochs.append((finished, ctx.step))
        ctx.epoch += 1
        ctx.batch_index = 0
        ctx.carry = {}
        if self.checkpoint_path is not None and self.checkpoint_every is None:
            self._save_checkpoint()
        self._callback("epoch_end", finished_epoch=finished)

    # -- validation -------------------------------------------------------
    def _validate_if_due(self) -> None:
        if self.validation.due(self.ctx.step):
            self._validate()

    def _validate(self) -> None:
        s = self.ctx.step
        metrics, improved = self.validation.run(self.model, s, self.history)
        self.progress.note(validation_line(s, metrics, improved))
        self._callback("validate", metrics=metrics, improved=improved)

    # -- checkpoints ------------------------------------------------------
    def _elapsed(self) -> float:
        return self.elapsed_before + (_clock() - self.t_start)

    def _sync_history(self) -> None:
        self.history.steps = self.ctx.step
        self.history.elapsed_s = self._elapsed()

    def _save_checkpoint(self) -> None:
        bad = first_nonfinite((name, p.data) for name, p in self.params)
        if bad is not None:   # never replace a good checkpoint with a broken model (the same error on every rank)
            raise _distributed.mark_collective(TrainingError(
                f"parameter {bad[0]!r} is not finite at step {self.ctx.step}; the checkpoint "
                f"{self.checkpoint_path} was not overwritten (it is from step "
                f"{self.last_checkpoint_step}). Lower the learning rate or set clip_norm"))
        self._sync_history()
        ranks = self.world.gather_rank_states(self.ctx.rng, self.ctx.carry)     # None on one process
        ck = _resume.capture(self, _clock(), ranks=ranks)
        self.world.on_root(lambda: save_checkpoint(self.checkpoint_path, ck), "saving the checkpoint")
        self.last_checkpoint_step = self.ctx.step
        self._callback("checkpoint", path=str(self.checkpoint_path))

    def _callback(self, event: str, **info) -> None:
        if not self.callbacks:
            return
        info.update(step=self.ctx.step, epoch=self.ctx.epoch, history=self.history, model=self.model,
                    optimizer=self.optimizer)
        for cb in self.callbacks:
            try:
                cb(event, info)
            except StopTraining:
                self.stop_requested = True
