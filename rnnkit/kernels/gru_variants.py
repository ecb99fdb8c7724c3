r"""Fused GRU loop for the variants: variational recurrent mask and zoneout.

The plain loop (:mod:`rnnkit.kernels.gru`) plus, per step (feature-major blocks (., N)):

.. math::
    a = W_{hh} (h \odot m_h) + b_{hh}, \quad u = W_{ih} x_t + b_{ih}, \quad
    h_{new} = \mathrm{GRU}(a, u, h), \quad h' = h_{new} + d_t \odot (h - h_{new})

The mask enters only the recurrent product; the update ``z h`` keeps the unmasked
h. An absent mask or zoneout array is passed with a zero-length first axis. The
gate arithmetic is :func:`rnnkit.kernels.gru.forward_step` / ``backward_step``.
Forward keeps the plain loop's r, z, n, a_n, the product's input h m_h
(batch-major, for dW_hh) and h itself (T, H, N).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .gru import backward_step, forward_step
from .lstm_variants import _split, _times_mask, _zone
from .primitives import double_buffer, fill_rows, keep_padded, mm, read_output_grad, transpose_into, \
    write_output, zero_padded

__all__ = ["forward", "backward"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def forward(gemm, W_hh, W_ih, b_hh, b_ih, x, h, lengths, reverse, h_mask, zh, y, acts, a_ns, hms, hs, store):
    """Run all T steps; ``h`` (H, N) holds the initial state and ends as the final one.

    With ``store``, fills ``acts`` (T, 3H, N), ``a_ns`` (T, H, N), ``hms`` (T, N, H) = h m_h and
    ``hs`` (T, H, N) = h entering each step.
    """
    T, _, D = x.shape
    H, N = h.shape
    HN = H * N
    one = h.dtype.type(1)
    first_padded = lengths.min()
    masked = h_mask.shape[0] > 0
    a_scratch = np.empty((3 * H, N), h.dtype)
    u = np.empty((3 * H, N), h.dtype)
    x_t = np.empty((D, N), h.dtype)
    hm = np.empty((H, N), h.dtype)
    h_in, h_out = double_buffer(h)
    for s in range(T):
        t = T - 1 - s if reverse else s
        a = acts[t] if store else a_scratch
        _times_mask(hm, h_in, h_mask, masked)
        transpose_into(x_t, x[t])                                  # x_t^T (D, N)
        fill_rows(a, b_hh)
        mm(gemm, False, W_hh, hm, one, one, a)                     # a = W_hh (3H, H) @ h m_h (H, N) + b_hh
        fill_rows(u, b_ih)
        mm(gemm, False, W_ih, x_t, one, one, u)                    # u = W_ih (3H, D) @ x_t^T (D, N) + b_ih
        if store:
            transpose_into(hms[t], hm)
            hs[t] = h_in
        forward_step(a.reshape(3 * HN), u.reshape(3 * HN), h_in.reshape(HN), h_out.reshape(HN))
        if zh.shape[0] > 0:
            _zone(h_out, h_in, zh[t])
        if t >= first_padded:                                      # padded sequences keep their state
            keep_padded(t, lengths, h_out, h_in)
        if store:
            a_ns[t] = u[2 * H:]
        write_output(t, lengths, first_padded, h_out, y[t])
        h_in, h_out = h_out, h_in
    h[...] = h_in


@njit(**_JIT)
def backward(gemm, W_hh, acts, a_ns, hs, lengths, reverse, h_mask, zh, dy, dh, dG, dHn):
    """Walk the steps backwards; ``dh`` (H, N) enters as d h_T and ends as d h_0.

    Fills ``dG`` (T, N, 3H) (input pre-activation gradients) and ``dHn`` (T, N, H) (d a_n).
    """
    T = acts.shape[0]
    H, N = dh.shape
    HN = H * N
    one = dh.dtype.type(1)
    zero = one - one
    first_padded = lengths.min()
    masked, zoned = h_mask.shape[0] > 0, zh.shape[0] > 0
    dg = np.empty((3 * H, N), dh.dtype)
    dn_x = np.empty((H, N), dh.dtype)
    g = np.empty((H, N), dh.dtype)
    g_h = np.empty((H, N), dh.dtype)
    elem = np.empty((H, N), dh.dtype)
    rec = np.empty((H, N), dh.dtype)
    no_dy = np.zeros((H, N), dh.dtype)
    dh_in, dh_out = double_buffer(dh)
    dy_t = np.zeros_like(dh)
    for s in range(T):
        t = s if reverse else T - 1 - s
        read_output_grad(dy, t, dy_t)
        gf, a_, b_ = g.reshape(HN), dh_in.reshape(HN), dy_t.reshape(HN)
        for k in range(HN):
            gf[k] = a_[k] + b_[k]
        _split(g, zh[t] if zoned else g, g_h, dh_out, zoned)       # dh_out starts as zoneout's direct path
        if t >= first_padded:
            zero_padded(t, lengths, g_h)
        backward_step(acts[t].reshape(3 * HN), a_ns[t].reshape(HN), hs[t].reshape(HN), g_h.reshape(HN),
                      no_dy.reshape(HN), dg.reshape(3 * HN), dn_x.reshape(HN), elem.reshape(HN))
        o, e = dh_out.reshape(HN), elem.reshape(HN)
        for k in range(HN):
            o[k] += e[k]
        if t >= first_padded:                                      # padded: the state passes through
            keep_padded(t, lengths, dh_out, dh_in)
        if masked:                                                 # d h += m_h * (W_hh^T (H, 3H) @ dg (3H, N))
            mm(gemm, True, W_hh, dg, one, zero, rec)
            r, m = rec.reshape(HN), h_mask.reshape(HN)
            for k in range(HN):
                o[k] += m[k] * r[k]
        else:
            mm(gemm, True, W_hh, dg, one, one, dh_out)
        transpose_into(dG[t][:, :2 * H], dg[:2 * H])
        transpose_into(dG[t][:, 2 * H:], dn_x)
        transpose_into(dHn[t], dg[2 * H:])
        dh_in, dh_out = dh_out, dh_in
    dh[...] = dh_in
