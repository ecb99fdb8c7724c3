r"""What :func:`rnnkit.train.fit` needs for a character model: batches, the step, evaluation.

Training is stateful truncated BPTT (see :mod:`rnnkit.charlm.data`): the state a
chunk ends in is kept in ``ctx.carry`` and starts the next chunk of the same
streams; the loop empties ``carry`` at every epoch, when the streams restart,
and checkpoints it, so a resumed run continues with the exact state.

Evaluation runs the same streams forward only and reports

.. math::
    \text{loss} = -\frac{1}{M}\sum_{i=1}^{M} \log p(c_i \mid c_{<i}) \ \text{nats/char},\quad
    \text{bits/char} = \text{loss} / \ln 2,\quad \text{perplexity} = e^{\text{loss}}.
"""

from __future__ import annotations

import math
from typing import Callable, Dict

import numpy as np

from ..distributed import SINGLE, mark_collective, world
from ..errors import HyperparameterError
from .data import Chunk, Chunks, stream_matrix
from .model import CharLM

__all__ = ["make_batches", "make_step_fn", "evaluate_ids", "metrics_from_loss"]


def make_batches(ids: np.ndarray, batch: int, seq_len: int) -> Callable:
    """``batches(epoch, rng)`` for ``fit``: the same chunk sequence every epoch (char-rnn's order).

    In a data-parallel run (:mod:`rnnkit.distributed`) this rank keeps its contiguous share of
    the ``batch`` streams (columns): K processes step through the same chunks as one process.
    """
    x, y = stream_matrix(ids, batch, "training text")                   # (L, N), (L, N)
    w = world()
    if w.size > 1:
        if batch < w.size:
            raise mark_collective(HyperparameterError(
                f"batch_size (--batch-size) {batch} is smaller than the {w.size} processes, and each needs at "
                f"least one stream; use --batch-size {w.size} or more"))
        x, y = np.ascontiguousarray(x[:, w.part(batch)]), np.ascontiguousarray(y[:, w.part(batch)])  # (L, N_r)
    chunks = Chunks(x, y, seq_len)
    return lambda epoch, rng: chunks


def make_step_fn(model: CharLM) -> Callable:
    """``step_fn(chunk, ctx) -> (loss, n_chars)``: one chunk forward and backward from the carried state."""

    def step_fn(chunk: Chunk, ctx):
        state = model.state_from_arrays(ctx.carry) if ctx.carry else None   # None: a new epoch
        loss, state_n = model.loss(chunk.x, chunk.y, state, ctx.rng)
        ctx.carry = model.state_arrays(state_n)
        return loss, chunk.x.size

    return step_fn


def metrics_from_loss(loss: float) -> Dict[str, float]:
    return {"loss": float(loss), "bits_per_char": float(loss / math.log(2)),
            "perplexity": float(math.exp(min(loss, 700.0)))}


def evaluate_ids(model: CharLM, ids: np.ndarray, batch: int = 1, seq_len: int = 100,
                 shared: bool = False) -> Dict[str, float]:
    """Loss, bits/char and perplexity of predicting ``ids[1:]``, with the state carried across chunks.

    With ``batch=1`` this is exactly one pass over the whole text (every
    character predicted from everything before it), whatever ``seq_len`` is.
    With ``batch`` N the text runs as N contiguous streams, each starting from
    a zero state: N times fewer sequential steps, at the price of N cold starts
    (and up to N-1 trailing characters left out).

    ``shared=True`` in a data-parallel run: every rank must call it; each runs
    its contiguous share of the N streams and the sums are added across the
    ranks (:meth:`~rnnkit.distributed.World.sum_parts`), so K ranks validate
    about K times faster than rank 0 alone, with the same streams and result.
    """
    w = world() if shared else SINGLE
    x, y = stream_matrix(ids, batch, "evaluation text")                 # (L, N), (L, N)
    total, count, error = 0.0, 0, None
    try:
        cols = w.part(y.shape[1])
        x, y = x[:, cols], y[:, cols]                                     # (L, N_r)
        state = None
        with model.eval_mode():
            for chunk in (Chunks(x, y, seq_len) if y.size else ()):
                nll, state = model.nll(chunk.x, chunk.y, state)
                total += nll
        count = int(y.size)
    except Exception as e:       # noqa: BLE001 (every rank raises it, see sum_parts)
        if w.size == 1:
            raise
        error = e
    total, count = w.sum_parts([total, count], error, "validation")
    out = metrics_from_loss(total / count)
    out["chars"] = int(round(count))
    return out
