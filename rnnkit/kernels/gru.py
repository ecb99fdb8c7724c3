r"""Fused GRU loop: two matrix products and one elementwise pass per time step.

Same equations as :class:`rnnkit.nn.cells.GRUCell` (gates r, z, n; PyTorch's form):

.. math::
    a = W_{hh} h + b_{hh}, \quad u = W_{ih} x_t + b_{ih}, \\
    r = \sigma(u_r + a_r), \quad z = \sigma(u_z + a_z), \quad
    n = \tanh(u_n + r \odot a_n), \quad h' = n + z \odot (h - n)

in the layout of :mod:`rnnkit.kernels.fused_scan`. The n block keeps the input
and recurrent parts apart (the reset gate multiplies only the latter), hence two
products instead of LSTM's one. Forward keeps, per step, r, z, n, ``a_n`` and
``h`` entering the step: 5H per token. The input and recurrent pre-activations
have different gradients in the n block only: ``d u_n = dn``, ``d a_n = r dn``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .primitives import (double_buffer, fill_rows, keep_padded, loop_sizes, mm, read_output_grad, sigmoid, tanh,
                         transpose_into, write_output, zero_padded)

__all__ = ["forward", "backward"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def forward_step(a, u, h, h_out):
    """Gate arithmetic of one step, flat over H*N.

    ``a`` (3*H*N,) = [a_r, a_z, a_n] is overwritten with [r, z, n]; ``u`` = [u_r, u_z, u_n]
    gets a_n in its n block; ``h``, ``h_out``: the state before and after the step.
    """
    HN = a.shape[0] // 3
    for k in range(HN):
        r = sigmoid(u[k] + a[k])
        z = sigmoid(u[HN + k] + a[HN + k])
        a_n = a[2 * HN + k]
        n = tanh(u[2 * HN + k] + r * a_n)
        h_out[k] = n + z * (h[k] - n)
        a[k], a[HN + k], a[2 * HN + k] = r, z, n
        u[2 * HN + k] = a_n


@njit(**_JIT)
def forward(gemm, W_hh, W_ih, b_hh, b_ih, x, h, lengths, reverse, y, acts, a_ns, hs, store):
    """Run all T steps of ``x`` (T, N, D); ``h`` (H, N) holds the initial state and ends as the final one.

    ``y`` (T, N, H) receives the outputs. With ``store``, fills ``acts`` (T, 3H, N),
    ``a_ns`` (T, H, N) and ``hs`` (T, N, H) for backward.
    """
    T, _, D = x.shape
    H, N, HN, one, first_padded = loop_sizes(h, lengths)
    a_scratch = np.empty((3 * H, N), h.dtype)
    u = np.empty((3 * H, N), h.dtype)
    x_t = np.empty((D, N), h.dtype)
    h_in, h_out = double_buffer(h)
    for s in range(T):
        t = T - 1 - s if reverse else s
        a = acts[t] if store else a_scratch                        # products land where backward reads them
        transpose_into(x_t, x[t])                                  # x_t^T (D, N)
        fill_rows(a, b_hh)
        mm(gemm, False, W_hh, h_in, one, one, a)                   # a = W_hh (3H, H) @ h (H, N) + b_hh
        fill_rows(u, b_ih)
        mm(gemm, False, W_ih, x_t, one, one, u)                    # u = W_ih (3H, D) @ x_t^T (D, N) + b_ih
        if store:
            transpose_into(hs[t], h_in)
        forward_step(a.reshape(3 * HN), u.reshape(3 * HN), h_in.reshape(HN), h_out.reshape(HN))
        if t >= first_padded:                                      # padded sequences keep their state
            keep_padded(t, lengths, h_out, h_in)
        if store:
            a_ns[t] = u[2 * H:]
        write_output(t, lengths, first_padded, h_out, y[t])
        h_in, h_out = h_out, h_in
    h[...] = h_in


@njit(**_JIT)
def backward_step(act, a_n, h_prev, dh, dy, dg, dn_x, dh_out):
    """Elementwise backward of one step, flat over H*N.

    Writes the recurrent pre-activation gradients ``dg`` = [d a_r, d a_z, r dn]
    (3*H*N,), the input one of the n block ``dn_x`` = dn, and d h's elementwise part.
    """
    HN = h_prev.shape[0]
    one = h_prev.dtype.type(1)
    for k in range(HN):
        r, z, n = act[k], act[HN + k], act[2 * HN + k]
        dh_t = dh[k] + dy[k]
        dn = dh_t * (one - z) * (one - n * n)                      # d (u_n + r a_n)
        dg[k] = dn * a_n[k] * r * (one - r)                        # d a_r
        dg[HN + k] = dh_t * (h_prev[k] - n) * z * (one - z)        # d a_z
        dg[2 * HN + k] = dn * r                                    # d a_n
        dn_x[k] = dn
        dh_out[k] = dh_t * z


@njit(**_JIT)
def backward(gemm, W_hh, acts, a_ns, hs, lengths, reverse, dy, dh, dG, dHn):
    """Walk the steps backwards; ``dh`` (H, N) enters as d h_T and ends as d h_0.

    ``dy`` is (T, N, H), or empty (shape (0, N, H)) when no gradient reaches the
    outputs. Fills ``dG`` (T, N, 3H) with the input pre-activation gradients and
    ``dHn`` (T, N, H) with d a_n (the recurrent r, z ones equal dG's).
    """
    T = acts.shape[0]
    H, N, HN, one, first_padded = loop_sizes(dh, lengths)
    dg = np.empty((3 * H, N), dh.dtype)
    dn_x = np.empty((H, N), dh.dtype)
    h_prev = np.empty((H, N), dh.dtype)
    dh_in, dh_out = double_buffer(dh)
    dy_t = np.zeros_like(dh)
    for s in range(T):
        t = s if reverse else T - 1 - s
        read_output_grad(dy, t, dy_t)
        transpose_into(h_prev, hs[t])
        backward_step(acts[t].reshape(3 * HN), a_ns[t].reshape(HN), h_prev.reshape(HN), dh_in.reshape(HN),
                      dy_t.reshape(HN), dg.reshape(3 * HN), dn_x.reshape(HN), dh_out.reshape(HN))
        if t >= first_padded:                                      # padded: the state passes through
            zero_padded(t, lengths, dg)
            zero_padded(t, lengths, dn_x)
            keep_padded(t, lengths, dh_out, dh_in)
        mm(gemm, True, W_hh, dg, one, one, dh_out)                 # d h += W_hh^T (H, 3H) @ dg (3H, N)
        transpose_into(dG[t][:, :2 * H], dg[:2 * H])
        transpose_into(dG[t][:, 2 * H:], dn_x)
        transpose_into(dHn[t], dg[2 * H:])
        dh_in, dh_out = dh_out, dh_in
    dh[...] = dh_in
