r"""The per-step recurrent products of the layer-norm loops on register-tiled panels.

A batch-major step multiplies a block of rows by the same matrix at every step,

.. math::
    \mathrm{out}\ (N, C) = a\ (N, K)\ M\ (K, C) \;(+\ \mathrm{out})

(forward: ``a`` = h m_h, ``M`` = W_hh^T; backward: ``a`` = d hw, ``M`` = W_hh). OpenBLAS
packs ``M`` again on every call; :func:`pack` packs it once per layer call into the panels of
:mod:`rnnkit.kernels.microgemm` in the *natural* column order,

    Mp[b, k, j] = M[k, b*GW + j]        (B = C / GW panels, GW = 4 vectors of the dtype)    # (B, K, GW)

so that the panel product writes ``out`` column for column as ``a @ M`` would, and the
loops' norms and gates read it unchanged. Only when ``C`` is a multiple of GW (64 float32
and 32 float64 with AVX-512, half that with AVX2); otherwise :func:`pack` returns an empty
array and :func:`pmm` calls BLAS, as it does in the Python version of the loops.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from . import microgemm
from .primitives import mm

__all__ = ["VECTORS", "panel_width", "pack", "no_panels", "pmm"]

VECTORS = 4
"""Vectors per tile row (:func:`rnnkit.kernels.microgemm.tile` has 4 and 3; 4 is the wider)."""


def panel_width(dtype) -> int:
    """GW: the columns of one panel, ``VECTORS`` SIMD vectors of ``dtype``."""
    return VECTORS * microgemm.lanes(dtype)


def no_panels(dtype) -> np.ndarray:
    """The empty (0, 0, 0) array that tells :func:`pmm` to use BLAS."""
    return np.zeros((0, 0, 0), dtype)


def pack(M: np.ndarray) -> np.ndarray:
    """``Mp`` (C/GW, K, GW) from ``M`` (K, C), natural column order; (0, 0, 0) when GW does not divide C."""
    K, C = M.shape
    GW = panel_width(M.dtype)
    if C % GW or C == 0:
        return no_panels(M.dtype)
    return np.ascontiguousarray(M.reshape(K, C // GW, GW).transpose(1, 0, 2))    # (B, K, GW)


def pmm(gemm, Mp, k_chunk, a, M, beta, out):
    """``out = a @ M + beta out`` (beta 0 or 1); compiled, on the panels ``Mp`` when not empty.

    ``a`` (N, K), ``out`` (N, C): 2-D views with unit stride within rows; ``k_chunk`` is
    :func:`rnnkit.kernels.microgemm.k_chunk` of ``VECTORS``. The Python version uses ``np.matmul``.
    """
    mm(gemm, False, a, M, a.dtype.type(1), beta, out)


@overload(pmm)
def _pmm_overload(gemm, Mp, k_chunk, a, M, beta, out):
    if not isinstance(Mp, types.Array):
        return None

    def impl(gemm, Mp, k_chunk, a, M, beta, out):
        if Mp.shape[0] > 0:
            microgemm.panel_product(4, Mp, a, out, k_chunk, beta != 0)
        else:
            mm(gemm, False, a, M, a.dtype.type(1), beta, out)
    return impl
