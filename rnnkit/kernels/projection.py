r"""A dense layer's product on weights packed once, for the many calls of a decoding loop.

.. math::
    y = x W^T + b = [x \mid 1] \, [W \mid b]^T \quad (N, O)

with ``[W | b]`` (O, I + 1) packed once into panels of 4 vectors of output columns
(:func:`rnnkit.kernels.microgemm.pack_panels`, columns in their natural order) and
each call one register-tiled product (:func:`rnnkit.kernels.microgemm.panel_product`).
What it saves: NumPy's BLAS copies (packs) the whole weight into its own layout on
every call, and at the sizes of one decoding step (tens of rows against a
vocabulary of thousands) that copy of the output layer's 12 MB costs about as much
as the product. Translation decoding (:mod:`rnnkit.translate.decode`) builds one
:class:`PackedLinear` per call of ``greedy``/``beam_search``, when the weights cannot
change, so nothing has to check them between steps.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import microgemm

__all__ = ["PackedLinear", "packed_linear"]

VECTORS = 4


@njit(cache=True, error_model="numpy", nogil=True)
def _product(Wp, xb, out, k_chunk):
    microgemm.panel_product(4, Wp, xb, out, k_chunk, False)


class PackedLinear:
    """``f(x) = x W^T + b`` for ``x`` (N, I) of the weight's dtype; returns (N, O) (a view of a padded array)."""

    def __init__(self, W: np.ndarray, b=None):
        O, I = W.shape
        width = VECTORS * microgemm.lanes(W.dtype)
        Op = -(-O // width) * width
        src = np.where(np.arange(Op) < O, np.arange(Op), -1)                 # (Op,) natural order, padded
        Wb = np.concatenate([W, (np.zeros(O, W.dtype) if b is None else b)[:, None].astype(W.dtype)], axis=1)
        self.Wp = microgemm.pack_panels(np.ascontiguousarray(Wb), src, width)   # (Op/width, I + 1, width)
        self.k_chunk = microgemm.k_chunk(VECTORS, W.dtype)
        self.shape, self.dtype, self.Op = (O, I), W.dtype, Op

    def __call__(self, x: np.ndarray) -> np.ndarray:
        O, I = self.shape
        N = x.shape[0]
        xb = np.empty((N, I + 1), self.dtype)                               # (N, I + 1) [x | 1]
        xb[:, :I] = x
        xb[:, I] = 1
        out = np.empty((N, self.Op), self.dtype)                            # (N, Op)
        _product(self.Wp, xb, out, self.k_chunk)
        return out[:, :O]


def packed_linear(layer):
    """A callable ``x -> layer(x)[0]`` for the calls of one decoding loop: :class:`PackedLinear` when the
    layer's weight is a float32/float64 NumPy array and the numba backend runs, else the layer itself."""
    from .backend import resolve_backend

    W = layer.weight.data
    if type(W) is np.ndarray and W.dtype in (np.float32, np.float64) and W.ndim == 2 \
            and resolve_backend() == "numba":
        return PackedLinear(W, None if layer.bias is None else layer.bias.data)
    return lambda x: layer(x)[0]
