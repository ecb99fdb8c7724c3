r"""The random masks of the recurrent regularisers, drawn from the generator the caller passes in.

Three ways to regularise a recurrent layer that PyTorch's ``nn.LSTM``/``nn.GRU`` do not offer
(each drawn once per forward call, in training mode only):

- **variational dropout** (Gal and Ghahramani 2016): one keep-mask per sequence on each layer's
  input and one on :math:`h_{t-1}` where it enters the recurrent product, the same at every time
  step: :math:`x_t \to x_t \odot m_x`, :math:`h_{t-1} W_{hh}^T \to (h_{t-1} \odot m_h) W_{hh}^T`,
  :math:`m \sim \mathrm{Bernoulli}(1-p) / (1-p)`;
- **weight drop** (DropConnect on :math:`W_{hh}`, Wan et al. 2013; AWD-LSTM, Merity et al. 2018):
  :math:`W_{hh} \to W_{hh} \odot M / (1-p)`, one mask M per forward call for all steps and
  sequences; gradients reach only the kept weights;
- **zoneout** (Krueger et al. 2017): each unit of each state component keeps its previous value
  with probability p: :math:`s_t = s_{new} + d_t \odot (s_{t-1} - s_{new})`, :math:`d_t \sim
  \mathrm{Bernoulli}(p)` drawn per step and unit in training, :math:`d_t = p` (the expectation)
  at evaluation, so evaluation is deterministic.

Scaling the dropout masks by 1/(1-p) ("inverted" dropout) keeps evaluation a plain forward pass.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["keep_mask", "zoneout_probabilities"]


def keep_mask(rng: np.random.Generator, p: float, shape, dtype) -> np.ndarray:
    """Inverted-dropout keep-mask ``m / (1 - p)``, ``m ~ Bernoulli(1 - p)``, of ``shape``."""
    keep = 1.0 - p
    return (rng.random(shape) < keep).astype(dtype) / dtype.type(keep)


def zoneout_probabilities(rng: Optional[np.random.Generator], ps: Sequence[float], training: bool, T: int, N: int,
                          sizes: Sequence[int], dtype) -> Tuple[Optional[np.ndarray], ...]:
    """Per state component (probability p, size n) a (T, N, n) array d, or None where p = 0:
    0/1 draws with P(1) = p in training, the constant p at evaluation."""
    if training:
        return tuple((rng.random((T, N, n)) < p).astype(dtype) if p else None for p, n in zip(ps, sizes))
    return tuple(np.full((T, N, n), p, dtype) if p else None for p, n in zip(ps, sizes))
