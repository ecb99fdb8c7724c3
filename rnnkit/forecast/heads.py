r"""Output heads: how the network's raw outputs become a forecast, and their losses.

A head reads P raw numbers per target and horizon step and turns them into a
distribution (or a point). Each loss returns ``(loss, d_raw)``, averaged over
the elements where ``mask`` is True.

- ``point``  (P = 1): :math:`\hat y = r`, loss :math:`(\hat y - y)^2`.
- ``gaussian`` (P = 2): :math:`\mu = r_0,\ \sigma = \mathrm{softplus}(r_1) + \sigma_{min}`,
  negative log-likelihood
  :math:`\ell = \tfrac12\log 2\pi + \log\sigma + \frac{(y-\mu)^2}{2\sigma^2}`.
- ``quantile`` (P = Q): :math:`\hat q_j = r_j` for levels :math:`\tau_j`, pinball loss
  :math:`\ell = \frac1Q \sum_j \max(\tau_j e_j, (\tau_j - 1) e_j),\ e_j = y - \hat q_j`.
  Predicted quantiles are sorted before use (monotone rearrangement), so they
  never cross.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["HEADS", "head_size", "point_loss", "gaussian_nll", "pinball_loss", "head_loss",
           "gaussian_params", "softplus", "SIGMA_MIN"]

HEADS = ("point", "gaussian", "quantile")
SIGMA_MIN = 1e-3   # keeps the NLL finite when the network is sure of itself


def head_size(head: str, quantiles: Sequence[float]) -> int:
    return {"point": 1, "gaussian": 2}.get(head, len(quantiles))


def softplus(s: np.ndarray) -> np.ndarray:
    """log(1 + e^s), stable for large |s|."""
    return np.logaddexp(0.0, s)


def _sigmoid(s):
    return 0.5 * (1.0 + np.tanh(0.5 * s))      # no overflow for large |s|


def gaussian_params(raw: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) from raw outputs (..., 2)."""
    return raw[..., 0], softplus(raw[..., 1]) + SIGMA_MIN


def _mask_and_count(shape, mask):
    if mask is None:
        return None, int(np.prod(shape))
    m = np.asarray(mask, dtype=bool)
    m = np.broadcast_to(m.reshape(m.shape + (1,) * (len(shape) - m.ndim)), shape)   # (T, N) -> (T, N, k)
    return m, max(int(m.sum()), 1)


def point_loss(raw: np.ndarray, y: np.ndarray, mask: Optional[np.ndarray] = None):
    """Mean squared error of raw (..., 1) against y (...)."""
    m, n = _mask_and_count(y.shape, mask)
    e = raw[..., 0] - y
    if m is not None:
        e = e * m
    return float((e * e).sum() / n), (2.0 / n * e)[..., None]


def gaussian_nll(raw: np.ndarray, y: np.ndarray, mask: Optional[np.ndarray] = None):
    r"""Gaussian NLL of raw (..., 2) against y (...).

    .. math::
        \frac{\partial\ell}{\partial\mu} = -\frac{y-\mu}{\sigma^2},\quad
        \frac{\partial\ell}{\partial\sigma} = \frac1\sigma - \frac{(y-\mu)^2}{\sigma^3},\quad
        \frac{\partial\sigma}{\partial r_1} = \mathrm{sigmoid}(r_1)
    """
    m, n = _mask_and_count(y.shape, mask)
    mu, sigma = gaussian_params(raw)
    e = y - mu
    nll = 0.5 * np.log(2 * np.pi) + np.log(sigma) + 0.5 * (e / sigma) ** 2
    d_mu = -e / sigma ** 2
    d_sigma = 1.0 / sigma - e ** 2 / sigma ** 3
    grad = np.stack([d_mu, d_sigma * _sigmoid(raw[..., 1])], axis=-1) / n
    if m is not None:
        nll = nll * m
        grad = grad * m[..., None]
    return float(nll.sum() / n), grad.astype(raw.dtype, copy=False)


def pinball_loss(raw: np.ndarray, y: np.ndarray, quantiles: Sequence[float],
                 mask: Optional[np.ndarray] = None):
    """Mean pinball loss of raw (..., Q) against y (...); the gradient at e = 0 is taken as tau - 1."""
    tau = np.asarray(quantiles, dtype=raw.dtype)               # (Q,)
    m, n = _mask_and_count(y.shape, mask)
    e = y[..., None] - raw                                     # (..., Q)
    loss = np.maximum(tau * e, (tau - 1.0) * e).mean(axis=-1)
    grad = np.where(e > 0, -tau, 1.0 - tau) / (n * len(tau))
    if m is not None:
        loss = loss * m
        grad = grad * m[..., None]
    return float(loss.sum() / n), grad.astype(raw.dtype, copy=False)


def head_loss(head: str, raw, y, quantiles=(), mask=None):
    """Dispatch to the loss of ``head``."""
    if head == "point":
        return point_loss(raw, y, mask)
    if head == "gaussian":
        return gaussian_nll(raw, y, mask)
    return pinball_loss(raw, y, quantiles, mask)
