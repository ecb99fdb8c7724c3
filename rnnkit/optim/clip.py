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

On a device (CuPy, array-api-strict; :mod:`rnnkit.nn.xp`) the norms, the
coefficient and the scaling stay there, and one number, ``total_norm``, is read
back to the host.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from rnnkit.errors import HyperparameterError, TrainingError
from rnnkit.nn.module import Parameter
from rnnkit.nn.xp import device_of, is_numpy, namespace
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

    if not is_numpy(*grads):
        return _clip_on_device(grads, max_norm, p, error_if_nonfinite)
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


def _clip_on_device(grads, max_norm: float, p: float, error_if_nonfinite: bool) -> float:
    """:func:`clip_grad_norm` in the gradients' namespace: the same equations, one number read back."""
    xp = namespace(*grads)
    norms = xp.stack([xp.linalg.vector_norm(g, ord=p) if g.size else xp.zeros((), dtype=g.dtype, device=device_of(g))
                      for g in grads])                               # (k,) on the device
    total = xp.linalg.vector_norm(norms, ord=p)                       # 0-d
    total_norm = float(total)
    if error_if_nonfinite and not np.isfinite(total_norm):
        raise TrainingError(
            f"the total {p:g}-norm of the gradients is {total_norm}, so it cannot be "
            "clipped; look for a diverging loss, or pass error_if_nonfinite=False"
        )
    coef = max_norm / (total + 1e-6)
    coef = xp.where(coef > 1.0, 1.0, coef)                            # min(coef, 1) that lets NaN through
    for g in grads:
        g *= xp.astype(coef, g.dtype)
    return total_norm


def clip_grad_value(params: Iterable[Parameter], clip_value: float) -> None:
    """Clamp every gradient entry in place to ``[-clip_value, clip_value]``.

    Unlike :func:`clip_grad_norm` this changes the gradient's direction; it
    is mostly useful as a guard against rare huge entries.
    """
    c = float(clip_value)
    if not c >= 0:
        raise HyperparameterError(f"clip_value must be >= 0, got {clip_value!r}")
    for p in check_parameters(params, "clip_grad_value"):
        if isinstance(p.grad, np.ndarray):
            np.clip(p.grad, -c, c, out=p.grad)
        else:
            p.grad[...] = namespace(p.grad).clip(p.grad, -c, c)
