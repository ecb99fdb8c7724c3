r"""``compare``: the same task, budget and parameter count for every cell, several seeds, one table.

For each cell c and seed s a :class:`~.model.SeqModel` with the hidden size that
matches the parameter budget is trained with Adam (AdamW with ``weight_decay``) by :func:`rnnkit.train.fit`
for the same ``max_steps`` (or ``max_minutes``), on fresh batches drawn from
``Generator([s, 1, epoch])``. At step 0, every ``eval_every`` steps (and at
:func:`~rnnkit.train.fit`'s epoch ends, every 100 batches) and at its last step
it is scored on a fixed validation batch (``Generator([VALID_SEED, 2])``), which
gives the learning curves against steps and against training seconds
(validation time excluded); no step is scored twice. At the end the model as
trained (its last parameters, not the best validation's: the curve's last point
is the same model) is scored on a test batch from another seed
(``Generator([TEST_SEED, 2])``), unseen in training. Settings whose data sets
and training step would not fit in the available memory are refused before
anything is drawn (:func:`memory_bytes`). The table reports, per cell, the mean and the spread
(min..max) over seeds of the final test loss, the seconds per training step and
the parameter count. The gradient diagnostics (:mod:`rnnkit.nn.diagnostics`) of
the first seed's model, at initialisation and after training, go beside them.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..checks import check_choice, check_count, check_optional_count, check_optional_real, check_real
from ..errors import HyperparameterError
from ..io.atomic import check_outputs, write_json
from ..nn.shapes import CELL_MODES, GATES, linear_shapes, recurrent_shapes
from ..optim.adam import adam_for, check_weight_decay
from ..runs import check_memory
from ..train import fit
from ..train.progress import say
from .model import SeqModel, matched_hidden_sizes, parameter_count
from .tasks import make_task

__all__ = ["compare", "format_table", "memory_bytes", "CELLS", "VALID_SEED", "TEST_SEED"]

CELLS = tuple(CELL_MODES)              # lstm, gru, rnn (tanh)
VALID_SEED, TEST_SEED = 1_000_003, 2_000_003
_EPOCH = 100                           # batches per "epoch" of the endless generator (only for fit's bookkeeping)
VALID_SIZE, DIAG_SIZE = 500, 100       # sequences of the validation and diagnostics batches (at most --test-size)
# the flags a memory refusal suggests, in the order of the CLI's own out-of-memory line (rnnkit.cli.main.SIZE_FLAGS)
SIZE_FLAGS = ("--batch-size", "--seq-len", "--test-size", "--params")
_STEP_BYTES = 2560                     # step-by-step caches: their Python objects per step (measured about 2.2 KB)


def _check(cells, params, seeds, batch_size, learning_rate, weight_decay, clip_norm, max_steps, max_minutes,
           eval_every, test_size) -> List[str]:
    cells = [cells] if isinstance(cells, str) else list(cells)
    if not cells:
        raise HyperparameterError("cells (--cells) must name at least one cell: lstm, gru, rnn")
    for c in cells:
        check_choice("cells (--cells)", c, CELLS)
    if len(set(cells)) != len(cells):
        raise HyperparameterError(f"cells (--cells) names a cell twice: {' '.join(cells)}")
    check_count("params (--params)", params, 1)          # the range a budget can match: matched_hidden_sizes
    if check_count("seeds (--seeds)", seeds, 1) > 100:
        raise HyperparameterError(f"seeds (--seeds) must be <= 100, got {seeds}")
    check_count("batch_size (--batch-size)", batch_size, 1)
    check_real("learning_rate (--learning-rate)", learning_rate, low_open=True)
    check_weight_decay(weight_decay, learning_rate, "weight_decay (--weight-decay)", "learning_rate (--learning-rate)")
    check_optional_real("clip_norm (--clip-norm)", clip_norm, low_open=True)
    check_optional_count("max_steps (--max-steps)", max_steps, 1)
    check_optional_real("max_minutes (--max-minutes)", max_minutes, low_open=True)
    if max_steps is None and max_minutes is None:
        raise HyperparameterError("give the budget: --max-steps or --max-minutes (the same for every cell)")
    check_count("eval_every (--eval-every)", eval_every, 1)
    check_count("test_size (--test-size)", test_size, 1)
    return cells


def memory_bytes(task, sizes: Dict[str, int], batch_size: int, test_size: int, compiled: Optional[bool] = None) -> int:
    """Bytes a comparison holds at its peak beside the parameters, computed before anything is drawn or built.

    The validation, test and diagnostics batches (kept for the whole run, see :meth:`Task.batch_bytes`), plus the
    largest of, for every cell (G gates, H units, D inputs, float32 values per sequence step):

    - one training step: the batch drawn beside the last one, and 4 (G + 2) H + 2 D values on the NumPy reference
      path (the forward caches, the gate and state gradients, dx) or (G + 2) H on the compiled one (its gate and
      state caches);
    - one evaluation of the test or the validation batch: 3 (G + 1) H values on the NumPy path (the input
      projections, each step's cache, the outputs and previous states), H (the outputs) compiled;
    - the gradient diagnostics, step by step on either path: an evaluation of their batch, then (G + 5) H values
      in step-by-step caches and about ``_STEP_BYTES`` of Python objects per step;

    with the read-out's logits, probabilities and gradients where every step is scored (copy). ``compiled``:
    whether the numba kernels run (None: as :func:`rnnkit.kernels.backend.resolve_backend` says). The NumPy
    figures are the reference scan's arrays measured with tracemalloc (1.0-1.3x its peak); the compiled ones
    count what the kernels must keep, near their peak (1.1-1.15x at T = 150, where the diagnostics' Python
    objects dominate; 0.7x at T = 12,000 against the resident size).
    """
    if compiled is None:
        from ..kernels.backend import resolve_backend
        compiled = resolve_backend() == "numba"
    L, D, O = task.length, task.input_size, task.output_size
    n_valid, n_diag = min(test_size, VALID_SIZE), min(test_size, DIAG_SIZE)
    data = sum(task.batch_bytes(n) for n in (n_valid, test_size, n_diag))
    logits = 3 * O if task.loss == "ce_all" else 0
    peak = task.draw_bytes(test_size) - task.batch_bytes(test_size)      # drawing the test batch
    for cell, H in sizes.items():
        G = GATES[CELL_MODES[cell]]
        step_values = (G + 2) * H if compiled else 4 * (G + 2) * H + 2 * D
        eval_values = H if compiled else 3 * (G + 1) * H

        def evaluation(N):
            return 4 * L * N * (eval_values + logits)

        train = task.draw_bytes(batch_size) + task.batch_bytes(batch_size) + 4 * L * batch_size * (step_values + logits)
        diagnostics = max(evaluation(n_diag), 4 * L * n_diag * (G + 5) * H + _STEP_BYTES * L)
        peak = max(peak, train, evaluation(test_size), evaluation(n_valid), diagnostics)
    return data + peak + (0 if compiled else _STEP_BYTES * L)


def _check_memory(task, sizes: Dict[str, int], counts: Dict[str, int], *, seq_len: int, batch_size: int,
                  test_size: int, params: int) -> None:
    """Refuse, before any data is drawn or any model built, a comparison that would not fit in memory.

    The refusal is the applications' own (:func:`rnnkit.runs.check_memory`: the parameters with their gradients and
    Adam's moments, plus the extra bytes, against :func:`rnnkit.runs.available_memory`), given the largest
    cell's parameters and :func:`memory_bytes` (with two more copies of the parameters: the first seed's
    untrained model kept for the diagnostics and the best validation's state).
    """
    cell = max(counts, key=counts.get)
    shapes = recurrent_shapes("rnn.", CELL_MODES[cell], task.input_size, sizes[cell])
    shapes.update(linear_shapes("head.", sizes[cell], task.output_size))
    extra = memory_bytes(task, sizes, batch_size, test_size) + 2 * 4 * counts[cell]
    check_memory(shapes, np.float32, extra, size_flags=SIZE_FLAGS,
                 what=f"--batch-size {batch_size}, --seq-len {seq_len}, --test-size {test_size} and --params "
                      f"{params} (the validation and test sequences and one training step)")


def _train_one(task, cell, H, seed, *, batch_size, learning_rate, weight_decay, clip_norm, max_steps, max_minutes,
               eval_every, valid, progress) -> Dict[str, Any]:
    model = SeqModel(task, cell, H, rng=np.random.default_rng([seed, 0]))
    optimizer = adam_for(model, learning_rate, weight_decay)
    step_fn = lambda batch, ctx: (model.loss(*batch), batch[0].shape[1])
    batches = lambda epoch, rng: (task.draw(rng, batch_size) for _ in range(_EPOCH))
    spent = {"valid": 0.0}
    curve: List[List[float]] = []
    t0 = time.perf_counter()

    def validate(m):
        v0 = time.perf_counter()
        out = m.evaluate(*valid)
        spent["valid"] += time.perf_counter() - v0
        return out

    def on_event(event, info):
        if event == "validate":
            curve.append([info["step"], time.perf_counter() - t0 - spent["valid"], info["metrics"]["loss"]])

    start = validate(model)
    curve.append([0, 0.0, start["loss"]])
    history = fit(model, optimizer, step_fn, batches, seed=seed, max_steps=max_steps, max_minutes=max_minutes,
                  clip_norm=clip_norm, validate=validate, validate_every=eval_every, restore_best=False,
                  callbacks=[on_event], progress=False, log_every=max(1, eval_every // 4), unit="seq")
    train_s = time.perf_counter() - t0 - spent["valid"]
    if curve[-1][0] != history.steps:   # the last step was not validated (a budget off the --eval-every grid)
        curve.append([history.steps, train_s, validate(model)["loss"]])
    if progress:
        say(f"compare: {task.name} T={task.T} {cell} seed {seed}: {history.steps} steps in {train_s:.1f} s, "
            f"validation loss {curve[-1][2]:.4f}")
    return {"model": model, "curve": curve, "steps": history.steps, "train_seconds": train_s,
            "train_loss": [list(p) for p in history.train]}


def compare(task: str = "adding", *, seq_len: int = 100, cells: Sequence[str] = CELLS, params: int = 5000,
            seeds: int = 3, batch_size: int = 32, learning_rate: float = 1e-2, weight_decay: float = 0.0,
            clip_norm: Optional[float] = 1.0,
            max_steps: Optional[int] = 1000, max_minutes: Optional[float] = None, eval_every: int = 50,
            test_size: int = 1000, out: Optional[str] = None, plot: Optional[str] = None,
            grad_plot: Optional[str] = None, progress: bool = True) -> Dict[str, Any]:
    """Train every cell in ``cells`` on ``task`` at length ``seq_len`` and compare them (module docstring).

    ``params`` is the parameter budget each cell's hidden size is matched to;
    ``seeds`` runs per cell (seeds 0..seeds-1); ``max_steps`` / ``max_minutes``
    the budget of every run. ``out`` (JSON), ``plot`` (learning curves PNG) and
    ``grad_plot`` (gradient norms and gate saturation PNG) are checked before any
    training, and settings whose data sets and training step would not fit in the
    available memory are refused (:class:`HyperparameterError`, see :func:`memory_bytes`)
    before any data is drawn. Each run's curve ends with a validation of its last step,
    the model the test scores. Returns the dict written to ``out``.
    """
    cells = _check(cells, params, seeds, batch_size, learning_rate, weight_decay, clip_norm, max_steps, max_minutes,
                   eval_every, test_size)
    spec = make_task(task, seq_len)
    check_outputs({"--out": out, "--plot": plot, "--grad-plot": grad_plot},
                  examples={"--out": "compare.json", "--plot": "curves.png", "--grad-plot": "grads.png"},
                  owns={"--out": (b'{\n  "task": ',)})         # the report below begins so
    sizes = matched_hidden_sizes(cells, spec.input_size, spec.output_size, params)
    counts = {c: parameter_count(c, spec.input_size, sizes[c], spec.output_size) for c in cells}
    _check_memory(spec, sizes, counts, seq_len=seq_len, batch_size=batch_size, test_size=test_size, params=params)
    if progress:
        say(f"compare: {spec.name}, T={spec.T}, baseline {spec.baseline:.4f}: {spec.baseline_what}; "
            + ", ".join(f"{c} H={sizes[c]} ({counts[c]:,} parameters)" for c in cells))
    valid = spec.test_batch(VALID_SEED, min(test_size, VALID_SIZE))
    test = spec.test_batch(TEST_SEED, test_size)
    diag_x, diag_y = spec.test_batch(TEST_SEED + 1, min(test_size, DIAG_SIZE))
    results: Dict[str, Any] = {}
    for cell in cells:
        runs = []
        for seed in range(seeds):
            init = SeqModel(spec, cell, sizes[cell], rng=np.random.default_rng([seed, 0]))
            diag0 = (init.gradient_norms(diag_x, diag_y), init.saturation(diag_x)) if seed == 0 else None
            run = _train_one(spec, cell, sizes[cell], seed, batch_size=batch_size, learning_rate=learning_rate,
                             weight_decay=weight_decay, clip_norm=clip_norm, max_steps=max_steps, max_minutes=max_minutes,
                             eval_every=eval_every, valid=valid, progress=progress)
            model = run.pop("model")
            run["seed"] = seed
            run["test"] = model.evaluate(*test)
            if diag0 is not None:
                run["diagnostics"] = _diagnostics(diag0, (model.gradient_norms(diag_x, diag_y),
                                                          model.saturation(diag_x)))
            runs.append(run)
        finals = np.array([r["test"]["loss"] for r in runs])
        per_step = np.array([r["train_seconds"] / max(r["steps"], 1) for r in runs])
        summary = {"hidden_size": sizes[cell], "parameters": counts[cell], "test_loss_mean": float(finals.mean()),
                   "test_loss_min": float(finals.min()), "test_loss_max": float(finals.max()),
                   "test_loss_std": float(finals.std()), "seconds_per_step": float(per_step.mean()),
                   "steps_mean": float(np.mean([r["steps"] for r in runs]))}
        if "accuracy" in runs[0]["test"]:
            summary["test_accuracy_mean"] = float(np.mean([r["test"]["accuracy"] for r in runs]))
        results[cell] = {"summary": summary, "runs": runs}
    report = {"task": spec.name, "seq_len": spec.T, "metric": spec.metric, "baseline": spec.baseline,
              "baseline_what": spec.baseline_what, "params_budget": params, "seeds": seeds,
              "budget": {"max_steps": max_steps, "max_minutes": max_minutes}, "batch_size": batch_size,
              "learning_rate": learning_rate, "weight_decay": weight_decay, "clip_norm": clip_norm, "test_size": test_size,
              "split": f"training batches Generator([seed, 1, epoch]); validation Generator([{VALID_SEED}, 2]); "
                       f"test Generator([{TEST_SEED}, 2])", "cells": results}
    if out is not None:
        write_json(out, report, what="--out")
    if plot is not None:
        from .plots import plot_curves
        plot_curves(plot, report)
    if grad_plot is not None:
        from .plots import plot_gradients
        plot_gradients(grad_plot, report)
    return report


def _diagnostics(before, after) -> Dict[str, Any]:
    out = {}
    for when, (norms, sat) in (("init", before), ("trained", after)):
        out[f"grad_norm_{when}"] = [float(v) for v in norms]
        if sat is not None:
            out[f"saturation_{when}"] = {"high": sat["high"].tolist(), "low": sat["low"].tolist()}
    return out


def format_table(report: Dict[str, Any]) -> str:
    """The comparison as a plain-text table (one row per cell)."""
    name = f"{report['task']} T={report['seq_len']}"
    b = report["budget"]
    budget = f"{b['max_steps']} steps" if b["max_steps"] else f"{b['max_minutes']} min"
    lines = [f"{name}: test {report['metric']} over {report['seeds']} seed(s), budget {budget} "
             f"(baseline {report['baseline']:.4f}: {report['baseline_what']})",
             f"{'cell':<6} {'H':>5} {'params':>8} {'mean':>9} {'min':>9} {'max':>9} {'acc':>6} {'ms/step':>8}"]
    for cell, r in report["cells"].items():
        s = r["summary"]
        acc = f"{s['test_accuracy_mean']:.3f}" if "test_accuracy_mean" in s else "-"
        lines.append(f"{cell:<6} {s['hidden_size']:>5} {s['parameters']:>8,} {s['test_loss_mean']:>9.4f} "
                     f"{s['test_loss_min']:>9.4f} {s['test_loss_max']:>9.4f} {acc:>6} "
                     f"{1000 * s['seconds_per_step']:>8.2f}")
    return "\n".join(lines)
