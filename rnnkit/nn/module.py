"""Parameters and the Module base that every layer and model builds on.

A :class:`Parameter` pairs an array with the gradient array of the same shape.
Both arrays keep their identity while the parameter stays on one device:
``zero_grad`` fills the gradient with zeros and ``load_state_dict`` copies values
in place, so optimisers can hold references to them. :meth:`Module.to` moves
every parameter to another device (NumPy, CuPy, array-api-strict, ...; see
:mod:`rnnkit.nn.xp`): the :class:`Parameter` objects stay the same (tied weights
stay tied, an optimiser holding parameters follows), their two arrays are
replaced by the device's. Build optimiser state after moving.

A :class:`Module` owns named parameters and named child modules. Layers
implement ``forward(...) -> (outputs..., cache)`` (``module(...)`` calls it) and
``backward(grads, cache)``;
``backward`` *adds* parameter gradients into ``Parameter.grad`` (as PyTorch's
``.grad`` accumulates) and returns the gradients of the inputs. Nothing else is
kept on ``self`` between calls: the cache travels from ``forward`` to
``backward`` through the caller.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, List, Mapping, Optional, Set, Tuple

import numpy as np

from ..errors import ShapeError
from .xp import device_namespace, device_of, host_if_needed, is_numpy, namespace, numpy_dtype, to_device, to_host

__all__ = ["Parameter", "Module"]


def check_array(a, what: str, *, ndims, layout: str, last: Optional[int] = None, dtype=None) -> np.ndarray:
    """``a`` as an array after checking its rank (one of ``ndims``), last dimension and dtype.

    A mismatch is a :class:`~rnnkit.errors.ShapeError` saying what was expected
    (``layout``, e.g. ``"(N, S, K=8)"``) and what was given. The layers' eager
    input checks all go through here.
    """
    a = host_if_needed(a)          # lists become NumPy arrays; any library's arrays stay where they are
    if a.ndim not in ndims or (last is not None and a.shape[-1] != last):
        raise ShapeError(f"{what}: expected {layout}, got shape {a.shape}")
    if dtype is not None and numpy_dtype(a.dtype) != np.dtype(dtype):
        raise ShapeError(f"{what}: expected dtype {np.dtype(dtype)} (the parameters' dtype), got {a.dtype}")
    return a


class Parameter:
    """A trainable array ``data`` and its gradient ``grad`` (same shape and dtype)."""

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray):
        data = host_if_needed(data)
        self.data = np.ascontiguousarray(data) if is_numpy(data) else data    # any library's array stays on its device
        self.grad = namespace(self.data).zeros_like(self.data)

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: a tree of named parameters and child modules.

    Subclasses register parameters with :meth:`add_parameter` and children with
    :meth:`add_module` (or by plain attribute assignment of a ``Parameter`` or
    ``Module``). Names follow PyTorch's ``state_dict`` convention:
    ``child.weight_ih_l0``. A parameter shared by two modules (tied weights) is
    one parameter: :meth:`parameters` lists it once, under its first name, while
    :meth:`state_dict` keeps every name, as PyTorch does.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # -- registration -----------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def add_parameter(self, name: str, data: np.ndarray) -> Parameter:
        p = Parameter(data)
        setattr(self, name, p)
        return p

    def add_module(self, name: str, module: "Module") -> "Module":
        setattr(self, name, module)
        return module

    # -- traversal --------------------------------------------------------
    def named_parameters(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[Tuple[str, Parameter]]:
        """``(qualified name, Parameter)`` pairs; a shared parameter comes once unless ``remove_duplicate=False``."""
        return self._named_parameters(prefix, set() if remove_duplicate else None)

    def _named_parameters(self, prefix: str, seen: Optional[Set[int]]) -> Iterator[Tuple[str, Parameter]]:
        for name, p in self._parameters.items():
            if seen is not None:
                if id(p) in seen:
                    continue
                seen.add(id(p))
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m._named_parameters(prefix + name + ".", seen)

    def parameters(self) -> List[Parameter]:
        """Every distinct parameter once (what an optimiser takes)."""
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator["Module"]:
        """This module and every descendant, each once even if it is shared."""
        seen: Set[int] = set()
        stack = [self]
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield m
            stack.extend(reversed(list(m._modules.values())))

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    # -- gradients and mode -----------------------------------------------
    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad[...] = 0

    def to(self, device) -> "Module":
        """Move every parameter and its gradient to ``device``; returns ``self``.

        ``device``: "cpu" (NumPy), "cuda" / "cuda:K" (CuPy), or a library's device
        object (``array_api_strict.Device("device1")``, ``cupy.cuda.Device(0)``).
        Parameters keep their identity (tied weights stay tied); their arrays are
        replaced. Layers then compute in the namespace of their inputs, which must
        be on the same device.
        """
        xp, dev = device_namespace(device)
        for p in self.parameters():            # each distinct parameter once
            p.data = to_device(p.data, dev, xp)
            p.grad = to_device(p.grad, dev, xp)
        return self

    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    @contextmanager
    def eval_mode(self) -> Iterator["Module"]:
        """``with model.eval_mode():`` evaluation mode inside; every module's previous mode after.

        The previous modes come back even when the block raises, and module by
        module: a model whose encoder was frozen in eval mode keeps it so.
        Use this (not ``eval()`` ... ``train()``) to validate or generate in the
        middle of training::

            with model.eval_mode():
                metrics = validate(model)
        """
        with self._mode(False):
            yield self

    @contextmanager
    def train_mode(self) -> Iterator["Module"]:
        """``with model.train_mode():`` training mode inside; every module's previous mode after (as :meth:`eval_mode`)."""
        with self._mode(True):
            yield self

    @contextmanager
    def _mode(self, training: bool) -> Iterator[None]:
        before = [(m, m.training) for m in self.modules()]
        self.train(training)
        try:
            yield
        finally:
            for m, was in before:
                object.__setattr__(m, "training", was)

    # -- state ------------------------------------------------------------
    def state_dict(self) -> Dict[str, np.ndarray]:
        """Copies of every parameter, keyed by qualified name (a tied parameter under each of its names).

        The copies are on the parameters' device; model files write them through
        :func:`rnnkit.nn.xp.to_host`.
        """
        return {name: p.data.copy() if is_numpy(p.data) else namespace(p.data).asarray(p.data, copy=True)
                for name, p in self.named_parameters(remove_duplicate=False)}

    def load_state_dict(self, state: Mapping[str, np.ndarray], strict: bool = True) -> None:
        """Copy values into the existing parameter arrays, cast to each parameter's dtype.

        Everything is checked before anything is copied, so on error the module
        is unchanged: with ``strict`` every parameter must be present and no
        other key allowed; shapes must match and values must be numbers. A
        mismatch raises :class:`~rnnkit.errors.ShapeError` listing all problems.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state_dict: expected a dict of arrays, got {type(state).__name__}")
        own = dict(self.named_parameters(remove_duplicate=False))
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        values: Dict[str, np.ndarray] = {}
        wrong: List[str] = []
        for name, p in own.items():
            if name not in state:
                continue
            value = to_host(host_if_needed(state[name]))     # checked on the host, copied onto the device below
            if value.dtype.kind not in "biuf":
                wrong.append(f"{name}: expected numbers, got dtype {value.dtype}")
            elif value.shape != p.data.shape:
                wrong.append(f"{name}: expected shape {p.data.shape}, got {value.shape}")
            else:
                values[name] = value
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if wrong:
            problems.append("wrong values [" + "; ".join(wrong) + "]")
        if problems:
            raise ShapeError(f"state_dict does not fit {type(self).__name__}: " + ", ".join(problems)
                             + ". Build the module with the sizes and options the state was saved from"
                             + (", or pass strict=False to load only the matching keys" if strict else ""))
        for name, value in values.items():
            data = own[name].data
            if is_numpy(data):
                data[...] = value
            else:
                data[...] = to_device(value.astype(numpy_dtype(data.dtype)), device_of(data), namespace(data))

    # -- calling and display ----------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        """``module(...)`` is ``module.forward(...)``: no hooks, nothing stored."""
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        """The settings shown inside this module's repr, as in PyTorch (override it; default none)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        children = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        if not children:
            return f"{type(self).__name__}({extra or f'{self.num_parameters()} parameters'})"
        return f"{type(self).__name__}(\n" + "\n".join(([f"  {extra}"] if extra else []) + children) + "\n)"
