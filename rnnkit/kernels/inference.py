r"""Forward-only loops for inference: no cache, both products on weights packed once, the gates fused after them.

Same equations and results (up to the order of float sums) as :mod:`rnnkit.nn.cells`
through the scanner, for ``need_cache=False`` (evaluation, generation, serving).
Per layer and direction, per step t, in *panel order* (for each block of V hidden
units, the G gate rows of those units side by side; :mod:`rnnkit.kernels.microgemm`):

.. math::
    X_t = b + x_t W_{ih}^T \quad (N, P), \qquad A_t = h_{t-1} W_{hh}^T \quad (N, P)

both with the register-tiled product on packed panels, then per row the gates
(float32: explicit vectors, :mod:`rnnkit.kernels.vector_gates`):

- LSTM (i, f, g, o): ``a = X_t + A_t``; ``c' = f c + i g``, ``h' = o tanh(c')``, with ``b = b_ih + b_hh``;
- GRU (r, z, n): ``r, z = sigmoid(X_t + A_t)`` on their rows, ``n = tanh(X_n + r (A_n + b_hn))``,
  ``h' = n + z (h - n)``, with ``b = b_ih + b_hh`` on the r, z rows and ``b_in`` on n;
- RNN: ``h' = phi(X_t + A_t)`` (tanh or relu), with blocks of 4V units.

P = G * Hp with Hp = H rounded up to whole blocks; the padding units have zero
weights and are never read back. Variable lengths: where step t pads sequence n,
its state passes through and its output is zero (the reference's mask).

What it saves against the training loop (:mod:`rnnkit.kernels.lstm`): nothing is
stored for backward, no per-step transposes, and the weights are packed once per
call (and remembered while they do not change, :func:`packed`) instead of by
OpenBLAS on every step. A single step of a few sequences (generation) runs its products
on the weights as they are (:func:`rnnkit.kernels.inference_step.one_step`).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numba import njit

from . import microgemm
from .microgemm import VECTOR_BYTES, panel_product
from .inference_step import one_step
from .primitives import sigmoid, tanh
from .vector_gates import gru_row, lstm_row, rnn_row

__all__ = ["KERNELS", "supports", "scan_forward"]

KERNELS = ("rnn_tanh", "rnn_relu", "lstm", "gru")

_JIT = dict(cache=True, error_model="numpy", nogil=True)


def supports(kernel, dtype) -> bool:
    """Whether a plain cell with this ``fused_kernel`` and dtype has an inference loop here."""
    return kernel in KERNELS and np.dtype(dtype) in (np.float32, np.float64)


@njit(**_JIT)
def copy_output(t, lengths, h, y_t):
    """``y_t`` (N, H) = h[:, :H] (the state in padded layout (N, Hp)), zero in the rows that step t pads."""
    N, H = y_t.shape
    zero = h.dtype.type(0)
    for n in range(N):                  # explicit loops: numba's slice assignment costs microseconds a call
        hn, yn = h[n], y_t[n]
        if t < lengths[n]:
            for j in range(H):
                yn[j] = hn[j]
        else:
            for j in range(H):
                yn[j] = zero


@njit(**_JIT)
def keep_row(h_in, h_out, n):
    """A padded step: row n of the state passes through."""
    src, dst = h_in[n], h_out[n]
    for j in range(src.shape[0]):
        dst[j] = src[j]


@njit(**_JIT)
def active_rows(lengths, t):
    """How many sequences step t does not pad: with ``lengths`` in descending order (:func:`scan_forward`
    sorts the batch), they are the first rows, and the products of the step run on those alone."""
    n = 0
    while n < lengths.size and t < lengths[n]:
        n += 1
    return n


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
    T, N, D = x.shape
    steps = chunks[2]
    start = (t // steps) * steps
    if start != first:
        stop = min(T, start + steps)
        rows = 0
        for u in range(start, stop):
            offsets[u - start] = rows
            for r in range(active_rows(lengths, u)):
                src, dst = x[u, r], XB[rows]
                for j in range(D):
                    dst[j] = src[j]
                rows += 1
        offsets[stop - start] = rows
        if rows > 0:
            panel_product(vectors, Wx, XB[:rows], XW[:rows], chunks[0], False)
    o = offsets[t - start]
    return XW[o:o + N], start


@njit(**_JIT)
def _direct(y, Hp, lengths):
    """Whether the loops can write each step's state straight into ``y[t]`` and read it back from there
    (no padding: ``H == Hp`` and no step pads any sequence), skipping the copy into the outputs."""
    return y.shape[2] == Hp and (lengths.size == 0 or lengths.min() >= y.shape[0])


@njit(**_JIT)
def lstm_forward(Wp, Wx, b, x, h, c, lengths, reverse, y, chunks):
    """All T steps of ``x`` (T, N, D). ``Wp``, ``Wx``: panels of W_hh and ``[W_ih | b]``, ``b`` (P,) the
    bias in panel order (its size is P); ``h``, ``c`` (N, Hp) hold the initial state (padded layout) and
    end as the final one; ``y`` (T, N, H) receives the outputs (with no padding anywhere, :func:`_direct`,
    each step's state is written there and read back from there); ``chunks``: the K chunks of the two
    products and the steps of one input block (:func:`step_inputs`)."""
    T, N = x.shape[:2]
    P = b.size
    Hp = h.shape[1]
    V = VECTOR_BYTES // h.itemsize
    B = P // (4 * V)
    h_in, h_out = h.copy(), np.empty_like(h)
    A = np.empty((N, P), h.dtype)                      # (N, P) recurrent pre-activations, panel order
    XW = np.empty((chunks[2] * N, P), h.dtype)         # (steps*N, P) input pre-activations of a block
    XB = np.ones((chunks[2] * N, x.shape[2] + 1), h.dtype)     # (steps*N, D + 1) a block's [x_t | 1]
    offsets = np.zeros(chunks[2] + 1, np.int64)
    direct = _direct(y, Hp, lengths)
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
                keep_row(h_in, h_out, n)
                continue
            if h.itemsize == 4:                                    # float32: the vector gates
                lstm_row(A.ctypes.data + n * P * 4, xw.ctypes.data + n * P * 4, c.ctypes.data + n * Hp * 4,
                         h_out.ctypes.data + n * Hp * 4, np.int64(B))
                continue
            a, xr, cr, hr = A[n], xw[n], c[n], h_out[n]             # one slice per row: slices cost atomics
            for blk in range(B):
                j, u = blk * 4 * V, blk * V
                for l in range(V):
                    i = sigmoid(xr[j + l] + a[j + l])
                    f = sigmoid(xr[j + V + l] + a[j + V + l])
                    g = tanh(xr[j + 2 * V + l] + a[j + 2 * V + l])
                    o = sigmoid(xr[j + 3 * V + l] + a[j + 3 * V + l])
                    c_new = f * cr[u + l] + i * g
                    cr[u + l] = c_new
                    hr[u + l] = o * tanh(c_new)
        if not direct:
            copy_output(t, lengths, h_out, y[t])
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
    h_in, h_out = h.copy(), np.empty_like(h)
    A = np.empty((N, P), h.dtype)
    XW = np.empty((chunks[2] * N, P), h.dtype)
    XB = np.ones((chunks[2] * N, x.shape[2] + 1), h.dtype)
    offsets = np.zeros(chunks[2] + 1, np.int64)
    direct = _direct(y, Hp, lengths)
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
                keep_row(h_in, h_out, n)
                continue
            if h.itemsize == 4:
                gru_row(A.ctypes.data + n * P * 4, xw.ctypes.data + n * P * 4, b_hn.ctypes.data,
                        h_in.ctypes.data + n * Hp * 4, h_out.ctypes.data + n * Hp * 4, np.int64(B))
                continue
            a, xr, hp, hr = A[n], xw[n], h_in[n], h_out[n]
            for blk in range(B):
                j, u = blk * 3 * V, blk * V
                for l in range(V):
                    r = sigmoid(xr[j + l] + a[j + l])
                    z = sigmoid(xr[j + V + l] + a[j + V + l])
                    m = tanh(xr[j + 2 * V + l] + r * (a[j + 2 * V + l] + b_hn[u + l]))
                    hr[u + l] = m + z * (hp[u + l] - m)
        if not direct:
            copy_output(t, lengths, h_out, y[t])
        h_in, h_out = h_out, h_in
    h[...] = h_in


@njit(**_JIT)
def rnn_forward(Wp, Wx, b, x, h, lengths, reverse, relu, y, chunks):
    """All T steps of the Elman RNN; panels of 4V units (B, K, 4V)."""
    T, N = x.shape[:2]
    P = b.size
    Hp = h.shape[1]
    h_in, h_out = h.copy(), np.empty_like(h)
    A = np.empty((N, P), h.dtype)
    XW = np.empty((chunks[2] * N, P), h.dtype)
    XB = np.ones((chunks[2] * N, x.shape[2] + 1), h.dtype)
    offsets = np.zeros(chunks[2] + 1, np.int64)
    direct = _direct(y, Hp, lengths)
    first = -1
    zero = h.dtype.type(0)
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
                keep_row(h_in, h_out, n)
                continue
            if h.itemsize == 4:
                rnn_row(A.ctypes.data + n * P * 4, xw.ctypes.data + n * P * 4, h_out.ctypes.data + n * P * 4,
                        np.int64(P // (VECTOR_BYTES // 4)), np.int64(relu))
                continue
            a, xr, hr = A[n], xw[n], h_out[n]
            if relu:
                for j in range(P):
                    hr[j] = max(xr[j] + a[j], zero)
            else:
                for j in range(P):
                    hr[j] = tanh(xr[j] + a[j])
        if not direct:
            copy_output(t, lengths, h_out, y[t])
        h_in, h_out = h_out, h_in
    h[...] = h_in


def panel_rows(kernel, H, dtype):
    """``(src, gates, width)``: for each panel-order row, the row of a (G*H, .) weight it takes (-1: zero).

    Panel order puts, for each block of ``width`` units, the G gate rows of those
    units side by side: row ``(b*G + g)*width + l`` is ``g*H + b*width + l``.
    """
    V = microgemm.lanes(dtype)
    gates, width = {"lstm": (4, V), "gru": (3, V)}.get(kernel, (1, 4 * V))
    B = -(-H // width)
    b, g, l = np.meshgrid(np.arange(B), np.arange(gates), np.arange(width), indexing="ij")   # (B, G, width)
    unit = b * width + l
    src = np.where(unit < H, g * H + unit, -1).reshape(-1)                                 # (B*G*width,)
    return src, gates, width


def _rows(a, src):
    """``a`` with its first axis in panel order (zero where ``src`` is -1)."""
    out = np.zeros((src.size,) + a.shape[1:], a.dtype)
    keep = src >= 0
    out[keep] = a[src[keep]]
    return out


def pack(kernel, W_hh, W_ih, b):
    """``(Wp (B, H, GW), Wx (B, D + 1, GW), b (P,))``: W_hh and ``[W_ih | b]`` as panels, the bias in panel order."""
    GH, H = W_hh.shape
    src, gates, width = panel_rows(kernel, H, W_hh.dtype)
    b_p = np.zeros(src.size, b.dtype)
    b_p[src >= 0] = b[src[src >= 0]]
    GW = gates * width
    W_ihb = np.concatenate([W_ih, b[:, None]], axis=1)                    # (G*H, D + 1) [W_ih | b]
    return microgemm.pack_panels(W_hh, src, GW), microgemm.pack_panels(W_ihb, src, GW), b_p


_packed_cache: "OrderedDict[tuple, tuple]" = OrderedDict()
CACHE_ENTRIES = 32
ONE_STEP_ROWS = 16
"""A single step of fewer sequences runs on the weights as they are (:func:`rnnkit.kernels.inference_step.one_step`): checking the
packed copy reads the weights once more, which only a batch of rows (beams, a batch of sentences) repays."""
INPUT_ROWS, INPUT_BYTES = 256, 2 << 20
"""The input product runs over blocks of about INPUT_ROWS rows (steps x batch), its output at most INPUT_BYTES."""


def packed(kernel, W_hh, W_ih, b):
    """:func:`pack`, remembered for the last :data:`CACHE_ENTRIES` weights seen.

    A hit needs the same arrays (address, shape, dtype) holding exactly the same
    values as when they were packed: the cache keeps a copy and compares it, so
    weights changed in place (an optimiser step) are packed again. Comparing
    reads the weights once; packing reads and scatters them, which costs as
    much as a few steps of a short sequence, and every step of generation.
    """
    key = (kernel, W_hh.dtype.str, W_hh.shape, W_ih.shape, W_hh.ctypes.data, W_ih.ctypes.data)
    hit = _packed_cache.get(key)
    if hit is not None and all(np.array_equal(a, kept) for a, kept in zip((W_hh, W_ih, b), hit[0])):
        _packed_cache.move_to_end(key)
        return hit[1]
    result = pack(kernel, W_hh, W_ih, b)
    _packed_cache[key] = ((W_hh.copy(), W_ih.copy(), b.copy()), result)
    while len(_packed_cache) > CACHE_ENTRIES:
        _packed_cache.popitem(last=False)
    return result


def scan_forward(kernel, x, state0, W_ih, W_hh, b_ih, b_hh, lengths, reverse):
    """``(y (T, N, H), state_T)`` of one layer and direction; the arguments of :func:`rnnkit.nn.scan.scan_forward`."""
    dtype = x.dtype
    x, W_ih, W_hh, b_ih, b_hh = (None if a is None else np.ascontiguousarray(a, dtype=dtype)
                                 for a in (x, W_ih, W_hh, b_ih, b_hh))
    T, N, D = x.shape
    GH, H = W_hh.shape
    zeros = np.zeros(GH, dtype)
    b_ih = zeros if b_ih is None else b_ih
    b_hh = zeros if b_hh is None else b_hh
    if kernel == "gru":
        b = np.concatenate([b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:]])    # r, z: the biases only appear summed
    else:
        b = b_ih + b_hh
    if T == 1 and N < ONE_STEP_ROWS:                 # generation: nothing packed or checked
        return one_step(kernel, x[0], state0, W_ih, W_hh, b, b_hh[2 * H:] if kernel == "gru" else None)
    Wp, Wx, b_p = packed(kernel, W_hh, W_ih, b)
    P = b_p.size
    Hp = P // (4 if kernel == "lstm" else 3 if kernel == "gru" else 1)
    vectors = Wp.shape[2] * dtype.itemsize // microgemm.VECTOR_BYTES
    steps = max(1, min(T, INPUT_ROWS // N, INPUT_BYTES // (N * P * dtype.itemsize)))
    chunks = (microgemm.k_chunk(vectors, dtype),) * 2 + (steps,)
    lens = np.full(N, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    order = None
    if lengths is not None:                          # longest first: each step's live rows are a prefix
        order = np.argsort(-lens, kind="stable")
        if np.array_equal(order, np.arange(N)):
            order = None
        else:
            x, lens = x[:, order], lens[order]                             # (T, N, D) copy
            state0 = tuple(np.asarray(s)[order] for s in state0)
    y, state_T = _run(kernel, Wp, Wx, b_p, b_hh, x, state0, lens, reverse, chunks, H, Hp)
    if order is None:
        return y, state_T
    back = np.argsort(order)                                               # the caller's order
    return y[:, back], tuple(s[back] for s in state_T)


def _run(kernel, Wp, Wx, b_p, b_hh, x, state0, lens, reverse, chunks, H, Hp):
    T, N = x.shape[:2]
    dtype = x.dtype
    y = np.empty((T, N, H), dtype)                                         # (T, N, H)
    h = np.zeros((N, Hp), dtype)                                           # (N, Hp) padded layout
    h[:, :H] = state0[0]
    if kernel == "gru":
        b_hn = np.zeros(Hp, dtype)
        b_hn[:H] = b_hh[2 * H:]
        gru_forward(Wp, Wx, b_p, b_hn, x, h, lens, reverse, y, chunks)
        return y, (np.ascontiguousarray(h[:, :H]),)
    if kernel == "lstm":
        c = np.zeros((N, Hp), dtype)
        c[:, :H] = state0[1]
        lstm_forward(Wp, Wx, b_p, x, h, c, lens, reverse, y, chunks)
        return y, (np.ascontiguousarray(h[:, :H]), np.ascontiguousarray(c[:, :H]))
    rnn_forward(Wp, Wx, b_p, x, h, lens, reverse, kernel == "rnn_relu", y, chunks)
    return y, (np.ascontiguousarray(h[:, :H]),)
