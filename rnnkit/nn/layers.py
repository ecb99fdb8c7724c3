"""Feed-forward building blocks: Linear, Embedding, Dropout.

Each follows the layer contract of :mod:`rnnkit.nn.module`:
``forward(...) -> (output, cache)`` and ``backward(d_output, cache) -> d_input``
(parameter gradients are added to ``.grad``); ``layer(...)`` is ``layer.forward(...)``.
They accept any number of leading axes, so a (T, N, H) sequence goes through a
Linear in one product.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..checks import check_count
from ..errors import ShapeError
from .module import Module, Parameter

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
        rng = np.random.default_rng(rng)
        bound = 1.0 / np.sqrt(in_features)
        self.weight = _param(rng.uniform(-bound, bound, (out_features, in_features)), dtype)
        self.bias = _param(rng.uniform(-bound, bound, out_features), dtype) if bias else None

    def forward(self, x):
        x = np.asarray(x)
        if x.shape[-1:] != (self.in_features,):
            raise ShapeError(f"Linear input: expected last axis of size {self.in_features}, got shape {x.shape}")
        dtype = self.weight.data.dtype
        if x.dtype != dtype:  # NumPy would silently promote (float64 math, float64 output) or truncate
            raise ShapeError(f"Linear input: expected dtype {dtype} (the weight's dtype), got {x.dtype}; "
                             f"cast with x.astype(np.{dtype})")
        y = x @ self.weight.data.T                             # (..., out)
        if self.bias is not None:
            y += self.bias.data
        return y, x

    def backward(self, dy, cache):
        x = cache
        x2 = x.reshape(-1, self.in_features)                   # (M, in)
        dy2 = dy.reshape(-1, self.out_features)                # (M, out)
        self.weight.grad += dy2.T @ x2                         # (out, in)
        if self.bias is not None:
            self.bias.grad += dy2.sum(axis=0)
        return dy @ self.weight.data                           # (..., in)

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
        if padding_idx is not None and not (0 <= padding_idx < num_embeddings):
            raise ValueError(f"padding_idx: expected in [0, {num_embeddings}), got {padding_idx}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = padding_idx
        rng = np.random.default_rng(rng)
        w = rng.standard_normal((num_embeddings, embedding_dim))
        if padding_idx is not None:
            w[padding_idx] = 0.0
        self.weight = _param(w, dtype)

    def forward(self, ids):
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise ShapeError(f"Embedding input: expected integer ids, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ShapeError(f"Embedding input: ids must lie in [0, {self.num_embeddings}), "
                             f"got min {ids.min()} and max {ids.max()}")
        return self.weight.data[ids], ids                      # (*ids.shape, E)

    def backward(self, dy, cache):
        ids = cache.reshape(-1)
        dy2 = dy.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            dy2 = dy2 * (ids != self.padding_idx)[:, None]
        np.add.at(self.weight.grad, ids, dy2)                  # repeated ids accumulate
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
        if not (0.0 <= p < 1.0):
            raise ValueError(f"p: expected a probability in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x, rng: Optional[np.random.Generator] = None):
        if not self.training or self.p == 0.0:
            return x, None
        if rng is None:
            raise ValueError("Dropout in training mode needs rng (a numpy.random.Generator)")
        keep = 1.0 - self.p
        mask = (rng.random(x.shape) < keep).astype(x.dtype) / keep
        return x * mask, mask

    def backward(self, dy, cache):
        return dy if cache is None else dy * cache

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _param(values, dtype) -> Parameter:
    return Parameter(np.asarray(values, dtype=dtype))
