r"""Synthetic long-range tasks, generated from a seed, each with its exact trivial baseline.

Every task draws batches ``(x, y)`` with ``x`` (T', N, D) float32 and the loss
and metric of its own kind:

- **adding** (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015's form):
  two channels, :math:`u_t \sim U[0, 1]` and a marker that is 1 at one step of the
  first half and one of the second half; the target is the sum of the two marked
  values, read at the last step; loss MSE. Predicting the constant 1 (the mean)
  gives :math:`E[(u_a + u_b - 1)^2] = 2 \cdot \frac{1}{12} = 1/6 \approx 0.167`.
- **copy** (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016's form): S symbols
  from an alphabet of K, then T blanks, a delimiter, S - 1 more blanks; the target
  is blank everywhere except the last S steps, which must repeat the S symbols;
  loss mean cross-entropy per step. A memoryless model (blank, then the uniform
  guess over K for the last S steps) scores :math:`S \log K / (T + 2S)`.
- **temporal order** (Hochreiter & Schmidhuber 1997, task 6a): T random distractor
  symbols out of 4, with X or Y at one step in [0.1T, 0.2T) and one in [0.5T, 0.6T);
  the class (XX, XY, YX, YY) is read at the last step; loss cross-entropy.
  Guessing gives :math:`\log 4 \approx 1.386` (accuracy 0.25).

Training batches and the held-out test batch come from different seeds
(``Generator([seed, 1, ...])`` for training, ``Generator([seed, 2])`` for the
test), so the test sequences are unseen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

from ..checks import check_choice, check_count
from ..errors import HyperparameterError

__all__ = ["Task", "TASKS", "make_task", "adding_batch", "copy_batch", "temporal_order_batch"]

COPY_SYMBOLS, COPY_LENGTH = 8, 10        # K and S of the copy task
ORDER_DISTRACTORS = 4                    # a, b, c, d; then X, Y


def adding_batch(rng: np.random.Generator, T: int, N: int) -> Tuple[np.ndarray, np.ndarray]:
    """x (T, N, 2): values and markers; y (N, 1): the sum of the two marked values."""
    values = rng.uniform(0.0, 1.0, (T, N)).astype(np.float32)                   # (T, N)
    half = T // 2
    a = rng.integers(0, half, N)                                                # (N,) first half
    b = rng.integers(half, T, N)                                                # (N,) second half
    marks = np.zeros((T, N), np.float32)
    cols = np.arange(N)
    marks[a, cols] = 1.0
    marks[b, cols] = 1.0
    y = (values[a, cols] + values[b, cols])[:, None]                            # (N, 1)
    return np.stack([values, marks], axis=2), y.astype(np.float32)


def copy_batch(rng: np.random.Generator, T: int, N: int, K: int = COPY_SYMBOLS,
               S: int = COPY_LENGTH) -> Tuple[np.ndarray, np.ndarray]:
    """x (T+2S, N, K+2) one-hot (blank K, delimiter K+1); y (T+2S, N) ids."""
    L = T + 2 * S
    seq = rng.integers(0, K, (S, N))                                            # (S, N)
    ids = np.full((L, N), K)                                                    # blanks
    ids[:S] = seq
    ids[T + S] = K + 1                                                          # "now repeat"
    y = np.full((L, N), K)
    y[L - S:] = seq
    return np.eye(K + 2, dtype=np.float32)[ids], y                              # (L, N, K+2)


def temporal_order_batch(rng: np.random.Generator, T: int, N: int) -> Tuple[np.ndarray, np.ndarray]:
    """x (T, N, 6) one-hot (a b c d X Y); y (N,) class 2*[first is Y] + [second is Y]."""
    ids = rng.integers(0, ORDER_DISTRACTORS, (T, N))                            # (T, N)
    lo1, hi1 = int(0.1 * T), max(int(0.2 * T), int(0.1 * T) + 1)
    lo2, hi2 = int(0.5 * T), max(int(0.6 * T), int(0.5 * T) + 1)
    p1, p2 = rng.integers(lo1, hi1, N), rng.integers(lo2, hi2, N)               # (N,)
    s1, s2 = rng.integers(0, 2, N), rng.integers(0, 2, N)                       # 0 = X, 1 = Y
    cols = np.arange(N)
    ids[p1, cols] = ORDER_DISTRACTORS + s1
    ids[p2, cols] = ORDER_DISTRACTORS + s2
    return np.eye(ORDER_DISTRACTORS + 2, dtype=np.float32)[ids], 2 * s1 + s2


@dataclass(frozen=True)
class Task:
    """A task at one length: its generator, input size, output size, loss kind and exact baseline."""

    name: str
    T: int
    input_size: int
    output_size: int
    loss: str                      # "mse_last", "ce_all" or "ce_last"
    baseline: float                # the trivial model's expected loss (see the module docstring)
    baseline_what: str
    draw: Callable[[np.random.Generator, int], Tuple[np.ndarray, np.ndarray]]

    @property
    def metric(self) -> str:
        return "MSE" if self.loss == "mse_last" else "cross-entropy (nats)"

    @property
    def length(self) -> int:
        """Steps of one input sequence: T, or T + 2S for copy (the symbols, the delay, the recall)."""
        return self.T + 2 * COPY_LENGTH if self.name == "copy" else self.T

    def batch_bytes(self, N: int) -> int:
        """Bytes of one batch of ``N`` from :attr:`draw`, computed without drawing it: x (L, N, D) float32, and
        y (the copy task's int64 id per step, else one value per sequence)."""
        per_step = 4 * self.input_size + (8 if self.name == "copy" else 0)
        return self.length * N * per_step + 8 * N

    def draw_bytes(self, N: int) -> int:
        """The most memory drawing a batch of ``N`` takes: the batch and what it is built from (int64 ids, or the
        adding task's two float32 channels before they are stacked)."""
        return self.batch_bytes(N) + 8 * self.length * N

    def test_batch(self, seed: int, N: int) -> Tuple[np.ndarray, np.ndarray]:
        """The held-out batch: drawn from ``Generator([seed, 2])``, never from the training stream."""
        return self.draw(np.random.default_rng([seed, 2]), N)


def _adding(T):
    return Task("adding", T, 2, 1, "mse_last", 1.0 / 6.0, "predict 1 (the mean of the sum)",
                lambda rng, N: adding_batch(rng, T, N))


def _copy(T):
    K, S = COPY_SYMBOLS, COPY_LENGTH
    return Task("copy", T, K + 2, K + 2, "ce_all", S * math.log(K) / (T + 2 * S),
                f"memoryless: blanks, then uniform over the {K} symbols",
                lambda rng, N: copy_batch(rng, T, N))


def _order(T):
    return Task("temporal_order", T, ORDER_DISTRACTORS + 2, 4, "ce_last", math.log(4.0), "uniform guess of the class",
                lambda rng, N: temporal_order_batch(rng, T, N))


TASKS: Dict[str, Callable[[int], Task]] = {"adding": _adding, "copy": _copy, "temporal_order": _order}
MIN_T = {"adding": 2, "copy": 1, "temporal_order": 10}


def make_task(name: str, T: int) -> Task:
    """The task ``name`` (adding, copy, temporal_order) at sequence length ``T`` (``--seq-len``)."""
    check_choice("task (TASK)", name, tuple(TASKS))
    T = check_count("seq_len (--seq-len)", T, 1)
    if T < MIN_T[name]:
        raise HyperparameterError(f"seq_len (--seq-len) must be >= {MIN_T[name]} for the {name} task, got {T}")
    return TASKS[name](T)
