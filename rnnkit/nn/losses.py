"""Loss functions, each returning the loss and its gradient with respect to the input.

Losses are plain functions, not modules: they hold no parameters, and returning
the gradient beside the value saves a cache round trip. They compute in the array
namespace of their inputs (:mod:`rnnkit.nn.xp`; targets and masks on the logits'
device); the loss comes back as a Python float (one number read back from a
device), the gradient as an array of the logits' library and device.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..errors import ShapeError
from .xp import host_if_needed, device_of, namespace

__all__ = ["log_softmax", "softmax", "cross_entropy", "mse", "bce_with_logits"]


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """log p_k = z_k - max(z) - log sum_j exp(z_j - max(z)), stable for any magnitude."""
    xp = namespace(logits)
    shifted = logits - xp.max(logits, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """p_k = exp(z_k - max(z)) / sum_j exp(z_j - max(z))."""
    xp = namespace(logits)
    e = xp.exp(logits - xp.max(logits, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


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
    z = host_if_needed(logits)
    y = host_if_needed(targets)
    mask = None if mask is None else host_if_needed(mask)
    xp = namespace(z, y, mask)
    if tuple(z.shape[:-1]) != tuple(y.shape):
        raise ShapeError(f"cross_entropy: targets shape {tuple(y.shape)} must equal logits shape without the "
                         f"class axis {tuple(z.shape[:-1])}")
    if not xp.isdtype(y.dtype, "integral"):
        raise ShapeError(f"cross_entropy: expected integer targets, got dtype {y.dtype}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    if not (isinstance(label_smoothing, (int, float, np.integer, np.floating)) and not isinstance(label_smoothing, bool)
            and 0.0 <= label_smoothing <= 1.0):  # NaN fails the comparison too
        raise ValueError(f"label_smoothing: expected a number in [0, 1], got {label_smoothing!r}")
    eps = float(label_smoothing)
    C = z.shape[-1]
    real = xp.ones(y.shape, dtype=xp.bool, device=device_of(y))
    if ignore_index is not None:
        real &= y != ignore_index
    if mask is not None:
        if tuple(mask.shape) != tuple(y.shape):  # no broadcasting: a (N,) mask over (T, N) targets is a bug
            raise ShapeError(f"cross_entropy: mask shape: expected the targets' shape {tuple(y.shape)}, "
                             f"got {tuple(mask.shape)}")
        real &= xp.astype(mask, xp.bool)
    y_safe = xp.where(real, y, 0)                                # any valid class for tokens that are not real
    if y_safe.size and (int(xp.min(y_safe)) < 0 or int(xp.max(y_safe)) >= C):
        raise ShapeError(f"cross_entropy: targets must lie in [0, {C}), got min {int(xp.min(y_safe))} "
                         f"and max {int(xp.max(y_safe))}")
    shifted = z - xp.max(z, axis=-1, keepdims=True)              # (..., C)
    e = xp.exp(shifted)                                          # the only exp: loss and gradient share it
    total = xp.sum(e, axis=-1, keepdims=True)                    # (..., 1)
    logp = shifted - xp.log(total)                               # log softmax
    nll = -xp.take_along_axis(logp, y_safe[..., None], axis=-1)[..., 0]
    if eps:
        nll = (1.0 - eps) * nll - eps * xp.mean(logp, axis=-1)
    # where, not a product: the placeholder class of a non-real token may have a -inf logit (inf * 0 = NaN)
    nll = xp.where(real, nll, 0.0)
    count = int(xp.count_nonzero(real))
    denom = max(count, 1) if reduction == "mean" else 1
    loss = float(xp.sum(nll) / denom)
    grad = e / total                                             # softmax p
    if eps:
        grad -= eps / C
    if isinstance(grad, np.ndarray):                             # p_y -= 1 - eps, in place
        np.put_along_axis(grad, y_safe[..., None],
                          np.take_along_axis(grad, y_safe[..., None], axis=-1) - (1.0 - eps), axis=-1)
    else:                                                        # the standard has no put: a one-hot mask
        classes = xp.arange(C, dtype=y_safe.dtype, device=device_of(y_safe))
        grad -= xp.astype(y_safe[..., None] == classes, grad.dtype) * (1.0 - eps)
    # 1/denom on real tokens, 0 elsewhere, in grad's dtype (the same numbers as real / denom cast down)
    grad *= (xp.astype(real, grad.dtype) * (1.0 / denom))[..., None]
    return loss, grad


def _pair(a, b, mask, reduction: str, shape_message):
    """The elementwise losses' arguments checked: ``a`` and ``b`` of one shape (else ``shape_message(a_shape,
    b_shape)``), ``reduction`` "mean" or "sum"; returns ``(a, b, mask, xp)``."""
    a, b = host_if_needed(a), host_if_needed(b)
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeError(shape_message(tuple(a.shape), tuple(b.shape)))
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    mask = None if mask is None else host_if_needed(mask)
    return a, b, mask, namespace(a, b, mask)


def mse(pred: np.ndarray, target: np.ndarray, *, mask: Optional[np.ndarray] = None,
        reduction: str = "mean") -> Tuple[float, np.ndarray]:
    r"""Mean squared error :math:`\frac{1}{M}\sum (\hat y - y)^2` over real elements, and its gradient."""
    p, t, mask, xp = _pair(pred, target, mask, reduction,
                           lambda a, b: f"mse: prediction shape {a} must equal target shape {b}")
    diff = p - t
    m, count = _real_elements(xp, mask, p.shape, "mse", "prediction")
    if m is not None:
        diff = diff * xp.astype(m, diff.dtype)
    denom = max(count, 1) if reduction == "mean" else 1
    return float(xp.sum(diff * diff) / denom), (2.0 / denom) * diff


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
    z, y, mask, xp = _pair(logits, targets, mask, reduction,
                           lambda a, b: f"bce_with_logits: targets shape {b} must equal logits shape {a}")
    y = xp.astype(y, z.dtype, copy=False)
    per = xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))   # (...) per-element loss
    grad = 0.5 * (1.0 + xp.tanh(0.5 * z)) - y                         # sigma(z) - y, no overflow
    m, count = _real_elements(xp, mask, z.shape, "bce_with_logits", "logits")
    if m is not None:
        per = xp.where(m, per, 0.0)
        grad = xp.where(m, grad, 0.0)
    denom = max(count, 1) if reduction == "mean" else 1
    return float(xp.sum(per, dtype=xp.float64) / denom), xp.astype(grad / denom, z.dtype, copy=False)


def _real_elements(xp, mask, shape, loss: str, what: str) -> Tuple[Optional[np.ndarray], int]:
    """``mask`` broadcast to ``shape`` as bools and how many elements it keeps; (None, size) without a mask."""
    shape = tuple(shape)
    if mask is None:
        return None, int(np.prod(shape, dtype=np.int64))
    try:
        m = xp.broadcast_to(xp.astype(mask, xp.bool), shape)
    except ValueError:
        raise ShapeError(f"{loss}: mask shape {tuple(mask.shape)} does not broadcast to the {what} shape "
                         f"{shape}") from None
    return m, int(xp.count_nonzero(m))
