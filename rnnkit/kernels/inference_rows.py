r"""The gates of one row of an inference step, over a range of unit blocks: shared by the serial and threaded loops.

Row n of a step, in panel order (:mod:`rnnkit.kernels.microgemm`): ``A[n]`` (P,) the
recurrent part ``h_{t-1} W_hh^T``, ``xw[n]`` (P,) the input part ``b + x_t W_ih^T``.
For the unit blocks ``b0 <= blk < b1`` (V units each; G gate vectors side by side):

- LSTM (i, f, g, o): ``a = xw + A``; ``c' = sigmoid(f) c + sigmoid(i) tanh(g)``, ``h' = sigmoid(o) tanh(c')``;
- GRU (r, z, n): ``r, z = sigmoid(xw + A)``, ``n = tanh(xw_n + r (A_n + b_hn))``, ``h' = n + z (h - n)``;
- RNN (blocks of 4V units, one gate): ``h' = tanh(xw + A)`` or ``max(xw + A, 0)``.

Float32 runs the explicit vectors of :mod:`rnnkit.kernels.vector_gates` on the
block range's addresses; float64 (gradient checks, references) runs plain loops.
A threaded step (:mod:`rnnkit.kernels.inference_threads`) gives each thread its own
block range, so the threads write disjoint units and read only their own.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .primitives import sigmoid, tanh
from .vector_gates import gru_row, lstm_row, rnn_row

__all__ = ["lstm_gates", "gru_gates", "rnn_gates", "keep_units", "copy_units", "active_rows", "direct_output",
           "stage_inputs", "loop_buffers", "line_aligned"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(inline="always")
def lstm_gates(A, xw, c, h_out, n, b0, b1, V):
    """Row n, blocks b0..b1: ``c`` (N, Hp) updated in place, ``h_out`` (N, Hp) written."""
    P, Hp = A.shape[1], c.shape[1]
    if c.itemsize == 4:                                    # float32: the vector gates
        lstm_row(A.ctypes.data + (n * P + b0 * 4 * V) * 4, xw.ctypes.data + (n * P + b0 * 4 * V) * 4,
                 c.ctypes.data + (n * Hp + b0 * V) * 4, h_out.ctypes.data + (n * Hp + b0 * V) * 4, np.int64(b1 - b0))
        return
    a, xr, cr, hr = A[n], xw[n], c[n], h_out[n]             # one slice per row: slices cost atomics
    for blk in range(b0, b1):
        j, u = blk * 4 * V, blk * V
        for l in range(V):
            i = sigmoid(xr[j + l] + a[j + l])
            f = sigmoid(xr[j + V + l] + a[j + V + l])
            g = tanh(xr[j + 2 * V + l] + a[j + 2 * V + l])
            o = sigmoid(xr[j + 3 * V + l] + a[j + 3 * V + l])
            c_new = f * cr[u + l] + i * g
            cr[u + l] = c_new
            hr[u + l] = o * tanh(c_new)


@njit(inline="always")
def gru_gates(A, xw, b_hn, h_in, h_out, n, b0, b1, V):
    """Row n, blocks b0..b1: ``h_out`` (N, Hp) from ``h_in`` (N, Hp); ``b_hn`` (Hp,) inside r's product."""
    P, Hp = A.shape[1], h_in.shape[1]
    if h_in.itemsize == 4:
        gru_row(A.ctypes.data + (n * P + b0 * 3 * V) * 4, xw.ctypes.data + (n * P + b0 * 3 * V) * 4,
                b_hn.ctypes.data + b0 * V * 4, h_in.ctypes.data + (n * Hp + b0 * V) * 4,
                h_out.ctypes.data + (n * Hp + b0 * V) * 4, np.int64(b1 - b0))
        return
    a, xr, hp, hr = A[n], xw[n], h_in[n], h_out[n]
    for blk in range(b0, b1):
        j, u = blk * 3 * V, blk * V
        for l in range(V):
            r = sigmoid(xr[j + l] + a[j + l])
            z = sigmoid(xr[j + V + l] + a[j + V + l])
            m = tanh(xr[j + 2 * V + l] + r * (a[j + 2 * V + l] + b_hn[u + l]))
            hr[u + l] = m + z * (hp[u + l] - m)


@njit(inline="always")
def rnn_gates(A, xw, h_out, n, b0, b1, V, relu):
    """Row n, blocks b0..b1 of 4V units: ``h_out`` (N, Hp) written (P = Hp for the one-gate cell)."""
    P = A.shape[1]
    if h_out.itemsize == 4:
        rnn_row(A.ctypes.data + (n * P + b0 * 4 * V) * 4, xw.ctypes.data + (n * P + b0 * 4 * V) * 4,
                h_out.ctypes.data + (n * P + b0 * 4 * V) * 4, np.int64(4 * (b1 - b0)), np.int64(relu))
        return
    a, xr, hr = A[n], xw[n], h_out[n]
    zero = h_out.dtype.type(0)
    if relu:
        for j in range(b0 * 4 * V, b1 * 4 * V):
            hr[j] = max(xr[j] + a[j], zero)
    else:
        for j in range(b0 * 4 * V, b1 * 4 * V):
            hr[j] = tanh(xr[j] + a[j])


