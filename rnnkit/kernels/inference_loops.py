r"""The serial inference loops of :mod:`rnnkit.kernels.inference`, and the same loops run on ranges of rows.

One call of :func:`lstm_forward`, :func:`gru_forward` or :func:`rnn_forward` runs
all T steps of one layer and direction for a batch, on one thread: per step the
input rows ``X_t = b + x_t W_ih^T`` (a block of steps at a time, :func:`step_inputs`),
the recurrent product ``A_t = h_{t-1} W_hh^T`` on the packed panels, then the gates
row by row (:mod:`rnnkit.kernels.inference_rows`).

Sequences of a batch never meet in a forward pass: row n of h_t depends on row n of
h_{t-1} and x_t alone. :func:`forward_rows` therefore gives each thread a range of
rows and runs the serial loop on it, start to end, with no synchronisation at all:

.. math::
    h_t[r_0{:}r_1] = \mathrm{cell}(x_t[r_0{:}r_1], h_{t-1}[r_0{:}r_1]) \quad \text{for each thread's } [r_0, r_1)

Each row's sums run in the same order as in the one-thread loop (a row's product does
not depend on the rows tiled with it), so the results are identical. The price: every
thread reads all of W_hh at every step, where a step shared by unit blocks
(:mod:`rnnkit.kernels.inference_threads`) reads half; :func:`rnnkit.kernels.inference.row_parts`
says when that price is worth paying.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .inference_rows import (active_rows, copy_units, direct_output, gru_gates, keep_units, loop_buffers, lstm_gates,
                             rnn_gates, stage_inputs)
from .inference_threads import GRU, LSTM, RNN     # the ``kind`` of forward_rows, as of the threaded loop
from .microgemm import VECTOR_BYTES, panel_product

__all__ = ["step_inputs", "lstm_forward", "gru_forward", "rnn_forward", "forward_rows", "row_splits",
           "LSTM", "GRU", "RNN"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)



@njit(**_JIT)
def step_inputs(vectors, Wx, XB, x, lengths, t, XW, first, chunks, offsets):
    """The rows (N, P) of ``b + x_t W_ih^T`` in panel order, for step t (its first :func:`active_rows`
    rows are computed; the rest belong to padded sequences and are never read).

    They are computed for a block of ``chunks[2]`` steps at a time (the block
    holding t, when ``first`` is not already its first step), as one product of
    the block's active rows: each chunk of W_ih's panels then serves every row of the
    block instead of one step's N, so a wide input (an upper layer of a
    bidirectional stack) is not streamed from memory again at every step.
    The bias is the last row of ``Wx``'s panels (``[W_ih | b]``) and ``XB``
    (steps*N, D + 1) holds the block's active inputs, step after step, with a
    last column of ones, so the product starts from zero: no pass writing the
    bias into ``XW`` and no tile reading it back. ``offsets`` (steps + 1,):
    where each step's rows start in the block. Returns ``(xw (N, P), first step of the block)``.
    """
    N = x.shape[1]
    start, rows = stage_inputs(x, lengths, t, XB, first, chunks[2], offsets)
    if rows > 0:
        panel_product(vectors, Wx, XB[:rows], XW[:rows], chunks[0], False)
    o = offsets[t - start]
    return XW[o:o + N], start


@njit(**_JIT)
def lstm_forward(Wp, Wx, b, x, h, c, lengths, reverse, y, chunks):
    """All T steps of ``x`` (T, N, D). ``Wp``, ``Wx``: panels of W_hh and ``[W_ih | b]``, ``b`` (P,) the
    bias in panel order (its size is P); ``h``, ``c`` (N, Hp) hold the initial state (padded layout) and
    end as the final one; ``y`` (T, N, H) receives the outputs (with no padding anywhere, :func:`direct_output`,
    each step's state is written there and read back from there); ``chunks``: the K chunks of the two
    products and the steps of one input block (:func:`step_inputs`)."""
    T, N = x.shape[:2]
    P = b.size
    Hp = h.shape[1]
    V = VECTOR_BYTES // h.itemsize
    B = P // (4 * V)
    h_in, h_out, A, XW, XB, offsets = loop_buffers(x, h, P, chunks[2])
    direct = direct_output(y, Hp, lengths)
    first = -1
    for s in range(T):
        t = T - 1 - s if reverse else s
        if direct:                                     # the state goes straight into the outputs
            h_out = y[t]
        xw, first = step_inputs(4, Wx, XB, x, lengths, t, XW, first, chunks, offsets)   # (N, P) x_t W_ih^T + b
        act = active_rows(lengths, t)
        if act > 0:
            panel_product(4, Wp, h_in[:act], A[:act], chunks[1], False)   # (act, P) h W_hh^T
        for n in range(N):
            if t >= lengths[n]:                        # padded: the state passes through
                keep_units(h_in, h_out, n, 0, Hp)
            else:
                lstm_gates(A, xw, c, h_out, n, 0, B, V)
        if not direct:
            copy_units(t, lengths, h_out, y[t], 0, Hp)
        h_in, h_out = h_out, h_in
    h[...] = h_in


@njit(**_JIT)
def gru_forward(Wp, Wx, b, b_hn, x, h, lengths, reverse, y, chunks):
    """All T steps; ``b`` (P,) is b_ih (+ b_hh on r, z) in panel order (the last row of ``Wx``), ``b_hn`` (Hp,)."""
    T, N = x.shape[:2]
    P = b.size
    Hp = h.shape[1]
    V = VECTOR_BYTES // h.itemsize
    B = P // (3 * V)
    h_in, h_out, A, XW, XB, offsets = loop_buffers(x, h, P, chunks[2])
    direct = direct_output(y, Hp, lengths)
    first = -1
    for s in range(T):
        t = T - 1 - s if reverse else s
        if direct:                                     # the state goes straight into the outputs
            h_out = y[t]
        xw, first = step_inputs(3, Wx, XB, x, lengths, t, XW, first, chunks, offsets)   # (N, P) x_t W_ih^T + b
        act = active_rows(lengths, t)
        if act > 0:
            panel_product(3, Wp, h_in[:act], A[:act], chunks[1], False)   # (act, P) h W_hh^T
        for n in range(N):
            if t >= lengths[n]:
                keep_units(h_in, h_out, n, 0, Hp)
            else:
                gru_gates(A, xw, b_hn, h_in, h_out, n, 0, B, V)
        if not direct:
            copy_units(t, lengths, h_out, y[t], 0, Hp)
        h_in, h_out = h_out, h_in
    h[...] = h_in


@njit(**_JIT)
def rnn_forward(Wp, Wx, b, x, h, lengths, reverse, relu, y, chunks):
    """All T steps of the Elman RNN; panels of 4V units (B, K, 4V)."""
    T, N = x.shape[:2]
    P = b.size
    Hp = h.shape[1]
    V = VECTOR_BYTES // h.itemsize
    B = P // (4 * V)
    h_in, h_out, A, XW, XB, offsets = loop_buffers(x, h, P, chunks[2])
    direct = direct_output(y, Hp, lengths)
    first = -1
    for s in range(T):
        t = T - 1 - s if reverse else s
        if direct:                                     # the state goes straight into the outputs
            h_out = y[t]
        xw, first = step_inputs(4, Wx, XB, x, lengths, t, XW, first, chunks, offsets)   # (N, P) x_t W_ih^T + b
        act = active_rows(lengths, t)
        if act > 0:
            panel_product(4, Wp, h_in[:act], A[:act], chunks[1], False)   # (act, P) h W_hh^T
        for n in range(N):
            if t >= lengths[n]:
                keep_units(h_in, h_out, n, 0, Hp)
            else:
                rnn_gates(A, xw, h_out, n, 0, B, V, relu)
        if not direct:
            copy_units(t, lengths, h_out, y[t], 0, Hp)
        h_in, h_out = h_out, h_in
    h[...] = h_in


@njit(parallel=True, **_JIT)
def forward_rows(kind, Wp, Wx, b, b_hn, x, h, c, lengths, reverse, relu, y, chunks, splits):
    """The serial loop of ``kind`` (LSTM, GRU, RNN) on each range of rows ``splits[w] <= n < splits[w+1]``,
    one range per iteration of a parallel loop: the arguments of :func:`lstm_forward`, :func:`gru_forward`
    and :func:`rnn_forward` (those a kind does not use may be any array of the dtype); ``lengths`` (N,)."""
    for w in prange(splits.size - 1):
        r0, r1 = splits[w], splits[w + 1]
        if kind == LSTM:
            lstm_forward(Wp, Wx, b, x[:, r0:r1], h[r0:r1], c[r0:r1], lengths[r0:r1], reverse, y[:, r0:r1], chunks)
        elif kind == GRU:
            gru_forward(Wp, Wx, b, b_hn, x[:, r0:r1], h[r0:r1], lengths[r0:r1], reverse, y[:, r0:r1], chunks)
        else:
            rnn_forward(Wp, Wx, b, x[:, r0:r1], h[r0:r1], lengths[r0:r1], reverse, relu, y[:, r0:r1], chunks)


@njit(**_JIT)
def row_splits(lengths, parts, min_rows=1):
    """``splits`` (parts + 1,): ``parts`` contiguous ranges of rows with about equal work, the steps they run,
    and each at least ``min_rows`` rows (``N // parts`` when there are fewer, and at least one). ``lengths`` (N,) in
    descending order, so a range of long sequences has fewer rows than one of short ones, but never fewer
    than ``min_rows``: every step costs a thread a read of all of W_hh, whatever its rows. Each boundary is
    the row boundary nearest an even share of the steps, then moved to respect the minimum."""
    N = lengths.size
    parts = max(1, min(parts, N))
    least = max(1, min(min_rows, N // parts))
    work = np.zeros(N + 1, np.int64)                                        # (N + 1,) steps before row n
    for n in range(N):
        work[n + 1] = work[n] + lengths[n]
    splits = np.zeros(parts + 1, np.int64)
    splits[parts] = N
    n = 0
    for p in range(1, parts):
        goal = work[N] * p / parts
        while n < N and work[n] < goal:                                     # first boundary at or past the goal
            n += 1
        cut = n - 1 if n > 0 and goal - work[n - 1] < work[n] - goal else n    # the nearer one
        splits[p] = min(max(cut, splits[p - 1] + least), N - (parts - p) * least)
    return splits
