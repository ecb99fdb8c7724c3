r"""The inference loops of :mod:`rnnkit.kernels.inference` with each step shared among threads.

The same equations, products and gates; only the work of a step is divided.
The panels (one per block of V hidden units, :mod:`rnnkit.kernels.microgemm`)
are split into ``parts`` contiguous ranges ``bounds[q] <= blk < bounds[q+1]``.
Per step t, the thread that owns part q computes, for its blocks only,

.. math::
    A_t[:, q] = h_{t-1} W_{hh}[q]^T, \qquad X_t[:, q] = b[q] + x_t W_{ih}[q]^T \ \text{(once per input block)}

and the gates of its units. Its units of h_t depend on all of h_{t-1} and on
nothing another part writes in the same step, so a step needs one synchronisation:
every part's units of h_t written before any part reads h_t. Each thread runs all
T steps of its part inside one ``prange`` iteration and meets the others at a
spinning barrier after each step (:mod:`rnnkit.kernels.spin`), which costs a
fraction of ending and restarting the parallel loop at every step (a step of
config D's LSTM is about 8 us per thread). Each thread stages the rows of
``[x_t | 1]`` of an input block into its own buffer. A serial step of config B
(N=64, H=512) is milliseconds, so two threads nearly halve it, and each thread
streams only its part of W_hh; on small steps the synchronisation costs more than it
saves, and :func:`rnnkit.kernels.inference.scan_forward` keeps those serial. A batch of
enough rows is split by rows instead (:mod:`rnnkit.kernels.inference_loops`): no barrier
and no state crossing between cores, which here cost more than the barrier itself (a
two-thread tanh RNN step at config A: 26 us with each thread reading the half of h the
other core wrote, 18 us with private copies of h, 16 us with no barrier either, 28 us on
one thread; 2026-12-03, benchmarks/inference_shared_state.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import spin
from .inference_rows import (active_rows, copy_units, direct_output, gru_gates, keep_units, line_aligned, lstm_gates,
                             rnn_gates, stage_inputs)
from .microgemm import VECTOR_BYTES, panel_product

__all__ = ["LSTM", "GRU", "RNN", "forward", "split_blocks"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)

LSTM, GRU, RNN = 0, 1, 2
"""The ``kind`` argument of :func:`forward`."""


def split_blocks(blocks: int, parts: int) -> np.ndarray:
    """``bounds`` (parts + 1,): ``blocks`` unit blocks in ``parts`` contiguous ranges, sizes differing by at most 1."""
    parts = max(1, min(parts, blocks))
    return np.array([(p * blocks) // parts for p in range(parts + 1)], np.int64)


@njit(inline="always")
def _part_step(kind, q, Wp, Wx, b_hn, x, c, lengths, relu, y, chunks, bounds, t, rows, XB, o, act, h_in,
               h_out, A, XW, direct):
    """Step t of part q: its input products when a block was just staged (``rows`` > 0), its recurrent
    product, its gates (or the padded rows' pass-through) and its units of ``y[t]``."""
    N = x.shape[1]
    V = VECTOR_BYTES // h_in.itemsize
    G = 3 if kind == GRU else 4
    GV = G * V
    U = GV if kind == RNN else V                        # units per block
    b0, b1 = bounds[q], bounds[q + 1]
    if rows > 0:
        panel_product(G, Wx[b0:b1], XB[:rows], XW[:rows, b0 * GV:b1 * GV], chunks[0], False)
    if act > 0:
        panel_product(G, Wp[b0:b1], h_in[:act], A[:act, b0 * GV:b1 * GV], chunks[1], False)
    xw = XW[o:o + N]
    for n in range(N):
        if t >= lengths[n]:                             # padded: the state passes through
            keep_units(h_in, h_out, n, b0 * U, b1 * U)
        elif kind == LSTM:
            lstm_gates(A, xw, c, h_out, n, b0, b1, V)
        elif kind == GRU:
            gru_gates(A, xw, b_hn, h_in, h_out, n, b0, b1, V)
        else:
            rnn_gates(A, xw, h_out, n, b0, b1, V, relu)
    if not direct:
        copy_units(t, lengths, h_out, y[t], b0 * U, b1 * U)


@njit(parallel=True, **_JIT)
def forward(kind, Wp, Wx, b_hn, x, h, c, lengths, reverse, relu, y, chunks, bounds):
    """All T steps with each step's blocks split by ``bounds``: :func:`rnnkit.kernels.inference_loops.lstm_forward`
    (``kind`` LSTM, ``c`` (N, Hp) the cell state), ``gru_forward`` (GRU, ``b_hn`` (Hp,)) and ``rnn_forward``
    (RNN, ``relu``); the arguments a kind does not use may be any array of the dtype.
    ``h`` (and ``c``) hold the initial state and end as the final one."""
    T, N, D = x.shape
    Hp = h.shape[1]
    V = VECTOR_BYTES // h.itemsize
    GV = (3 if kind == GRU else 4) * V
    U = GV if kind == RNN else V
    P = Wp.shape[0] * GV
    steps = chunks[2]
    parts = bounds.size - 1
    L = spin.LINE
    buf0, buf1 = line_aligned(h, N, Hp), line_aligned(h, N, Hp)    # (N, Hp) the state, twice
    buf0[...] = h
    A = line_aligned(h, N, P)                           # (N, P) recurrent pre-activations, panel order
    XW = line_aligned(h, steps * N, P)                  # (steps*N, P) a block's input ones
    XB = np.ones((parts, steps * N, D + 1), h.dtype)    # per thread: a block's [x_t | 1]
    offsets = np.zeros((parts, steps + 1), np.int64)    # per thread: where each step's rows start
    flags = np.zeros(parts * L, np.int64)               # per part: steps done
    claims = np.zeros(parts * L, np.int64)              # per part: 1 + the thread running it, 0 unclaimed
    direct = direct_output(y, Hp, lengths)
    for w in prange(parts):
        if spin.claim(claims, w, w + 1):
            h_in, h_out = buf0, buf1
            first = -1
            block_rows = 0
            for s in range(T):
                t = T - 1 - s if reverse else s
                if direct:                              # the state goes straight into the outputs
                    h_out = y[t]
                first, rows = stage_inputs(x, lengths, t, XB[w], first, steps, offsets[w])
                if rows >= 0:
                    block_rows = rows
                o = offsets[w, t - first]
                act = active_rows(lengths, t)
                for q in range(parts):
                    if spin.load_acquire(claims.ctypes.data + q * L * 8) == w + 1:
                        _part_step(kind, q, Wp, Wx, b_hn, x, c, lengths, relu, y, chunks, bounds, t, rows,
                                   XB[w], o, act, h_in, h_out, A, XW, direct)
                        spin.store_release(flags.ctypes.data + q * L * 8, s + 1)
                for q in range(parts):                  # the barrier: every part has written h_t
                    while not spin.wait_for(flags, q, s + 1, s == 0):
                        if spin.claim(claims, q, w + 1):    # nobody runs part q: step 0 of it here
                            _part_step(kind, q, Wp, Wx, b_hn, x, c, lengths, relu, y, chunks, bounds, t,
                                       block_rows, XB[w], o, act, h_in, h_out, A, XW, direct)
                            spin.store_release(flags.ctypes.data + q * L * 8, 1)
                h_in, h_out = h_out, h_in
            for q in range(parts):                      # the final state: each part's own units
                if spin.load_acquire(claims.ctypes.data + q * L * 8) == w + 1:
                    for n in range(N):
                        hn, src = h[n], h_in[n]
                        for j in range(bounds[q] * U, bounds[q + 1] * U):
                            hn[j] = src[j]
