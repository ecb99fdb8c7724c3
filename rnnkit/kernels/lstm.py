r"""Fused LSTM loop: the step's matrix products and one elementwise pass per time step.

Same equations as :class:`rnnkit.nn.cells.LSTMCell` (gates i, f, g, o):

.. math::
    a = W_{hh} h + W_{ih} x_t + b, \quad i, f, o = \sigma(a_{i,f,o}),\ g = \tanh(a_g), \quad
    c' = f c + i g, \quad h' = o \tanh(c')

in the layout of :mod:`rnnkit.kernels.fused_scan`, with ``b = b_ih + b_hh``.
Forward keeps, per step, the gate activations and ``c`` entering the step
(blocks (·, N)) and the products' inputs [h | 1 | x_t] (batch-major, for the
weight gradients): 6H + 1 + D per token.
Backward recomputes ``c'`` and ``tanh(c')`` from them instead of keeping both.

Each loop runs compiled with ``gemm`` from :func:`rnnkit.kernels.blas.gemm_pointers`,
or as plain Python (``forward.py_func``) with ``gemm=None``, when ``mm`` is ``np.matmul``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .primitives import (double_buffer, fill_rows, keep_padded, loop_sizes, mm, read_output_grad, sigmoid, tanh,
                         transpose_into, write_output, zero_padded)

__all__ = ["forward", "backward"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def forward_step(a, c, h_out, c_out):
    """Gate arithmetic of one step, flat over the H*N entries of a block.

    ``a`` (4*H*N,) holds the pre-activations [a_i, a_f, a_g, a_o] and is
    overwritten with [i, f, g, o]; ``c`` (H*N,) is the cell state entering the
    step; h' goes to the first H*N entries of ``h_out``.
    """
    HN = c.shape[0]
    for k in range(HN):
        i = sigmoid(a[k])
        f = sigmoid(a[HN + k])
        g = tanh(a[2 * HN + k])
        o = sigmoid(a[3 * HN + k])
        c_new = f * c[k] + i * g
        c_out[k] = c_new
        h_out[k] = o * tanh(c_new)
        a[k], a[HN + k], a[2 * HN + k], a[3 * HN + k] = i, f, g, o


@njit(**_JIT)
def forward(gemm, W_hh, W_ih, b, x, h, c, lengths, reverse, y, acts, cs, zs, store):
    """Run all T steps of ``x`` (T, N, D); ``h``, ``c`` (H, N) hold the initial state and end as the final one.

    ``y`` (T, N, H) receives the outputs. With ``store``, fills ``acts`` (T, 4H, N),
    ``cs`` (T, H, N) and ``zs`` (T, N, H+1+D), each step's [h | 1 | x_t], for backward.
    """
    T, _, D = x.shape
    H, N, HN, one, first_padded = loop_sizes(h, lengths)
    a_scratch = np.empty((4 * H, N), h.dtype)
    z_in = np.empty((H + 1 + D, N), h.dtype)         # [h; 1; x_t^T]: the products' right-hand sides
    z_out = np.empty_like(z_in)
    z_in[:H] = h
    z_in[H] = one
    z_out[H] = one
    c_in, c_out = double_buffer(c)
    for s in range(T):
        t = T - 1 - s if reverse else s
        a = acts[t] if store else a_scratch                        # products land where backward reads them
        transpose_into(z_in[H + 1:], x[t])                         # x_t^T (D, N)
        fill_rows(a, b)                                            # a = b
        mm(gemm, False, W_hh, z_in[:H], one, one, a)               #   + W_hh (4H, H) @ h (H, N)
        mm(gemm, False, W_ih, z_in[H + 1:], one, one, a)           #   + W_ih (4H, D) @ x_t^T (D, N)
        if store:
            transpose_into(zs[t], z_in)                            # [h | 1 | x_t] (N, H+1+D)
            cs[t] = c_in
        forward_step(a.reshape(4 * HN), c_in.reshape(HN), z_out.reshape(z_out.size), c_out.reshape(HN))
        if t >= first_padded:                                      # padded sequences keep their state
            keep_padded(t, lengths, z_out[:H], z_in[:H])
            keep_padded(t, lengths, c_out, c_in)
        write_output(t, lengths, first_padded, z_out[:H], y[t])
        z_in, z_out = z_out, z_in
        c_in, c_out = c_out, c_in
    h[...] = z_in[:H]
    c[...] = c_in


@njit(**_JIT)
def backward_step(act, c, dh, dc, dy, dg, dh_out, dc_out):
    """Elementwise backward of one step, flat over H*N: gate gradients ``dg`` (4*H*N,), d h and d c.

    ``act`` = [i, f, g, o] and ``c`` (entering the step) as forward kept them;
    ``dh``, ``dc``: gradient at the state after the step; ``dy``: at the output.
    """
    HN = c.shape[0]
    one = c.dtype.type(1)
    zero = one - one
    for k in range(HN):
        i, f, g, o = act[k], act[HN + k], act[2 * HN + k], act[3 * HN + k]
        c_prev = c[k]
        tanh_c = tanh(f * c_prev + i * g)
        dh_t = dh[k] + dy[k]
        dc_t = dc[k] + dh_t * o * (one - tanh_c * tanh_c)
        dg[k] = dc_t * g * i * (one - i)                           # d a_i
        dg[HN + k] = dc_t * c_prev * f * (one - f)                 # d a_f
        dg[2 * HN + k] = dc_t * i * (one - g * g)                  # d a_g
        dg[3 * HN + k] = dh_t * tanh_c * o * (one - o)             # d a_o
        dc_out[k] = dc_t * f
        dh_out[k] = zero                   # h reaches h' only through W_hh: the product adds it


@njit(**_JIT)
def backward(gemm, W_hh, acts, cs, lengths, reverse, dy, dh, dc, dG):
    """Walk the steps backwards; ``dh``, ``dc`` (H, N) enter as d state_T and end as d state_0.

    ``dy`` is (T, N, H), or empty (shape (0, N, H)) when no gradient reaches the
    outputs. Fills ``dG`` (T, N, 4H) with the gate gradients of every step.
    """
    T = acts.shape[0]
    H, N, HN, one, first_padded = loop_sizes(dh, lengths)
    dg = np.empty((4 * H, N), dh.dtype)
    dh_in, dh_out = double_buffer(dh)
    dc_in, dc_out = double_buffer(dc)
    dy_t = np.zeros_like(dh)
    for s in range(T):
        t = s if reverse else T - 1 - s
        read_output_grad(dy, t, dy_t)
        backward_step(acts[t].reshape(4 * HN), cs[t].reshape(HN), dh_in.reshape(HN), dc_in.reshape(HN),
                      dy_t.reshape(HN), dg.reshape(4 * HN), dh_out.reshape(HN), dc_out.reshape(HN))
        if t >= first_padded:                                      # padded: the state passes through
            zero_padded(t, lengths, dg)
            keep_padded(t, lengths, dh_out, dh_in)
            keep_padded(t, lengths, dc_out, dc_in)
        mm(gemm, True, W_hh, dg, one, one, dh_out)                 # d h += W_hh^T (H, 4H) @ dg (4H, N)
        transpose_into(dG[t], dg)
        dh_in, dh_out = dh_out, dh_in
        dc_in, dc_out = dc_out, dc_in
    dh[...] = dh_in
    dc[...] = dc_in
