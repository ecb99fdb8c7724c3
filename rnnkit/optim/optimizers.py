"""SGD, RMSprop and Adagrad, with the update rules and defaults of ``torch.optim``.

The notation of the docstrings, the in-place update contract and the state
layout are described in :mod:`rnnkit.optim.base` (the :class:`Optimizer` base);
Adam and AdamW are in :mod:`rnnkit.optim.adam`. This module also re-exports
them, so ``from rnnkit.optim.optimizers import Adam`` keeps working.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable

import numpy as np

from rnnkit.checks import check_flag, check_real
from rnnkit.errors import HyperparameterError
from rnnkit.nn.module import Parameter
from rnnkit.nn.xp import namespace
from rnnkit.optim.adam import Adam, AdamW
from rnnkit.optim.base import DecayMask, Optimizer, l2_gradient

__all__ = ["HyperparameterError", "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and Nesterov momentum.

    .. math::

        g = grad + wd * theta
        b = g                                 (first step)
        b = momentum * b + (1 - dampening) * g  (later steps)
        g = g + momentum * b   if nesterov  else  g = b
        theta = theta - lr * g

    The momentum lines apply only when ``momentum != 0``. As in PyTorch the
    buffer starts as a copy of the first gradient, so ``dampening`` has no
    effect on step 1, and ``lr`` multiplies the whole buffer (not ``g`` inside
    it as in Sutskever et al.), which matters when ``lr`` changes.
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 decay_mask: DecayMask = None):
        super().__init__(params, lr, decay_mask)
        self.momentum = check_real("momentum", momentum)
        self.dampening = check_real("dampening", dampening)
        self.weight_decay = check_real("weight_decay", weight_decay)
        self.nesterov = check_flag("nesterov", nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise HyperparameterError(
                "nesterov=True requires momentum > 0 and dampening == 0, "
                f"got momentum={momentum!r}, dampening={dampening!r}"
            )
        self._init_state()

    def hyperparameters(self) -> Dict[str, Any]:
        return {"momentum": self.momentum, "dampening": self.dampening,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov, **self._mask_hyperparameter()}

    def _state_fill(self) -> Dict[str, float]:
        return {"momentum_buffer": 0.0} if self.momentum != 0 else {}

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        g = l2_gradient(p, self._decay(i))
        if self.momentum != 0:
            b = self.state["momentum_buffer"][i]
            if self.steps == 1:
                b[...] = g
            else:
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        p.data -= lr * g


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), optionally centered and with momentum.

    .. math::

        g = grad + wd * theta
        v = alpha * v + (1 - alpha) * g * g              (square_avg)
        g_avg = alpha * g_avg + (1 - alpha) * g          (grad_avg, centered only)
        denom = sqrt(v - g_avg**2) + eps   if centered  else  sqrt(v) + eps
        b = momentum * b + g / denom                     (momentum_buffer, momentum > 0)
        theta = theta - lr * b             if momentum > 0  else  theta - lr * g / denom

    ``eps`` is added outside the square root, as in PyTorch (TensorFlow adds it inside).
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, decay_mask: DecayMask = None):
        super().__init__(params, lr, decay_mask)
        # PyTorch only checks alpha >= 0; above 1 the "average" would diverge.
        self.alpha = check_real("alpha", alpha, 0.0, 1.0)
        self.eps = check_real("eps", eps)
        self.weight_decay = check_real("weight_decay", weight_decay)
        self.momentum = check_real("momentum", momentum)
        self.centered = check_flag("centered", centered)
        self._init_state()

    def hyperparameters(self) -> Dict[str, Any]:
        return {"alpha": self.alpha, "eps": self.eps, "weight_decay": self.weight_decay,
                "momentum": self.momentum, "centered": self.centered, **self._mask_hyperparameter()}

    def _state_fill(self) -> Dict[str, float]:
        names = ["square_avg"]
        names += ["momentum_buffer"] if self.momentum > 0 else []
        names += ["grad_avg"] if self.centered else []
        return dict.fromkeys(names, 0.0)

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        alpha = self.alpha
        xp = namespace(p.data)
        g = l2_gradient(p, self._decay(i))
        v = self.state["square_avg"][i]
        v *= alpha
        v += (1 - alpha) * g * g
        if self.centered:
            g_avg = self.state["grad_avg"][i]
            g_avg *= alpha
            g_avg += (1 - alpha) * g
            denom = xp.sqrt(v - g_avg * g_avg)
        else:
            denom = xp.sqrt(v)
        denom += self.eps
        if self.momentum > 0:
            b = self.state["momentum_buffer"][i]
            b *= self.momentum
            b += g / denom
            p.data -= lr * b
        else:
            if xp is np:                           # in place on the host; the standard has no out=
                np.divide(g, denom, out=denom)
            else:
                denom = g / denom
            denom *= lr
            p.data -= denom


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011) with PyTorch's learning-rate decay.

    .. math::

        g = grad + wd * theta
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g                       (sum, starts at initial_accumulator_value)
        theta = theta - clr * g / (sqrt(s) + eps)
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, decay_mask: DecayMask = None):
        super().__init__(params, lr, decay_mask)
        self.lr_decay = check_real("lr_decay", lr_decay)
        self.weight_decay = check_real("weight_decay", weight_decay)
        self.initial_accumulator_value = check_real("initial_accumulator_value",
                                               initial_accumulator_value)
        self.eps = check_real("eps", eps)
        self._init_state()

    def hyperparameters(self) -> Dict[str, Any]:
        return {"lr_decay": self.lr_decay, "weight_decay": self.weight_decay,
                "initial_accumulator_value": self.initial_accumulator_value, "eps": self.eps,
                **self._mask_hyperparameter()}

    def _state_fill(self) -> Dict[str, float]:
        return {"sum": self.initial_accumulator_value}

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        g = l2_gradient(p, self._decay(i))
        clr = lr / (1 + (self.steps - 1) * self.lr_decay)
        s = self.state["sum"][i]
        s += g * g
        xp = namespace(p.data)
        std = xp.sqrt(s)
        std += self.eps
        if xp is np:                               # in place on the host; the standard has no out=
            np.divide(g, std, out=std)
        else:
            std = g / std
        std *= clr
        p.data -= std
