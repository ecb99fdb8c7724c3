"""Gradient-descent optimisers with the same update rules and defaults as ``torch.optim``.

Every optimiser updates ``p.data`` in place from ``p.grad`` for each
:class:`~rnnkit.nn.module.Parameter` it was given. Notation used in the
docstrings (and, where it helps, in the code):

    theta  parameter ``p.data``         g      gradient ``p.grad`` (after L2 decay)
    lr     learning rate ``self.lr``    t      step number, 1 for the first step
    wd     ``weight_decay``

The arithmetic follows PyTorch's single-tensor (CPU) code path operation by
operation where that stays readable, so a run matches ``torch.optim`` to
rounding (tests check rtol 1e-10 in float64). Updates are computed in the
parameter's own dtype: hyperparameters are kept as Python floats, which NumPy
treats as "weak" scalars that do not promote a float32 array to float64.

Per-parameter state (moment estimates, momentum buffers) is allocated eagerly
in ``__init__`` and lives in ``self.state[name][i]`` for parameter ``i``.
``lr`` is a plain attribute: a training loop sets it from a schedule
(:mod:`rnnkit.optim.schedules`) before each ``step()``.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Sequence

import numpy as np

from rnnkit.errors import HyperparameterError, ModelFileError, ShapeError
from rnnkit.nn.module import Parameter
from rnnkit.optim.checks import check_flag, check_optimizer_state, check_parameters, check_real

__all__ = ["HyperparameterError", "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]


def _param_list(params: Iterable[Parameter]) -> List[Parameter]:
    params = check_parameters(params, "optimiser")
    if not params:
        raise HyperparameterError("params is empty: the optimiser needs at least one Parameter")
    # A parameter listed twice would be updated twice per step.
    if len({id(p) for p in params}) != len(params):
        raise HyperparameterError("params contains the same Parameter more than once")
    return params


class Optimizer:
    """Base class: the parameter list, ``lr``, the step count and per-parameter state.

    Subclasses implement :meth:`hyperparameters` (the constructor keywords other
    than ``lr``, JSON-serialisable), :meth:`_state_fill` (which state arrays
    exist and their initial value) and :meth:`_update` (one parameter's update).
    """

    def __init__(self, params: Iterable[Parameter], lr: float):
        self.params: List[Parameter] = _param_list(params)
        self.lr: float = check_real("lr", lr)
        self.steps: int = 0  # optimiser steps taken so far
        self.state: Dict[str, List[np.ndarray]] = {}

    def _init_state(self) -> None:
        """Allocate every state array; subclasses call this at the end of ``__init__``."""
        self.state = {
            name: [np.full_like(p.data, fill) for p in self.params]
            for name, fill in self._state_fill().items()
        }

    # -- subclass interface -------------------------------------------------
    def hyperparameters(self) -> Dict[str, Any]:
        """Constructor keywords except ``params`` and ``lr``."""
        raise NotImplementedError

    def _state_fill(self) -> Dict[str, float]:
        """Name -> initial value of each per-parameter state array."""
        return {}

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        raise NotImplementedError

    # -- public API ---------------------------------------------------------
    def step(self) -> None:
        """Update every parameter once from its current gradient."""
        lr = float(self.lr)  # a NumPy float64 would make float64 temporaries for float32 params
        self.steps += 1
        for i, p in enumerate(self.params):
            self._update(i, p, lr)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad.fill(0)

    def state_dict(self) -> Dict[str, Dict[str, Any]]:
        """Copies of everything needed to continue exactly where this optimiser is.

        ``{"scalars": {...}, "arrays": {"<state name>.<param index>": ndarray}}``;
        the scalars are JSON-serialisable.
        """
        scalars = {
            "optimizer": type(self).__name__,
            "steps": self.steps,
            "lr": float(self.lr),
            "hyperparameters": self.hyperparameters(),
            "param_shapes": [list(p.data.shape) for p in self.params],
        }
        arrays = {
            f"{name}.{i}": a.copy() for name, per_param in self.state.items()
            for i, a in enumerate(per_param)
        }
        return {"scalars": scalars, "arrays": arrays}

    def load_state_dict(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        """Restore lr, hyperparameters, step count and state arrays from :meth:`state_dict`.

        Nothing changes unless the whole state fits: same optimiser class, same
        number and shapes of parameters, exactly the expected array keys. A
        malformed state (a crafted or damaged checkpoint) raises
        :class:`~rnnkit.errors.ModelFileError` naming the bad field.

        As in ``torch.optim``, the saved ``lr`` and hyperparameters *replace*
        the ones this optimiser was built with: ``Adam(params, lr=0.1)``
        followed by loading a state saved with ``lr=0.001`` continues with
        0.001 (and the saved betas, weight decay ...). To change them for the
        rest of a run, set the attributes (e.g. ``opt.lr``) after loading, or
        use a schedule, which sets ``lr`` before every step.
        """
        scalars, arrays = check_optimizer_state(state)
        kind, steps, lr = scalars["optimizer"], scalars["steps"], scalars["lr"]
        hyper, shapes = scalars["hyperparameters"], scalars["param_shapes"]
        if kind != type(self).__name__:
            raise ModelFileError(f"state_dict is for {kind}, cannot load it into {type(self).__name__}")
        if len(shapes) != len(self.params):
            raise ShapeError(
                f"state_dict holds {len(shapes)} parameters, this optimiser has {len(self.params)}"
            )
        for i, (shape, p) in enumerate(zip(shapes, self.params)):
            if tuple(shape) != p.data.shape:
                raise ShapeError(f"parameter {i}: expected shape {p.data.shape}, got {tuple(shape)}")

        # Rebuilding through the constructor re-validates the saved hyperparameters
        # and allocates exactly the state arrays they call for (e.g. amsgrad's max).
        try:
            fresh = type(self)(self.params, lr=lr, **hyper)
        except (TypeError, HyperparameterError) as exc:  # an unknown keyword, a value out of range
            raise ModelFileError(f"state_dict hyperparameters do not fit {kind}: {exc}") from None
        expected = {f"{name}.{i}" for name in fresh.state for i in range(len(self.params))}
        if set(arrays) != expected:
            raise ModelFileError(
                f"state_dict arrays do not match {type(self).__name__}{fresh.hyperparameters()}: "
                f"missing {sorted(expected - set(arrays))}, unexpected {sorted(set(arrays) - expected)}"
            )
        for name, per_param in fresh.state.items():
            for i, a in enumerate(per_param):
                saved = np.asarray(arrays[f"{name}.{i}"])
                if saved.dtype.kind not in "biuf":
                    raise ModelFileError(f"optimiser state: array {name}.{i} must hold numbers, got dtype {saved.dtype}")
                if saved.shape != a.shape:  # checked, not broadcast: a scalar must not fill a buffer
                    raise ShapeError(f"{name}.{i}: expected shape {a.shape}, got {saved.shape}")
                a[...] = saved
        fresh.steps = steps
        # Adopt the fresh optimiser's attributes wholesale: lr, step count, state and
        # every hyperparameter attribute, whatever a subclass names them.
        self.__dict__.update(fresh.__dict__)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({len(self.params)} params, lr={self.lr!r}, {args})"


def _l2(p: Parameter, weight_decay: float) -> np.ndarray:
    """g = grad + wd * theta, as a new array so that ``p.grad`` stays what backward produced."""
    if weight_decay == 0:
        return p.grad
    return p.grad + weight_decay * p.data


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
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
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
                "weight_decay": self.weight_decay, "nesterov": self.nesterov}

    def _state_fill(self) -> Dict[str, float]:
        return {"momentum_buffer": 0.0} if self.momentum != 0 else {}

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        g = _l2(p, self.weight_decay)
        if self.momentum != 0:
            b = self.state["momentum_buffer"][i]
            if self.steps == 1:
                b[...] = g
            else:
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        p.data -= lr * g


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
                 weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, lr)
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
                "weight_decay": self.weight_decay, "amsgrad": self.amsgrad}

    def _state_fill(self) -> Dict[str, float]:
        names = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if self.amsgrad else [])
        return dict.fromkeys(names, 0.0)

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        beta1, beta2, t = self.beta1, self.beta2, self.steps
        if self._decoupled:
            p.data *= 1 - lr * self.weight_decay
            g = p.grad
        else:
            g = _l2(p, self.weight_decay)
        m, v = self.state["exp_avg"][i], self.state["exp_avg_sq"][i]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        if self.amsgrad:
            v = np.maximum(self.state["max_exp_avg_sq"][i], v, out=self.state["max_exp_avg_sq"][i])

        step_size = lr / (1 - beta1 ** t)
        update = np.sqrt(v)                        # becomes denom, then the update itself
        update /= (1 - beta2 ** t) ** 0.5
        update += self.eps
        np.divide(m, update, out=update)
        update *= step_size
        p.data -= update


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    .. math::

        theta = theta * (1 - lr * wd)
        g = grad

    followed by the :class:`Adam` update (without the L2 term). The default
    ``weight_decay=0.01`` is PyTorch's.
    """

    _decoupled = True

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


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
                 centered: bool = False):
        super().__init__(params, lr)
        # PyTorch only checks alpha >= 0; above 1 the "average" would diverge.
        self.alpha = check_real("alpha", alpha, 0.0, 1.0)
        self.eps = check_real("eps", eps)
        self.weight_decay = check_real("weight_decay", weight_decay)
        self.momentum = check_real("momentum", momentum)
        self.centered = check_flag("centered", centered)
        self._init_state()

    def hyperparameters(self) -> Dict[str, Any]:
        return {"alpha": self.alpha, "eps": self.eps, "weight_decay": self.weight_decay,
                "momentum": self.momentum, "centered": self.centered}

    def _state_fill(self) -> Dict[str, float]:
        names = ["square_avg"]
        names += ["momentum_buffer"] if self.momentum > 0 else []
        names += ["grad_avg"] if self.centered else []
        return dict.fromkeys(names, 0.0)

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        alpha = self.alpha
        g = _l2(p, self.weight_decay)
        v = self.state["square_avg"][i]
        v *= alpha
        v += (1 - alpha) * g * g
        if self.centered:
            g_avg = self.state["grad_avg"][i]
            g_avg *= alpha
            g_avg += (1 - alpha) * g
            denom = v - g_avg * g_avg
            np.sqrt(denom, out=denom)
        else:
            denom = np.sqrt(v)
        denom += self.eps
        if self.momentum > 0:
            b = self.state["momentum_buffer"][i]
            b *= self.momentum
            b += g / denom
            p.data -= lr * b
        else:
            np.divide(g, denom, out=denom)
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
                 eps: float = 1e-10):
        super().__init__(params, lr)
        self.lr_decay = check_real("lr_decay", lr_decay)
        self.weight_decay = check_real("weight_decay", weight_decay)
        self.initial_accumulator_value = check_real("initial_accumulator_value",
                                               initial_accumulator_value)
        self.eps = check_real("eps", eps)
        self._init_state()

    def hyperparameters(self) -> Dict[str, Any]:
        return {"lr_decay": self.lr_decay, "weight_decay": self.weight_decay,
                "initial_accumulator_value": self.initial_accumulator_value, "eps": self.eps}

    def _state_fill(self) -> Dict[str, float]:
        return {"sum": self.initial_accumulator_value}

    def _update(self, i: int, p: Parameter, lr: float) -> None:
        g = _l2(p, self.weight_decay)
        clr = lr / (1 + (self.steps - 1) * self.lr_decay)
        s = self.state["sum"][i]
        s += g * g
        std = np.sqrt(s)
        std += self.eps
        np.divide(g, std, out=std)
        std *= clr
        p.data -= std
