"""Gradient clipping, with the same rule and numbers as ``torch.nn.utils``.

Recurrent nets are where exploding gradients happen (Pascanu et al., 2013):
one unlucky sequence makes the BPTT product of Jacobians huge, and a single
step then throws the weights far away. Clipping the *global* norm of all
gradients keeps the step's direction and only shortens it:

.. math::

    n_i = ||grad_i||_p                      (each parameter's gradient, flattened)
    total_norm = ||(n_1, ..., n_k)||_p      (= the p-norm of all gradients as one vector)
    coef = min(max_norm / (total_norm + 1e-6), 1)
    grad_i = coef * grad_i

The ``1e-6`` keeps the division finite for all-zero gradients and makes the
clipped norm land just below ``max_norm``. For ``p = inf`` the norm is the
largest absolute entry.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from rnnkit.errors import HyperparameterError, TrainingError
from rnnkit.nn.module import Parameter
from rnnkit.optim.checks import check_parameters

__all__ = ["clip_grad_norm", "clip_grad_value"]


def _vector_norm(x: np.ndarray, p: float) -> np.floating:
    """The p-norm of ``x`` flattened, in ``x``'s dtype (0 for an empty array)."""
    if x.size == 0:
        return x.dtype.type(0)
    return np.linalg.norm(x.ravel(), ord=p)


def clip_grad_norm(params: Iterable[Parameter], max_norm: float, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> float:
    """Scale all gradients in place so that their joint p-norm is at most ``max_norm``.

    Returns ``total_norm``, the norm *before* clipping (handy to log: a
    spiking norm is the first sign of exploding gradients).

    Arguments:
        params: parameters whose ``.grad`` is clipped together.
        max_norm: the largest allowed total norm (>= 0).
        norm_type: ``p`` of the p-norm, > 0, or ``float("inf")`` (``"inf"`` also works).
        error_if_nonfinite: raise :class:`~rnnkit.errors.TrainingError` when the
            total norm is NaN or infinite. Otherwise, as in PyTorch, the
            gradients are still multiplied by the (then NaN or zero) coefficient.
    """
    grads = [p.grad for p in check_parameters(params, "clip_grad_norm")]
    max_norm = float(max_norm)
    p = float(norm_type)
    if not max_norm >= 0:
        raise HyperparameterError(f"max_norm must be >= 0, got {max_norm!r}")
    if not p > 0:
        raise HyperparameterError(f"norm_type must be > 0 or inf, got {norm_type!r}")
    if not grads:
        return 0.0

    norms = np.array([_vector_norm(g, p) for g in grads])
    total_norm = _vector_norm(norms, p)
    if error_if_nonfinite and not np.isfinite(total_norm):
        raise TrainingError(
            f"the total {p:g}-norm of the gradients is {float(total_norm)}, so it cannot be "
            "clipped; look for a diverging loss, or pass error_if_nonfinite=False"
        )
    # np.minimum rather than min(): NaN must propagate as torch.clamp lets it.
    coef = np.minimum(max_norm / (total_norm + 1e-6), 1.0)
    for g in grads:
        g *= coef
    return float(total_norm)


def clip_grad_value(params: Iterable[Parameter], clip_value: float) -> None:
    """Clamp every gradient entry in place to ``[-clip_value, clip_value]``.

    Unlike :func:`clip_grad_norm` this changes the gradient's direction; it
    is mostly useful as a guard against rare huge entries.
    """
    c = float(clip_value)
    if not c >= 0:
        raise HyperparameterError(f"clip_value must be >= 0, got {clip_value!r}")
    for p in check_parameters(params, "clip_grad_value"):
        np.clip(p.grad, -c, c, out=p.grad)
