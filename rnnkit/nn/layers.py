"""Feed-forward building blocks: Linear, Embedding, Dropout.

Each follows the layer contract of :mod:`rnnkit.nn.module`:
``forward(...) -> (output, cache)`` and ``backward(d_output, cache) -> d_input``
(parameter gradients are added to ``.grad``); ``layer(...)`` is ``layer.forward(...)``.
They accept any number of leading axes, so a (T, N, H) sequence goes through a
Linear in one product. They compute in the array namespace of their inputs and
parameters (:mod:`rnnkit.nn.xp`): NumPy arrays run NumPy as before, device arrays
(CuPy, array-api-strict) stay on their device; Dropout's mask is drawn on the host
from the passed generator and moved, so a seed gives the same mask everywhere.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..checks import check_count, check_generator, check_probability, check_seed
from ..errors import ShapeError
from .module import Module, Parameter
from .xp import (check_same_device, host_if_needed, device_of, is_numpy, namespace, parameter_dtype,
                 scatter_add_rows, to_device)

__all__ = ["Linear", "Embedding", "Dropout"]


class Linear(Module):
    r"""Affine map :math:`y = x W^T + b`.

    ``weight``: (out_features, in_features), ``bias``: (out_features,), both
    initialised U(-1/sqrt(in_features), 1/sqrt(in_features)) as in PyTorch.
    Input (..., in_features) of the weight's dtype -> output (..., out_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 dtype=np.float32, rng=None):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            check_count(name, v, 1)
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = np.random.default_rng(check_seed("rng", rng))
        bound = 1.0 / np.sqrt(in_features)
        self.weight = _param(rng.uniform(-bound, bound, (out_features, in_features)), dtype)
        self.bias = _param(rng.uniform(-bound, bound, out_features), dtype) if bias else None

    def forward(self, x):
        x = host_if_needed(x)
        W = self.weight.data
        check_same_device(x, W, "Linear input")
        if tuple(x.shape[-1:]) != (self.in_features,):
            raise ShapeError(f"Linear input: expected last axis of size {self.in_features}, "
                             f"got shape {tuple(x.shape)}")
        xp = namespace(x, W)    # refuses arrays of two libraries (a host input for device weights)
        if x.dtype != W.dtype:  # NumPy would silently promote (float64 math, float64 output) or truncate
            raise ShapeError(f"Linear input: expected dtype {W.dtype} (the weight's dtype), got {x.dtype}; "
                             f"cast with x.astype(np.{W.dtype})")
        y = xp.matmul(x, xp.permute_dims(W, (1, 0)))           # (..., out)
        if self.bias is not None:
            y += self.bias.data
        return y, x

    def backward(self, dy, cache):
        x = cache
        xp = namespace(dy, x)
        x2 = xp.reshape(x, (-1, self.in_features))             # (M, in)
        dy2 = xp.reshape(dy, (-1, self.out_features))          # (M, out)
        self.weight.grad += xp.matmul(xp.permute_dims(dy2, (1, 0)), x2)   # (out, in)
        if self.bias is not None:
            self.bias.grad += xp.sum(dy2, axis=0)
        return xp.matmul(dy, self.weight.data)                 # (..., in)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    r"""Lookup table: :math:`y = W[\text{ids}]`.

    ``weight``: (num_embeddings, embedding_dim), initialised N(0, 1) as in
    PyTorch. ``padding_idx`` rows start at zero and get no gradient.
    Input: integer ids of any shape -> output (*ids.shape, embedding_dim).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None, *,
                 dtype=np.float32, rng=None):
        super().__init__()
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            check_count(name, v, 1)
        if padding_idx is not None and not (0 <= check_count("padding_idx", padding_idx, 0) < num_embeddings):
            raise ValueError(f"padding_idx: expected in [0, {num_embeddings}), got {padding_idx}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = padding_idx
        rng = np.random.default_rng(check_seed("rng", rng))
        w = rng.standard_normal((num_embeddings, embedding_dim))
        if padding_idx is not None:
            w[padding_idx] = 0.0
        self.weight = _param(w, dtype)

    def forward(self, ids):
        ids = host_if_needed(ids)
        W = self.weight.data
        check_same_device(ids, W, "Embedding input")
        if is_numpy(ids, W):
            if not np.issubdtype(ids.dtype, np.integer):
                raise ShapeError(f"Embedding input: expected integer ids, got dtype {ids.dtype}")
            _check_ids(ids.size, ids.min, ids.max, self.num_embeddings)
            return W[ids], ids                                 # (*ids.shape, E)
        xp = namespace(ids, W)
        if not xp.isdtype(ids.dtype, "integral"):
            raise ShapeError(f"Embedding input: expected integer ids, got dtype {ids.dtype}")
        _check_ids(_size(ids.shape), lambda: int(xp.min(ids)), lambda: int(xp.max(ids)), self.num_embeddings)
        flat = xp.take(W, xp.reshape(ids, (-1,)), axis=0)      # (M, E): the standard's take is 1-D
        return xp.reshape(flat, (*ids.shape, self.embedding_dim)), ids   # (*ids.shape, E)

    def backward(self, dy, cache):
        xp = namespace(dy, cache)
        ids = xp.reshape(cache, (-1,))                         # (M,)
        dy2 = xp.reshape(dy, (-1, self.embedding_dim))         # (M, E)
        if self.padding_idx is not None:
            dy2 = dy2 * xp.astype(ids != self.padding_idx, dy2.dtype)[:, None]
        grad = self.weight.grad
        summed = scatter_add_rows(xp, grad, ids, dy2)          # repeated ids accumulate
        if summed is not grad:                                 # a library without a scatter: keep grad's identity
            grad[...] = summed
        return None                                            # ids have no gradient

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class Dropout(Module):
    r"""Inverted dropout: :math:`y = x \odot m / (1 - p)`, :math:`m_i \sim \text{Bernoulli}(1 - p)`.

    Identity in eval mode or when p = 0. The random generator is passed to
    ``forward``, never kept.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = check_probability("p", p)

    def forward(self, x, rng: Optional[np.random.Generator] = None):
        if not self.training or self.p == 0.0:
            return x, None
        if check_generator("rng", rng) is None:
            raise ValueError("Dropout in training mode needs rng (a numpy.random.Generator)")
        keep = 1.0 - self.p
        if is_numpy(x):
            mask = (rng.random(x.shape) < keep).astype(x.dtype) / keep
        else:   # drawn on the host from the same generator, so a seed gives the same mask on every device
            xp = namespace(x)
            host = (rng.random(tuple(x.shape)) < keep).astype(_host_dtype(x.dtype)) / keep
            mask = to_device(host, device_of(x), xp)
        return x * mask, mask

    def backward(self, dy, cache):
        return dy if cache is None else dy * cache

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _check_ids(size, low, high, V) -> None:
    """Ids in [0, V): ``low``/``high`` are called only when there are ids (on a device they read back one number)."""
    if size and (low() < 0 or high() >= V):
        raise ShapeError(f"Embedding input: ids must lie in [0, {V}), got min {low()} and max {high()}")


def _host_dtype(dtype) -> np.dtype:
    """The NumPy dtype named like another library's float dtype (array_api_strict.float32 -> float32)."""
    return np.dtype(str(dtype).rsplit(".", 1)[-1])


def _param(values, dtype) -> Parameter:
    return Parameter(np.asarray(values, dtype=parameter_dtype(dtype)))
