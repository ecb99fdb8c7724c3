r"""Inference scans: forward only, nothing kept for backward, the input product hoisted out of the time loop.

The training loops (:mod:`rnnkit.kernels.lstm`, ``gru``, ``rnn``) multiply
``W_ih @ x_t`` at every step, next to the recurrent product, because backward
needs the step's inputs in one layout anyway. Without backward that small
product (K = D, often 32-128) is the least efficient part of a step. Here the
time axis is cut into chunks of ``Tc`` steps, and each chunk's input
pre-activations come from ONE product, at the size where BLAS runs near its peak:

.. math::
    U_{(G H,\ T_c N)} = W_{ih\,(G H,\ D)}\ X_c^T{}_{(D,\ T_c N)}
    \qquad\text{(column } (t - t_0) N + n \text{ is step t of sequence n)}

Each step copies its (G*H, N) block of ``U`` with the bias into a contiguous
block, adds only the recurrent product, :math:`a = U_t + b + W_{hh} h` (GRU
keeps the two apart, as its reset gate multiplies the recurrent part alone), and
runs the training loops' own gate pass (``forward_step`` of :mod:`rnnkit.kernels.lstm`,
``gru``, ``rnn``: the equations of :mod:`rnnkit.nn.cells`). States stay feature-major (H, N) as in the
training loops, so the recurrent product splits its large G*H dimension across
BLAS threads. The chunk buffer is at most :data:`CHUNK_NUMBERS` numbers (256 KiB
in float32, so it stays in L2 beside the weights), and memory does not grow with T.

Variable lengths follow the reference: a padded step keeps the state and
outputs zero. The NumPy scanner (:mod:`rnnkit.nn.scan`) stays the reference these
loops are tested against.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .gru import forward_step as gru_step
from .lstm import forward_step as lstm_step
from .primitives import double_buffer, fill_rows, keep_padded, loop_sizes, mm, write_output
from .rnn import forward_step as rnn_step

__all__ = ["chunk_steps", "block_units", "block_order", "scan_forward", "lstm", "gru", "rnn", "CHUNK_NUMBERS",
           "SMALL_PRODUCT"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)

CHUNK_NUMBERS = 2 ** 16
"""Numbers in one chunk of input pre-activations (G*H x Tc*N): 256 KiB in float32, well inside L2."""


def chunk_steps(T: int, GH: int, N: int) -> int:
    """Steps per chunk: as many as fit in :data:`CHUNK_NUMBERS`, at least one, at most T."""
    return max(1, min(T, CHUNK_NUMBERS // max(1, GH * N)))


@njit(**_JIT)
def row_length(cols):
    """A row length >= ``cols`` whose byte stride (float32) is an odd multiple of 64 bytes.

    Rows a power-of-two multiple of 4 KiB apart all fall into the same cache sets,
    and a step's (G*H, N) block, one short piece of every row, would evict itself.
    """
    n = (cols + 15) // 16
    return 16 * (n + 1 - n % 2)


@njit(**_JIT)
def take_block(dst, u, r0, off, b):
    """``dst[r, n] = u[r0 + r, off + n] + b[r]``: one step's columns of the chunk, biased, into a contiguous (R, N) block.

    The gate arithmetic then runs the training loops' flat passes (one vectorised loop
    over R*N entries); run over the strided chunk directly, it measured several times slower.
    """
    R, N = dst.shape
    for r in range(R):
        br = b[r]
        for n in range(N):
            dst[r, n] = u[r0 + r, off + n] + br


@njit(**_JIT)
def chunk_bounds(q, n_chunks, chunk, T, reverse):
    """Steps ``[t0, t1)`` of the q-th chunk processed (the chunks run backwards in reverse)."""
    qq = n_chunks - 1 - q if reverse else q
    return qq * chunk, min(T, qq * chunk + chunk)


@njit(**_JIT)
def lstm(gemm, W_hh, W_ih, b, xT, h, c, lengths, reverse, y, chunk, B):
    """All T steps; ``xT`` (D, T*N) is x transposed (column t*N + n), ``h``, ``c`` (H, N) start and end states.

    ``y`` (T, N, H) receives the outputs. ``W_hh``, ``W_ih`` and ``b`` = b_ih + b_hh
    have their rows in unit-block order (:func:`block_order` with ``B`` units per block).
    """
    T = y.shape[0]
    H, N, HN, one, first_padded = loop_sizes(h, lengths)
    u = np.empty((4 * H, row_length(chunk * N)), h.dtype)             # one chunk's input products
    a = np.empty(4 * B * N, h.dtype)                                    # one block's gates
    h_in, h_out = double_buffer(h)
    c_in, c_out = double_buffer(c)
    n_chunks = (T + chunk - 1) // chunk
    for q in range(n_chunks):
        t0, t1 = chunk_bounds(q, n_chunks, chunk, T, reverse)
        mm(gemm, False, W_ih, xT[:, t0 * N:t1 * N], one, one - one, u[:, :(t1 - t0) * N])   # U = W_ih X_c^T
        for s in range(t1 - t0):
            t = t1 - 1 - s if reverse else t0 + s
            hi, ho, ci, co = h_in.reshape(HN), h_out.reshape(HN), c_in.reshape(HN), c_out.reshape(HN)
            for j0 in range(0, H, B):                                   # B hidden units: rows [i, f, g, o]
                j1 = min(H, j0 + B)
                r0, r1, m = 4 * j0, 4 * j1, (j1 - j0) * N
                blk = a[:4 * m].reshape(r1 - r0, N)
                take_block(blk, u, r0, (t - t0) * N, b[r0:r1])       # a = U_t + b
                mm(gemm, False, W_hh[r0:r1], h_in, one, one, blk)       #   + W_hh (4B, H) @ h (H, N)
                lstm_step(a[:4 * m], ci[j0 * N:j1 * N], ho[j0 * N:j1 * N], co[j0 * N:j1 * N])
            if t >= first_padded:                                        # padded sequences keep their state
                keep_padded(t, lengths, h_out, h_in)
                keep_padded(t, lengths, c_out, c_in)
            write_output(t, lengths, first_padded, h_out, y[t])
            h_in, h_out = h_out, h_in
            c_in, c_out = c_out, c_in
    h[...] = h_in
    c[...] = c_in


@njit(**_JIT)
def gru(gemm, W_hh, W_ih, b_ih, b_hh, xT, h, lengths, reverse, y, chunk, B):
    """All T steps of the GRU (arguments as :func:`lstm`; the biases apart: the reset gate multiplies b_hn)."""
    T = y.shape[0]
    H, N, HN, one, first_padded = loop_sizes(h, lengths)
    u = np.empty((3 * H, row_length(chunk * N)), h.dtype)             # one chunk's input products
    a = np.empty(3 * B * N, h.dtype)
    u_t = np.empty(3 * B * N, h.dtype)
    h_in, h_out = double_buffer(h)
    n_chunks = (T + chunk - 1) // chunk
    for q in range(n_chunks):
        t0, t1 = chunk_bounds(q, n_chunks, chunk, T, reverse)
        mm(gemm, False, W_ih, xT[:, t0 * N:t1 * N], one, one - one, u[:, :(t1 - t0) * N])   # U = W_ih X_c^T
        for s in range(t1 - t0):
            t = t1 - 1 - s if reverse else t0 + s
            hi, ho = h_in.reshape(HN), h_out.reshape(HN)
            for j0 in range(0, H, B):                                   # B hidden units: rows [r, z, n]
                j1 = min(H, j0 + B)
                r0, r1, m = 3 * j0, 3 * j1, (j1 - j0) * N
                take_block(u_t[:3 * m].reshape(r1 - r0, N), u, r0, (t - t0) * N, b_ih[r0:r1])   # U_t + b_ih
                blk = a[:3 * m].reshape(r1 - r0, N)
                fill_rows(blk, b_hh[r0:r1])
                mm(gemm, False, W_hh[r0:r1], h_in, one, one, blk)       # W_hh (3B, H) @ h (H, N) + b_hh
                gru_step(a[:3 * m], u_t[:3 * m], hi[j0 * N:j1 * N], ho[j0 * N:j1 * N])
            if t >= first_padded:
                keep_padded(t, lengths, h_out, h_in)
            write_output(t, lengths, first_padded, h_out, y[t])
            h_in, h_out = h_out, h_in
    h[...] = h_in


@njit(**_JIT)
def rnn(gemm, W_hh, W_ih, b, xT, h, lengths, reverse, relu, y, chunk, B):
    """All T steps of the Elman RNN (arguments as :func:`lstm`; ``b`` = b_ih + b_hh)."""
    T = y.shape[0]
    H, N, HN, one, first_padded = loop_sizes(h, lengths)
    u = np.empty((H, row_length(chunk * N)), h.dtype)                 # one chunk's input products
    a = np.empty(B * N, h.dtype)
    h_in, h_out = double_buffer(h)
    n_chunks = (T + chunk - 1) // chunk
    for q in range(n_chunks):
        t0, t1 = chunk_bounds(q, n_chunks, chunk, T, reverse)
        mm(gemm, False, W_ih, xT[:, t0 * N:t1 * N], one, one - one, u[:, :(t1 - t0) * N])   # U = W_ih X_c^T
        for s in range(t1 - t0):
            t = t1 - 1 - s if reverse else t0 + s
            ho = h_out.reshape(HN)
            for j0 in range(0, H, B):
                j1 = min(H, j0 + B)
                m = (j1 - j0) * N
                blk = a[:m].reshape(j1 - j0, N)
                take_block(blk, u, j0, (t - t0) * N, b[j0:j1])       # a = U_t + b
                mm(gemm, False, W_hh[j0:j1], h_in, one, one, blk)       #   + W_hh (B, H) @ h (H, N)
                rnn_step(a[:m], ho[j0 * N:j1 * N], relu)
            if t >= first_padded:
                keep_padded(t, lengths, h_out, h_in)
            write_output(t, lengths, first_padded, h_out, y[t])
            h_in, h_out = h_out, h_in
    h[...] = h_in


SMALL_PRODUCT = 10 ** 6
"""M*K*N up to which OpenBLAS multiplies without packing its operands (its "small matrix" kernels)."""


def block_units(H: int, G: int, N: int, threads: int) -> int:
    """Hidden units per block of the recurrent product: ``H`` (one product) or fewer, so that each block's
    product (G*B rows) is small enough for OpenBLAS's unpacked kernels.

    A whole (G*H, H) x (H, N) product makes OpenBLAS copy (pack) W_hh at every step:
    a third of the product's time at configs A and D (measured with ``perf``). Its
    kernels for small products read the operands in place, so blocks of rows below
    :data:`SMALL_PRODUCT` skip the copy. With several BLAS threads the one large
    product is kept, since OpenBLAS runs small products on one thread.
    """
    if threads > 1 or G * H * H * N <= SMALL_PRODUCT:
        return H
    B = 1
    while 2 * B < H and G * (2 * B) * H * N <= SMALL_PRODUCT:
        B *= 2
    return B if B >= 4 else H                      # tiny blocks would cost more in calls than the copy saves


def block_order(H: int, G: int, B: int) -> np.ndarray:
    """Row order putting the G gate rows of each block of B hidden units together: [gate 0 units j0..j1, gate 1 ...]."""
    return np.concatenate([np.arange(g * H + j0, g * H + min(H, j0 + B)) for j0 in range(0, H, B) for g in range(G)])


def scan_forward(kernel: str, x, state0, W_ih, W_hh, b_ih, b_hh, lengths, reverse, loop, threads: int = 1):
    """Forward-only scan of ``x`` (T, N, D) with the named kernel; returns ``(y, state_T)``.

    Same results as :func:`rnnkit.nn.scan.scan_forward` with ``need_cache=False``.
    ``loop(fn, dtype)`` gives the compiled loop and its gemm address (or the
    Python loop and None), as :func:`rnnkit.kernels.fused_scan._loop` does;
    ``threads`` is the BLAS thread count (it decides :func:`block_units`).
    The weights' rows are put in unit-block order here, once per call.
    """
    T, N, D = x.shape
    GH, H = W_hh.shape
    G = GH // H
    dtype = x.dtype
    lens = np.full(N, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    xT = np.ascontiguousarray(x.reshape(T * N, D).T)                   # (D, T*N): column t*N + n
    y = np.empty((T, N, H), dtype)                                      # (T, N, H)
    states = [np.array(s.T, order="C") for s in state0]                # (H, N) copies, end as the final state
    zeros = np.zeros(GH, dtype)
    b_ih = zeros if b_ih is None else b_ih
    b_hh = zeros if b_hh is None else b_hh
    chunk = chunk_steps(T, GH, N)
    B = block_units(H, G, N, threads)
    order = block_order(H, G, B)
    W_hh, W_ih = W_hh[order], W_ih[order]                              # (G*H, H), (G*H, D) in block order
    if kernel == "lstm":
        fn, gemm = loop(lstm, dtype)
        fn(gemm, W_hh, W_ih, (b_ih + b_hh)[order], xT, states[0], states[1], lens, reverse, y, chunk, B)
    elif kernel == "gru":
        fn, gemm = loop(gru, dtype)
        fn(gemm, W_hh, W_ih, b_ih[order], b_hh[order], xT, states[0], lens, reverse, y, chunk, B)
    else:
        fn, gemm = loop(rnn, dtype)
        fn(gemm, W_hh, W_ih, (b_ih + b_hh)[order], xT, states[0], lens, reverse, kernel == "rnn_relu", y, chunk, B)
    return y, tuple(np.ascontiguousarray(s.T) for s in states)         # (N, H) each
