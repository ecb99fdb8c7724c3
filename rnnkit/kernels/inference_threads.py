r"""The inference loops of :mod:`rnnkit.kernels.inference` with each step shared among threads.

The same equations, products and gates; only the work of a step is divided.
The panels (one per block of V hidden units, :mod:`rnnkit.kernels.microgemm`)
are split into ``parts`` contiguous ranges ``bounds[p] <= blk < bounds[p+1]``,
one per thread. Per step t, thread p computes, for its blocks only,

.. math::
    A_t[:, p] = h_{t-1} W_{hh}[p]^T, \qquad X_t[:, p] = b[p] + x_t W_{ih}[p]^T \ \text{(once per input block)}

and the gates of its units. Its units of h_t depend on all of h_{t-1} and on
nothing another thread writes in the same step, so the one synchronisation
a step needs is the end of the parallel loop (numba ``prange``; about 2 us with
the OpenMP layer on this project's machine). A serial step of config B (N=64,
H=512) is milliseconds, so two threads nearly halve it, and each thread streams
only its half of W_hh; on small steps the synchronisation costs more than it
saves, and :func:`rnnkit.kernels.inference.scan_forward` keeps those serial.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .inference_rows import (active_rows, copy_units, direct_output, gru_gates, keep_units, loop_buffers, lstm_gates,
                             rnn_gates, stage_inputs)
from .microgemm import VECTOR_BYTES, panel_product

__all__ = ["lstm_forward", "gru_forward", "rnn_forward", "split_blocks"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)


def split_blocks(blocks: int, parts: int) -> np.ndarray:
    """``bounds`` (parts + 1,): ``blocks`` unit blocks in ``parts`` contiguous ranges, sizes differing by at most 1."""
    parts = max(1, min(parts, blocks))
    return np.array([(p * blocks) // parts for p in range(parts + 1)], np.int64)


@njit(parallel=True, **_JIT)
def lstm_forward(Wp, Wx, b, x, h, c, lengths, reverse, y, chunks, bounds):
    """:func:`rnnkit.kernels.inference.lstm_forward` with each step's blocks split by ``bounds``."""
    T, N = x.shape[:2]
    P = b.size
    Hp = h.shape[1]
    V = VECTOR_BYTES // h.itemsize
    GV = 4 * V
    parts = bounds.size - 1
    h_in, h_out, A, XW, XB, offsets = loop_buffers(x, h, P, chunks[2])
    direct = direct_output(y, Hp, lengths)
    first = -1
    for s in range(T):
        t = T - 1 - s if reverse else s
        if direct:
            h_out = y[t]
        first, rows = stage_inputs(x, lengths, t, XB, first, chunks[2], offsets)
        o = offsets[t - first]
        act = active_rows(lengths, t)
        for p in prange(parts):
            b0, b1 = bounds[p], bounds[p + 1]
            if rows > 0:
                panel_product(4, Wx[b0:b1], XB[:rows], XW[:rows, b0 * GV:b1 * GV], chunks[0], False)
            if act > 0:
                panel_product(4, Wp[b0:b1], h_in[:act], A[:act, b0 * GV:b1 * GV], chunks[1], False)
            xw = XW[o:o + N]
            for n in range(N):
                if t >= lengths[n]:
                    keep_units(h_in, h_out, n, b0 * V, b1 * V)
                else:
                    lstm_gates(A, xw, c, h_out, n, b0, b1, V)
            if not direct:
                copy_units(t, lengths, h_out, y[t], b0 * V, b1 * V)
        h_in, h_out = h_out, h_in
    h[...] = h_in


@njit(parallel=True, **_JIT)
def gru_forward(Wp, Wx, b, b_hn, x, h, lengths, reverse, y, chunks, bounds):
    """:func:`rnnkit.kernels.inference.gru_forward` with each step's blocks split by ``bounds``."""
    T, N = x.shape[:2]
    P = b.size
    Hp = h.shape[1]
    V = VECTOR_BYTES // h.itemsize
    GV = 3 * V
    parts = bounds.size - 1
    h_in, h_out, A, XW, XB, offsets = loop_buffers(x, h, P, chunks[2])
    direct = direct_output(y, Hp, lengths)
    first = -1
    for s in range(T):
        t = T - 1 - s if reverse else s
        if direct:
            h_out = y[t]
        first, rows = stage_inputs(x, lengths, t, XB, first, chunks[2], offsets)
        o = offsets[t - first]
        act = active_rows(lengths, t)
        for p in prange(parts):
            b0, b1 = bounds[p], bounds[p + 1]
            if rows > 0:
                panel_product(3, Wx[b0:b1], XB[:rows], XW[:rows, b0 * GV:b1 * GV], chunks[0], False)
            if act > 0:
                panel_product(3, Wp[b0:b1], h_in[:act], A[:act, b0 * GV:b1 * GV], chunks[1], False)
            xw = XW[o:o + N]
            for n in range(N):
                if t >= lengths[n]:
                    keep_units(h_in, h_out, n, b0 * V, b1 * V)
                else:
                    gru_gates(A, xw, b_hn, h_in, h_out, n, b0, b1, V)
            if not direct:
                copy_units(t, lengths, h_out, y[t], b0 * V, b1 * V)
        h_in, h_out = h_out, h_in
    h[...] = h_in


@njit(parallel=True, **_JIT)
def rnn_forward(Wp, Wx, b, x, h, lengths, reverse, relu, y, chunks, bounds):
    """:func:`rnnkit.kernels.inference.rnn_forward` with each step's blocks (4V units) split by ``bounds``."""
    T, N = x.shape[:2]
    Hp = h.shape[1]
    V = VECTOR_BYTES // h.itemsize
    GV = 4 * V
    parts = bounds.size - 1
    h_in, h_out, A, XW, XB, offsets = loop_buffers(x, h, Hp, chunks[2])
    direct = direct_output(y, Hp, lengths)
    first = -1
    for s in range(T):
        t = T - 1 - s if reverse else s
        if direct:
            h_out = y[t]
        first, rows = stage_inputs(x, lengths, t, XB, first, chunks[2], offsets)
        o = offsets[t - first]
        act = active_rows(lengths, t)
        for p in prange(parts):
            b0, b1 = bounds[p], bounds[p + 1]
            if rows > 0:
                panel_product(4, Wx[b0:b1], XB[:rows], XW[:rows, b0 * GV:b1 * GV], chunks[0], False)
            if act > 0:
                panel_product(4, Wp[b0:b1], h_in[:act], A[:act, b0 * GV:b1 * GV], chunks[1], False)
            xw = XW[o:o + N]
            for n in range(N):
                if t >= lengths[n]:
                    keep_units(h_in, h_out, n, b0 * GV, b1 * GV)
                else:
                    rnn_gates(A, xw, h_out, n, b0, b1, V, relu)
            if not direct:
                copy_units(t, lengths, h_out, y[t], b0 * GV, b1 * GV)
        h_in, h_out = h_out, h_in
    h[...] = h_in
