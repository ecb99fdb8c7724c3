"""Arrays whose data start on a cache-line boundary, for the compiled loops' vector loads and stores.

NumPy's large arrays start 16 bytes past a page boundary, and numba's 32 bytes past a
64-byte one, so a 64-byte vector (AVX-512) loaded from or stored to them spans two
cache lines. Measured on this project's machine (2026-12-03, interleaved medians):
packed panels on a 64-byte boundary made config A's and D's LSTM inference 2.5-4%
faster, and state buffers on one took 2-3 us a step off the loops that copy each
step's state into the outputs (padded units, variable lengths: config D's tanh RNN went
from 0.4-0.6 ms behind the loop that writes each state straight into the outputs to
0.08 ms behind). Needs NumPy only; the loops' own buffers use the same rule
(:func:`rnnkit.kernels.inference_rows.line_aligned`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LINE_BYTES", "aligned_empty"]

LINE_BYTES = 64


def aligned_empty(shape, dtype, align: int = LINE_BYTES) -> np.ndarray:
    """An uninitialised C-ordered array of ``shape`` whose data start on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape) if hasattr(shape, "__len__") else (int(shape),)   # any sequence, or a size
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start:start + nbytes].view(dtype).reshape(shape)
