r"""Fused Elman RNN loop: the step's matrix products and one elementwise pass per time step.

Same equations as :class:`rnnkit.nn.cells.RNNCell`: :math:`h' = \phi(W_{hh} h + W_{ih} x_t + b)`,
φ = tanh or ReLU, ``b = b_ih + b_hh``, in the layout of :mod:`rnnkit.kernels.fused_scan`.
Forward keeps, per step, h' and the product's input [h | 1 | x_t]: 2H + 1 + D per token.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .primitives import (double_buffer, fill_rows, keep_padded, loop_sizes, mm, read_output_grad, tanh,
                         transpose_into, write_output, zero_padded)

__all__ = ["forward", "backward"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def forward_step(a, h_out, relu):
    """``h' = phi(a)`` flat over H*N into the first H*N entries of ``h_out``; ``a`` is overwritten with h'."""
    HN = a.shape[0]
    zero = a.dtype.type(0)
    if relu:
        for k in range(HN):
            a[k] = max(a[k], zero)
            h_out[k] = a[k]
    else:
        for k in range(HN):
            a[k] = tanh(a[k])
            h_out[k] = a[k]


@njit(**_JIT)
def forward(gemm, W_hh, W_ih, b, x, h, lengths, reverse, relu, y, acts, zs, store):
    """Run all T steps of ``x`` (T, N, D); ``h`` (H, N) holds the initial state and ends as the final one.

    ``y`` (T, N, H) receives the outputs.
    With ``store``, fills ``acts`` (T, H, N) and ``zs`` (T, N, H+1+D), each step's
    [h | 1 | x_t], for backward.
    """
    T, _, D = x.shape
    H, N, HN, one, first_padded = loop_sizes(h, lengths)
    a_scratch = np.empty((H, N), h.dtype)
    z_in = np.empty((H + 1 + D, N), h.dtype)         # [h; 1; x_t^T]
    z_out = np.empty_like(z_in)
    z_in[:H] = h
    z_in[H] = one
    z_out[H] = one
    for s in range(T):
        t = T - 1 - s if reverse else s
        a = acts[t] if store else a_scratch                        # products land where backward reads them
        transpose_into(z_in[H + 1:], x[t])                         # x_t^T (D, N)
        fill_rows(a, b)                                            # a = b
        mm(gemm, False, W_hh, z_in[:H], one, one, a)               #   + W_hh (H, H) @ h (H, N)
        mm(gemm, False, W_ih, z_in[H + 1:], one, one, a)           #   + W_ih (H, D) @ x_t^T (D, N)
        if store:
            transpose_into(zs[t], z_in)                            # [h | 1 | x_t] (N, H+1+D)
        forward_step(a.reshape(HN), z_out.reshape(z_out.size), relu)
        if t >= first_padded:                                      # padded sequences keep their state
            keep_padded(t, lengths, z_out[:H], z_in[:H])
        write_output(t, lengths, first_padded, z_out[:H], y[t])
        z_in, z_out = z_out, z_in
    h[...] = z_in[:H]


@njit(**_JIT)
def backward_step(act, dh, dy, relu, dg, dh_out):
    """``dg = (dh + dy) phi'``, flat over H*N; h' in ``act`` gives phi' (1 - h'^2, or [h' > 0])."""
    HN = act.shape[0]
    one = act.dtype.type(1)
    zero = one - one
    if relu:
        for k in range(HN):
            dg[k] = (dh[k] + dy[k]) if act[k] > zero else zero
            dh_out[k] = zero
    else:
        for k in range(HN):
            dg[k] = (dh[k] + dy[k]) * (one - act[k] * act[k])
            dh_out[k] = zero           # h reaches h' only through W_hh: the product adds it


@njit(**_JIT)
def backward(gemm, W_hh, acts, lengths, reverse, relu, dy, dh, dG):
    """Walk the steps backwards; ``dh`` (H, N) enters as d h_T and ends as d h_0.

    ``dy`` is (T, N, H), or empty (shape (0, N, H)) when no gradient reaches the
    outputs. Fills ``dG`` (T, N, H) with the pre-activation gradients of every step.
    """
    T = acts.shape[0]
    H, N, HN, one, first_padded = loop_sizes(dh, lengths)
    dg = np.empty((H, N), dh.dtype)
    dh_in, dh_out = double_buffer(dh)
    dy_t = np.zeros_like(dh)
    for s in range(T):
        t = s if reverse else T - 1 - s
        read_output_grad(dy, t, dy_t)
        backward_step(acts[t].reshape(HN), dh_in.reshape(HN), dy_t.reshape(HN), relu, dg.reshape(HN),
                      dh_out.reshape(HN))
        if t >= first_padded:                                      # padded: the state passes through
            zero_padded(t, lengths, dg)
            keep_padded(t, lengths, dh_out, dh_in)
        mm(gemm, True, W_hh, dg, one, one, dh_out)                 # d h += W_hh^T (H, H) @ dg (H, N)
        transpose_into(dG[t], dg)
        dh_in, dh_out = dh_out, dh_in
    dh[...] = dh_in
