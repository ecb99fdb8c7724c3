"""Adam and AdamW, with the update rules and defaults of ``torch.optim`` (notation: :mod:`rnnkit.optim.base`)."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Sequence

import numpy as np

from rnnkit.checks import check_flag, check_real
from rnnkit.errors import HyperparameterError
from rnnkit.nn.module import Parameter
from rnnkit.nn.xp import namespace
from rnnkit.optim.base import DecayMask, Optimizer, l2_gradient

__all__ = ["Adam", "AdamW", "adam_for", "check_weight_decay"]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with weight decay as an L2 term added to the gradient.

    .. math::

        g = grad + wd * theta
        m = beta1 * m + (1 - beta1) * g            (exp_avg)
        v = beta2 * v + (1 - beta2) * g * g        (exp_avg_sq)
        v_max = max(v_max, v)                      (amsgrad only; then v_max replaces v below)
        denom = sqrt(v) / sqrt(1 - beta2**t) + eps
        theta = theta - lr / (1 - beta1**t) * m / denom

    ``eps`` is added after the bias correction of ``v``, as PyTorch does. For
    weight decay that is not scaled by the adaptive denominator use :class:`AdamW`.
    """

    _decoupled = False  # AdamW flips this: decay theta directly instead of via g

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, decay_mask: DecayMask = None):
        super().__init__(params, lr, decay_mask)
        if len(betas) != 2:
            raise HyperparameterError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.beta1 = check_real("betas[0]", betas[0], 0.0, 1.0, high_open=True)
        self.beta2 = check_real("betas[1]", betas[1], 0.0, 1.0, high_open=True)
        self.eps = check_real("eps", eps)
        self.weight_decay = check_real("weight_decay", weight_decay)
        self.amsgrad = check_flag("amsgrad", amsgrad)
        self._init_state()

    def hyperparameters(self) -> Dict[str, Any]:
        return {"betas": [self.beta1, self.beta2], "eps": self.eps,
                "weight_decay": self.weight_decay, "amsgrad": self.amsgrad, **self._mask_hyperparameter()}

    def _state_fill(self) -> Dict[str, float]:
        names = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if self.amsgrad else [])
        return dict.fromkeys(names, 0.0)

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        beta1, beta2, t = self.beta1, self.beta2, self.steps
        wd = self._decay(i)
        if self._decoupled:
            if wd:
                p.data *= 1 - lr * wd
            g = p.grad
        else:
            g = l2_gradient(p, wd)
        m, v = self.state["exp_avg"][i], self.state["exp_avg_sq"][i]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        xp = namespace(p.data)
        if self.amsgrad:
            v_max = self.state["max_exp_avg_sq"][i]
            if xp is np:
                np.maximum(v_max, v, out=v_max)
            else:
                v_max[...] = xp.maximum(v_max, v)
            v = v_max

        step_size = lr / (1 - beta1 ** t)
        update = xp.sqrt(v)                        # becomes denom, then the update itself
        update /= (1 - beta2 ** t) ** 0.5
        update += self.eps
        if xp is np:                               # in place on the host; the standard has no out=
            np.divide(m, update, out=update)
        else:
            update = m / update
        update *= step_size
        p.data -= update


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    .. math::

        theta = theta * (1 - lr * wd)
        g = grad

    followed by the :class:`Adam` update (without the L2 term), for the parameters
    ``decay_mask`` selects (all by default; see :mod:`rnnkit.optim.base`). The
    default ``weight_decay=0.01`` is PyTorch's.
    """

    _decoupled = True

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, decay_mask: DecayMask = None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, decay_mask)


def check_weight_decay(weight_decay: float, learning_rate: float, wd_name: str = "weight_decay",
                       lr_name: str = "learning_rate") -> float:
    """``weight_decay`` >= 0, and small enough that AdamW's factor 1 - learning_rate * weight_decay stays > 0."""
    wd = check_real(wd_name, weight_decay, 0.0)
    if wd * learning_rate >= 1:
        raise HyperparameterError(f"{wd_name} {wd:g} with {lr_name} {learning_rate:g} would multiply the weights "
                                  f"by 1 - {wd * learning_rate:g} at every step (to zero or past it): the two "
                                  "multiplied must stay below 1; usual weight decays are 0.01-0.3")
    return wd


def adam_for(module, lr: float, weight_decay: float = 0.0) -> Adam:
    """The applications' optimiser: :class:`Adam`, or with ``weight_decay`` > 0 :class:`AdamW` decaying the weight
    matrices and embeddings (every parameter of two or more dimensions) and not the biases, gains and peepholes,
    as most AdamW recipes do."""
    lr, wd = float(lr), float(weight_decay)
    if wd == 0:
        return Adam(module.parameters(), lr=lr)
    return AdamW(module.parameters(), lr=lr, weight_decay=wd, decay_mask=lambda p: p.data.ndim > 1)
