"""Loss functions, each returning the loss and its gradient with respect to the input.

Losses are plain functions, not modules: they hold no parameters, and returning
the gradient beside the value saves a cache round trip.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..errors import ShapeError

__all__ = ["log_softmax", "softmax", "cross_entropy", "mse", "bce_with_logits"]


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """log p_k = z_k - max(z) - log sum_j exp(z_j - max(z)), stable for any magnitude."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def cross_entropy(logits: np.ndarray, targets: np.ndarray, *, ignore_index: Optional[int] = None,
                  mask: Optional[np.ndarray] = None, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tuple[float, np.ndarray]:
    r"""Softmax cross-entropy over the last axis, and its gradient.

    .. math::
        \ell_n = -\sum_k q_{nk} \log p_{nk}, \quad p = \mathrm{softmax}(z), \quad
        q = (1 - \epsilon)\, \mathrm{onehot}(y) + \epsilon / C

    averaged over the real tokens (``reduction="mean"``) or summed (``"sum"``).
    Tokens whose target equals ``ignore_index`` or whose ``mask`` is False are
    not real: they add nothing to the loss and get zero gradient, even when a
    logit of theirs is -inf. With ``label_smoothing`` ε in [0, 1] the target
    distribution is q as above (PyTorch's rule).

    ``logits``: (..., C); ``targets``: integer (...); ``mask``: (...) like
    ``targets``. Returns ``(loss, d_logits)``.
    """
    z = np.asarray(logits)
    y = np.asarray(targets)
    if z.shape[:-1] != y.shape:
        raise ShapeError(f"cross_entropy: targets shape {y.shape} must equal logits shape without the "
                         f"class axis {z.shape[:-1]}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ShapeError(f"cross_entropy: expected integer targets, got dtype {y.dtype}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    if not (isinstance(label_smoothing, (int, float, np.integer, np.floating)) and not isinstance(label_smoothing, bool)
            and 0.0 <= label_smoothing <= 1.0):  # NaN fails the comparison too
        raise ValueError(f"label_smoothing: expected a number in [0, 1], got {label_smoothing!r}")
    eps = float(label_smoothing)
    C = z.shape[-1]
    real = np.ones(y.shape, dtype=bool)
    if ignore_index is not None:
        real &= y != ignore_index
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != y.shape:  # no broadcasting: a (N,) mask over (T, N) targets is a bug, not a rule
            raise ShapeError(f"cross_entropy: mask shape: expected the targets' shape {y.shape}, got {mask.shape}")
        real &= mask.astype(bool)
    y_safe = np.where(real, y, 0)                                # any valid class for tokens that are not real
    if y_safe.size and (y_safe.min() < 0 or y_safe.max() >= C):
        raise ShapeError(f"cross_entropy: targets must lie in [0, {C}), got min {y_safe.min()} and max {y_safe.max()}")
    shifted = z - z.max(axis=-1, keepdims=True)                  # (..., C)
    e = np.exp(shifted)                                          # the only exp: loss and gradient share it
    total = e.sum(axis=-1, keepdims=True)                        # (..., 1)
    logp = shifted - np.log(total)                               # log softmax
    nll = -np.take_along_axis(logp, y_safe[..., None], axis=-1)[..., 0]
    if eps:
        nll = (1.0 - eps) * nll - eps * logp.mean(axis=-1)
    # where, not a product: the placeholder class of a non-real token may have a -inf logit (inf * 0 = NaN)
    nll = np.where(real, nll, 0.0)
    count = int(real.sum())
    denom = max(count, 1) if reduction == "mean" else 1
    loss = float(nll.sum() / denom)
    grad = e / total                                             # softmax p
    if eps:
        grad -= eps / C
    np.put_along_axis(grad, y_safe[..., None],
                      np.take_along_axis(grad, y_safe[..., None], axis=-1) - (1.0 - eps), axis=-1)
    grad *= (real / denom)[..., None].astype(grad.dtype)
    return loss, grad


def mse(pred: np.ndarray, target: np.ndarray, *, mask: Optional[np.ndarray] = None,
        reduction: str = "mean") -> Tuple[float, np.ndarray]:
    r"""Mean squared error :math:`\frac{1}{M}\sum (\hat y - y)^2` over real elements, and its gradient."""
    p = np.asarray(pred)
    t = np.asarray(target)
    if p.shape != t.shape:
        raise ShapeError(f"mse: prediction shape {p.shape} must equal target shape {t.shape}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    diff = p - t
    m, count = _real_elements(mask, p.shape, "mse", "prediction")
    if m is not None:
        diff = diff * m
    denom = max(count, 1) if reduction == "mean" else 1
    return float((diff * diff).sum() / denom), (2.0 / denom) * diff


def bce_with_logits(logits: np.ndarray, targets: np.ndarray, *, mask: Optional[np.ndarray] = None,
                    reduction: str = "sum") -> Tuple[float, np.ndarray]:
    r"""Binary cross-entropy of independent sigmoid outputs, from the logits, and its gradient.

    .. math::
        \ell = -\sum [y \log \sigma(z) + (1 - y) \log(1 - \sigma(z))]
              = \sum [\max(z, 0) - z y + \log(1 + e^{-|z|})], \qquad
        \frac{\partial \ell}{\partial z} = \sigma(z) - y

    (the right-hand form never overflows). ``targets`` in [0, 1] with the logits'
    shape; ``mask`` (broadcast to that shape) marks the real elements. Summed
    (``reduction="sum"``, as PyTorch's ``BCEWithLogitsLoss(reduction="sum")``)
    or averaged over the real elements (``"mean"``). Returns ``(loss, d_logits)``.
    """
    z = np.asarray(logits)
    y = np.asarray(targets)
    if z.shape != y.shape:
        raise ShapeError(f"bce_with_logits: targets shape {y.shape} must equal logits shape {z.shape}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    y = y.astype(z.dtype, copy=False)
    per = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))   # (...) per-element loss
    grad = 0.5 * (1.0 + np.tanh(0.5 * z)) - y                         # sigma(z) - y, no overflow
    m, count = _real_elements(mask, z.shape, "bce_with_logits", "logits")
    if m is not None:
        per = np.where(m, per, 0.0)
        grad = np.where(m, grad, 0.0)
    denom = max(count, 1) if reduction == "mean" else 1
    return float(per.sum(dtype=np.float64) / denom), (grad / denom).astype(z.dtype, copy=False)


def _real_elements(mask, shape, loss: str, what: str) -> Tuple[Optional[np.ndarray], int]:
    """``mask`` broadcast to ``shape`` as bools and how many elements it keeps; (None, size) without a mask."""
    if mask is None:
        return None, int(np.prod(shape, dtype=np.int64))
    try:
        m = np.broadcast_to(np.asarray(mask, dtype=bool), shape)
    except ValueError:
        raise ShapeError(f"{loss}: mask shape {np.shape(mask)} does not broadcast to the {what} shape "
                         f"{shape}") from None
    return m, int(m.sum())