@njit(inline="always")
def keep_units(h_in, h_out, n, u0, u1):
    """A padded step: units u0..u1 of row n pass through."""
    src, dst = h_in[n], h_out[n]
    for j in range(u0, u1):
        dst[j] = src[j]


@intrinsic
def _copy_bytes(typingctx, dst, src, nbytes):
    """``memcpy(dst, src, nbytes)`` on addresses: the compiler's own vectorised copy of a row's units (a loop
    of element stores between two arrays numba cannot prove apart may stay scalar; measured alone, the
    change was within the noise)."""
    sig = types.void(types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        cgutils.raw_memcpy(builder, builder.inttoptr(args[0], i8p), builder.inttoptr(args[1], i8p), args[2], 1)
        return context.get_dummy_value()
    return sig, codegen


@njit(inline="always")
def copy_units(t, lengths, h, y_t, u0, u1):
    """``y_t[:, u0:u1]`` = h[:, u0:u1] (units below H only), zero in the rows that step t pads (``h`` C-ordered)."""
    N, H = y_t.shape
    u1 = min(u1, H)
    if u1 <= u0:
        return
    size = h.itemsize
    zero = h.dtype.type(0)
    for n in range(N):
        if t < lengths[n]:
            _copy_bytes(y_t.ctypes.data + n * y_t.strides[0] + u0 * size,
                        h.ctypes.data + (n * h.shape[1] + u0) * size, (u1 - u0) * size)
        else:
            yn = y_t[n]
            for j in range(u0, u1):
                yn[j] = zero


@njit(**_JIT)
def active_rows(lengths, t):
    """How many sequences step t does not pad: with ``lengths`` in descending order (the loops' callers
    sort the batch), they are the first rows, and the products of the step run on those alone."""
    n = 0
    while n < lengths.size and t < lengths[n]:
        n += 1
    return n


@njit(**_JIT)
def direct_output(y, Hp, lengths):
    """Whether the loops can write each step's state straight into ``y[t]`` and read it back from there
    (no padding: ``H == Hp`` and no step pads any sequence), skipping the copy into the outputs."""
    return y.shape[2] == Hp and (lengths.size == 0 or lengths.min() >= y.shape[0])


@njit(**_JIT)
def stage_inputs(x, lengths, t, XB, first, steps, offsets):
    """Copy the active rows of the block of ``steps`` steps holding t into ``XB`` (rows, D + 1), when t
    starts a block other than ``first``; ``offsets`` (steps + 1,) where each step's rows start.
    Returns ``(first step of the block, rows copied or -1 when the block was already staged)``
    (the threads then compute the block's input products, :func:`rnnkit.kernels.inference_loops.step_inputs`)."""
    T, N, D = x.shape
    start = (t // steps) * steps
    if start == first:
        return start, -1
    stop = min(T, start + steps)
    rows = 0
    for u in range(start, stop):
        offsets[u - start] = rows
        for r in range(N):
            if u >= lengths[r]:                          # lengths in descending order: the rest pad too
                break
            src, dst = x[u, r], XB[rows]
            for j in range(D):
                dst[j] = src[j]
            rows += 1
    offsets[stop - start] = rows
    return start, rows


@njit(**_JIT)
def loop_buffers(x, h, P, steps):
    """The work arrays of one call of a loop: ``h_in`` (the initial state, copied), ``h_out`` (N, Hp);
    ``A`` (N, P) the recurrent pre-activations and ``XW`` (steps*N, P) a block's input ones, in panel
    order; ``XB`` (steps*N, D + 1) a block's ``[x_t | 1]``; ``offsets`` (steps + 1,) its steps' first rows."""
    N, Hp = h.shape
    h_in = line_aligned(h, N, Hp)
    h_in[...] = h
    return (h_in, line_aligned(h, N, Hp), line_aligned(h, N, P), line_aligned(h, steps * N, P),
            np.ones((steps * N, x.shape[2] + 1), h.dtype), np.zeros(steps + 1, np.int64))


@njit(**_JIT)
def line_aligned(like, rows, cols):
    """An uninitialised (rows, cols) array of ``like``'s dtype starting on a 64-byte boundary
    (:mod:`rnnkit.kernels.aligned`: numba's own arrays start 32 bytes past one, and each 64-byte store of
    the gates and the product into them then spans two cache lines)."""
    extra = 64 // like.itemsize
    raw = np.empty(rows * cols + extra, like.dtype)
    start = (-raw.ctypes.data % 64) // raw.itemsize
    return raw[start:start + rows * cols].reshape((rows, cols))
