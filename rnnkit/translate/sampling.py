r"""Teacher forcing and scheduled sampling: which decoder inputs come from the reference.

Scheduled sampling (Bengio et al. 2015) feeds the reference token with
probability :math:`\epsilon_i` and the model's own choice otherwise, decided
independently for every token, with :math:`\epsilon_i` decaying over the
training step i:

.. math::
    \text{linear:}\quad          & \epsilon_i = \max(\epsilon_{min},\ k - c\,i) \\
    \text{exponential:}\quad     & \epsilon_i = \max(\epsilon_{min},\ k^i)                 \qquad (k < 1) \\
    \text{inverse sigmoid:}\quad & \epsilon_i = \max(\epsilon_{min},\ k / (k + \exp(i / k))) \qquad (k \ge 1)

A constant teacher-forcing ratio is decided once per batch instead, as in the
PyTorch tutorial: the whole batch is either teacher-forced (and may then use
the decoder's whole-sequence path) or fed entirely from the model.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np

__all__ = ["TeacherForcing", "DECAYS"]

DECAYS = ("constant", "linear", "exponential", "inverse_sigmoid")
_DEFAULT_K = {"constant": 1.0, "linear": 1.0, "exponential": 0.9995, "inverse_sigmoid": 500.0}


class TeacherForcing:
    """The teacher-forcing probability as a function of the step, and the per-batch masks.

    Parameters
    ----------
    decay : "constant" (``ratio`` per batch), "linear", "exponential" or "inverse_sigmoid" (per token).
    ratio : the constant schedule's probability.
    k, c, floor : the decay's constants (see the module docstring); k defaults to 1, 0.9995
        and 500 for linear, exponential and inverse sigmoid; c to 1e-4.
    """

    def __init__(self, decay: str = "constant", *, ratio: float = 1.0, k: Optional[float] = None,
                 c: float = 1e-4, floor: float = 0.0):
        if decay not in DECAYS:
            raise ValueError(f"scheduled sampling decay: expected one of {DECAYS}, got {decay!r}")
        k = _DEFAULT_K[decay] if k is None else float(k)
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"teacher forcing ratio: expected a probability in [0, 1], got {ratio}")
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"floor: expected a probability in [0, 1], got {floor}")
        if decay == "exponential" and not 0.0 < k <= 1.0:
            raise ValueError(f"exponential decay needs 0 < k <= 1, got k={k}")
        if decay == "inverse_sigmoid" and k < 1.0:
            raise ValueError(f"inverse sigmoid decay needs k >= 1, got k={k}")
        if decay == "linear" and c < 0:
            raise ValueError(f"linear decay needs c >= 0, got c={c}")
        self.decay, self.ratio, self.k, self.c, self.floor = decay, float(ratio), k, float(c), float(floor)

    def prob(self, step: int) -> float:
        """The probability of feeding the reference token at training step ``step``."""
        if self.decay == "constant":
            return self.ratio
        if self.decay == "linear":
            eps = self.k - self.c * step
        elif self.decay == "exponential":
            eps = self.k ** step
        else:
            eps = self.k / (self.k + math.exp(min(step / self.k, 700.0)))   # exp(700) is near float max
        return float(min(1.0, max(self.floor, eps)))

    def mask(self, step: int, shape: Tuple[int, int], rng: np.random.Generator) -> Optional[np.ndarray]:
        """(T, N) bool, True where the reference is fed; None means all of it (plain teacher forcing)."""
        p = self.prob(step)
        if p >= 1.0:
            return None
        if self.decay == "constant":
            return None if rng.random() < p else np.zeros(shape, dtype=bool)
        return rng.random(shape) < p

    def config(self) -> Dict:
        return {"decay": self.decay, "ratio": self.ratio, "k": self.k, "c": self.c, "floor": self.floor}
