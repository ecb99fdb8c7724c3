r"""Fused loops of the layer-normalised LSTM and GRU (:mod:`rnnkit.nn.layernorm_cells`).

Same equations as the cells, in the feature-major layout of :mod:`rnnkit.kernels.fused_scan`:
per step two products, ``xw = W_ih x_t`` and ``hw = W_hh (h m_h)``, each normalised over its
G*H rows in every column (one sequence), then the gates; LSTM normalises c' over its H rows
before the tanh. The variants' projection (LSTM), recurrent mask and zoneout work as in
:mod:`rnnkit.kernels.lstm_variants` (absent ones are arrays with a zero-length first axis).

Forward keeps, per step, the gates, the normalised products and their 1/std, c entering
and the normalised c' (LSTM), or a_n and h (GRU). Backward writes the gradients of the
raw products batch-major, ``dXW``, ``dHW`` (T, N, G*H), for one product per weight
gradient afterwards, and sums the cell's own gradients (``g`` = [d gamma_ih, d gamma_hh,
d b_ih, d b_hh] (4, G*H), LSTM's [d gamma_c, d beta_c] (2, H)) in the loop.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .lstm_variants import _split, _times_mask, _zone
from .primitives import double_buffer, keep_padded, mm, read_output_grad, sigmoid, tanh, transpose_into, \
    write_output, zero_padded

__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "EPS"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)
EPS = 1e-5


@njit(**_JIT)
def _norm(v, v_hat, rstd):
    """Per column of ``v`` (R, N): v_hat = (v - mean) / sqrt(var + EPS), rstd (N,) = 1 / sqrt(var + EPS)."""
    R, N = v.shape
    zero = v.dtype.type(0)
    mu = np.zeros(N, v.dtype)
    for r in range(R):
        for n in range(N):
            mu[n] += v[r, n]
    for n in range(N):
        mu[n] /= R
        rstd[n] = zero
    for r in range(R):
        for n in range(N):
            d = v[r, n] - mu[n]
            rstd[n] += d * d
    for n in range(N):
        rstd[n] = 1.0 / math.sqrt(rstd[n] / R + EPS)
    for r in range(R):
        for n in range(N):
            v_hat[r, n] = (v[r, n] - mu[n]) * rstd[n]


@njit(**_JIT)
def _norm_backward(d_hat, v_hat, rstd, dv):
    """dv = rstd (d_hat - mean(d_hat) - v_hat mean(d_hat v_hat)), per column of (R, N) blocks."""
    R, N = d_hat.shape
    m1 = np.zeros(N, d_hat.dtype)
    m2 = np.zeros(N, d_hat.dtype)
    for r in range(R):
        for n in range(N):
            m1[n] += d_hat[r, n]
            m2[n] += d_hat[r, n] * v_hat[r, n]
    for n in range(N):
        m1[n] /= R
        m2[n] /= R
    for r in range(R):
        for n in range(N):
            dv[r, n] = rstd[n] * (d_hat[r, n] - m1[n] - v_hat[r, n] * m2[n])


@njit(**_JIT)
def lstm_forward(gemm, W_hh, W_ih, gam, b, W_hr, x, h, c, lengths, reverse, h_mask, zh, zc, y, acts, xhat, hhat,
                 rstd, cs, chat, hms, store):
    """All T steps of the layer-normalised LSTM; ``h`` (P, N), ``c`` (H, N) in as the initial state, out final.

    ``gam`` (3, G*H): [gamma_ih, gamma_hh, b_ih + b_hh]; ``b`` (2, H): [gamma_c, beta_c]. With
    ``store``: ``acts``, ``xhat``, ``hhat`` (T, 4H, N), ``rstd`` (T, 3, N), ``cs``, ``chat`` (T, H, N),
    ``hms`` (T, N, P) = h m_h.
    """
    T, _, D = x.shape
    P, N = h.shape
    H = c.shape[0]
    G = 4 * H
    one = h.dtype.type(1)
    zero = one - one
    first_padded = lengths.min()
    proj, masked = W_hr.shape[0] > 0, h_mask.shape[0] > 0
    xw, hw = np.empty((G, N), h.dtype), np.empty((G, N), h.dtype)
    sx, sh = np.empty((G, N), h.dtype), np.empty((G, N), h.dtype)
    sa, sc = np.empty((G, N), h.dtype), np.empty((H, N), h.dtype)
    sr = np.empty((3, N), h.dtype)
    x_t, hm, h_cell = np.empty((D, N), h.dtype), np.empty((P, N), h.dtype), np.empty((H, N), h.dtype)
    h_in, h_out = double_buffer(h)
    c_in, c_out = double_buffer(c)
    for s in range(T):
        t = T - 1 - s if reverse else s
        a, x_hat, h_hat = (acts[t], xhat[t], hhat[t]) if store else (sa, sx, sh)
        c_hat, rs = (chat[t], rstd[t]) if store else (sc, sr)
        _times_mask(hm, h_in, h_mask, masked)
        transpose_into(x_t, x[t])
        mm(gemm, False, W_ih, x_t, one, zero, xw)                  # W_ih (4H, D) @ x_t^T (D, N)
        mm(gemm, False, W_hh, hm, one, zero, hw)                   # W_hh (4H, P) @ h m_h (P, N)
        _norm(xw, x_hat, rs[0])
        _norm(hw, h_hat, rs[1])
        if store:
            transpose_into(hms[t], hm)
            cs[t] = c_in
        for r in range(G):
            for n in range(N):
                a[r, n] = gam[0, r] * x_hat[r, n] + gam[1, r] * h_hat[r, n] + gam[2, r]
        for r in range(H):
            for n in range(N):
                i, f = sigmoid(a[r, n]), sigmoid(a[H + r, n])
                g, o = tanh(a[2 * H + r, n]), sigmoid(a[3 * H + r, n])
                a[r, n], a[H + r, n], a[2 * H + r, n], a[3 * H + r, n] = i, f, g, o
                c_out[r, n] = f * c_in[r, n] + i * g
        _norm(c_out, c_hat, rs[2])
        dst = h_cell if proj else h_out
        for r in range(H):
            for n in range(N):
                dst[r, n] = a[3 * H + r, n] * tanh(b[0, r] * c_hat[r, n] + b[1, r])
        if proj:
            mm(gemm, False, W_hr, h_cell, one, zero, h_out)        # W_hr (P, H) @ h_cell (H, N)
        if zh.shape[0] > 0:
            _zone(h_out, h_in, zh[t])
        if zc.shape[0] > 0:
            _zone(c_out, c_in, zc[t])
        if t >= first_padded:
            keep_padded(t, lengths, h_out, h_in)
            keep_padded(t, lengths, c_out, c_in)
        write_output(t, lengths, first_padded, h_out, y[t])
        h_in, h_out = h_out, h_in
        c_in, c_out = c_out, c_in
    h[...] = h_in
    c[...] = c_in


@njit(**_JIT)
def lstm_backward(gemm, W_hh, gam, b, W_hr, acts, xhat, hhat, rstd, cs, chat, lengths, reverse, h_mask, zh, zc, dy,
                  dh, dc, dXW, dHW, dHP, HC, g_gam, g_b):
    """Backward of :func:`lstm_forward`; ``dh``, ``dc`` in as d state_T, out as d state_0.

    Fills ``dXW``, ``dHW`` (T, N, 4H), and when projected ``dHP`` (T, N, P), ``HC`` (T, N, H);
    adds into ``g_gam`` (4, 4H) = [d gamma_ih, d gamma_hh, d b_ih, d b_hh] and ``g_b`` (2, H).
    """
    T = acts.shape[0]
    P, N = dh.shape
    H = dc.shape[0]
    G = 4 * H
    one = dh.dtype.type(1)
    zero = one - one
    first_padded = lengths.min()
    proj, masked = W_hr.shape[0] > 0, h_mask.shape[0] > 0
    zoned_h, zoned_c = zh.shape[0] > 0, zc.shape[0] > 0
    g, g_h = np.empty((P, N), dh.dtype), np.empty((P, N), dh.dtype)
    g_c, c_direct = np.empty((H, N), dh.dtype), np.empty((H, N), dh.dtype)
    d_cell = np.empty((H, N), dh.dtype) if proj else g_h
    h_cell, d_chat, dc_ln = np.empty((H, N), dh.dtype), np.empty((H, N), dh.dtype), np.empty((H, N), dh.dtype)
    da, d_hat, dv = np.empty((G, N), dh.dtype), np.empty((G, N), dh.dtype), np.empty((G, N), dh.dtype)
    rec = np.empty((P, N), dh.dtype)
    dh_in, dh_out = double_buffer(dh)
    dc_in, dc_out = double_buffer(dc)
    dy_t = np.zeros_like(dh)
    for s in range(T):
        t = s if reverse else T - 1 - s
        read_output_grad(dy, t, dy_t)
        for p in range(P):
            for n in range(N):
                g[p, n] = dh_in[p, n] + dy_t[p, n]
        _split(g, zh[t] if zoned_h else g, g_h, dh_out, zoned_h)
        _split(dc_in, zc[t] if zoned_c else dc_in, g_c, c_direct, zoned_c)
        if t >= first_padded:
            zero_padded(t, lengths, g_h)
            zero_padded(t, lengths, g_c)
        a, c_hat = acts[t], chat[t]
        if proj:
            mm(gemm, True, W_hr, g_h, one, zero, d_cell)           # W_hr^T (H, P) @ d h_new (P, N)
            transpose_into(dHP[t], g_h)
            for r in range(H):
                for n in range(N):
                    h_cell[r, n] = a[3 * H + r, n] * tanh(b[0, r] * c_hat[r, n] + b[1, r])
            transpose_into(HC[t], h_cell)
        for r in range(H):
            for n in range(N):
                o = a[3 * H + r, n]
                tm = tanh(b[0, r] * c_hat[r, n] + b[1, r])
                dm = d_cell[r, n] * o * (one - tm * tm)
                d_chat[r, n] = dm                      # d of gamma_c c_hat + beta_c, for the sums below
                da[3 * H + r, n] = d_cell[r, n] * tm * o * (one - o)
        for r in range(H):
            s0, s1 = zero, zero
            for n in range(N):
                s0 += d_chat[r, n] * c_hat[r, n]
                s1 += d_chat[r, n]
                d_chat[r, n] *= b[0, r]
            g_b[0, r] += s0
            g_b[1, r] += s1
        _norm_backward(d_chat, c_hat, rstd[t, 2], dc_ln)
        c_prev = cs[t]
        for r in range(H):
            for n in range(N):
                i, f, gg = a[r, n], a[H + r, n], a[2 * H + r, n]
                dct = g_c[r, n] + dc_ln[r, n]
                da[r, n] = dct * gg * i * (one - i)
                da[H + r, n] = dct * c_prev[r, n] * f * (one - f)
                da[2 * H + r, n] = dct * i * (one - gg * gg)
                dc_out[r, n] = dct * f + c_direct[r, n]
        _lstm_gate_norms(da, gam, xhat[t], hhat[t], rstd[t], g_gam, d_hat, dv, dXW[t], dHW[t])
        if t >= first_padded:
            keep_padded(t, lengths, dh_out, dh_in)
            keep_padded(t, lengths, dc_out, dc_in)
        _recurrent_grad(gemm, W_hh, dv, h_mask, masked, rec, dh_out)
        dh_in, dh_out = dh_out, dh_in
        dc_in, dc_out = dc_out, dc_in
    dh[...] = dh_in
    dc[...] = dc_in


@njit(**_JIT)
def _lstm_gate_norms(da, gam, x_hat, h_hat, rs, g_gam, d_hat, dv, dxw_t, dhw_t):
    """From d a (4H, N): the cell's gradient sums, dXW[t] and dHW[t] (N, 4H); leaves d hw in ``dv``."""
    G, N = da.shape
    zero = da.dtype.type(0)
    for r in range(G):                      # sums in registers: a read-modify-write of g_gam per entry is slow
        s0, s1, s2 = zero, zero, zero
        g0 = gam[0, r]
        for n in range(N):
            d = da[r, n]
            s0 += d * x_hat[r, n]
            s1 += d * h_hat[r, n]
            s2 += d
            d_hat[r, n] = d * g0
        g_gam[0, r] += s0
        g_gam[1, r] += s1
        g_gam[2, r] += s2
        g_gam[3, r] += s2
    _norm_backward(d_hat, x_hat, rs[0], dv)
    transpose_into(dxw_t, dv)
    for r in range(G):
        for n in range(N):
            d_hat[r, n] = da[r, n] * gam[1, r]
    _norm_backward(d_hat, h_hat, rs[1], dv)
    transpose_into(dhw_t, dv)


@njit(**_JIT)
def _recurrent_grad(gemm, W_hh, d_hw, h_mask, masked, rec, dh_out):
    """d h += m_h * (W_hh^T (P, G*H) @ d hw (G*H, N))."""
    one = d_hw.dtype.type(1)
    if masked:
        mm(gemm, True, W_hh, d_hw, one, one - one, rec)
        P, N = rec.shape
        for p in range(P):
            for n in range(N):
                dh_out[p, n] += h_mask[p, n] * rec[p, n]
    else:
        mm(gemm, True, W_hh, d_hw, one, one, dh_out)


@njit(**_JIT)
def gru_forward(gemm, W_hh, W_ih, gam, x, h, lengths, reverse, h_mask, zh, y, acts, xhat, hhat, rstd, a_ns, hs,
                hms, store):
    """All T steps of the layer-normalised GRU; ``h`` (H, N) in as the initial state, out as the final one.

    ``gam`` (4, 3H) = [gamma_ih, gamma_hh, b_ih, b_hh]. With ``store``: ``acts``, ``xhat``, ``hhat``
    (T, 3H, N), ``rstd`` (T, 2, N), ``a_ns``, ``hs`` (T, H, N), ``hms`` (T, N, H) = h m_h.
    """
    T, _, D = x.shape
    H, N = h.shape
    G = 3 * H
    one = h.dtype.type(1)
    zero = one - one
    first_padded = lengths.min()
    masked = h_mask.shape[0] > 0
    xw, hw = np.empty((G, N), h.dtype), np.empty((G, N), h.dtype)
    sx, sh, sa = np.empty((G, N), h.dtype), np.empty((G, N), h.dtype), np.empty((G, N), h.dtype)
    sr, san = np.empty((2, N), h.dtype), np.empty((H, N), h.dtype)
    x_t, hm = np.empty((D, N), h.dtype), np.empty((H, N), h.dtype)
    h_in, h_out = double_buffer(h)
    for s in range(T):
        t = T - 1 - s if reverse else s
        a, x_hat, h_hat = (acts[t], xhat[t], hhat[t]) if store else (sa, sx, sh)
        rs, a_n = (rstd[t], a_ns[t]) if store else (sr, san)
        _times_mask(hm, h_in, h_mask, masked)
        transpose_into(x_t, x[t])
        mm(gemm, False, W_ih, x_t, one, zero, xw)
        mm(gemm, False, W_hh, hm, one, zero, hw)
        _norm(xw, x_hat, rs[0])
        _norm(hw, h_hat, rs[1])
        if store:
            transpose_into(hms[t], hm)
            hs[t] = h_in
        for r in range(H):
            for n in range(N):
                u_r = gam[0, r] * x_hat[r, n] + gam[2, r]
                u_z = gam[0, H + r] * x_hat[H + r, n] + gam[2, H + r]
                u_n = gam[0, 2 * H + r] * x_hat[2 * H + r, n] + gam[2, 2 * H + r]
                rr = sigmoid(u_r + gam[1, r] * h_hat[r, n] + gam[3, r])
                z = sigmoid(u_z + gam[1, H + r] * h_hat[H + r, n] + gam[3, H + r])
                an = gam[1, 2 * H + r] * h_hat[2 * H + r, n] + gam[3, 2 * H + r]
                nn = tanh(u_n + rr * an)
                a[r, n], a[H + r, n], a[2 * H + r, n] = rr, z, nn
                a_n[r, n] = an
                h_out[r, n] = nn + z * (h_in[r, n] - nn)
        if zh.shape[0] > 0:
            _zone(h_out, h_in, zh[t])
        if t >= first_padded:
            keep_padded(t, lengths, h_out, h_in)
        write_output(t, lengths, first_padded, h_out, y[t])
        h_in, h_out = h_out, h_in
    h[...] = h_in


@njit(**_JIT)
def gru_backward(gemm, W_hh, gam, acts, xhat, hhat, rstd, a_ns, hs, lengths, reverse, h_mask, zh, dy, dh, dXW, dHW,
                 g_gam):
    """Backward of :func:`gru_forward`; ``dh`` (H, N) in as d h_T, out as d h_0; fills ``dXW``, ``dHW``
    (T, N, 3H) and adds into ``g_gam`` (4, 3H) = [d gamma_ih, d gamma_hh, d b_ih, d b_hh]."""
    T = acts.shape[0]
    H, N = dh.shape
    G = 3 * H
    one = dh.dtype.type(1)
    first_padded = lengths.min()
    masked, zoned = h_mask.shape[0] > 0, zh.shape[0] > 0
    g, g_h = np.empty((H, N), dh.dtype), np.empty((H, N), dh.dtype)
    du, da = np.empty((G, N), dh.dtype), np.empty((G, N), dh.dtype)
    d_hat, dv, rec = np.empty((G, N), dh.dtype), np.empty((G, N), dh.dtype), np.empty((H, N), dh.dtype)
    dh_in, dh_out = double_buffer(dh)
    dy_t = np.zeros_like(dh)
    for s in range(T):
        t = s if reverse else T - 1 - s
        read_output_grad(dy, t, dy_t)
        for r in range(H):
            for n in range(N):
                g[r, n] = dh_in[r, n] + dy_t[r, n]
        _split(g, zh[t] if zoned else g, g_h, dh_out, zoned)
        if t >= first_padded:
            zero_padded(t, lengths, g_h)
        a, a_n, h_prev, x_hat, h_hat = acts[t], a_ns[t], hs[t], xhat[t], hhat[t]
        for r in range(H):
            for n in range(N):
                rr, z, nn = a[r, n], a[H + r, n], a[2 * H + r, n]
                gh = g_h[r, n]
                dn = gh * (one - z) * (one - nn * nn)
                du[r, n] = dn * a_n[r, n] * rr * (one - rr)
                du[H + r, n] = gh * (h_prev[r, n] - nn) * z * (one - z)
                du[2 * H + r, n] = dn
                da[r, n], da[H + r, n], da[2 * H + r, n] = du[r, n], du[H + r, n], dn * rr
                dh_out[r, n] += gh * z
        zero = one - one
        for r in range(G):
            s0, s1, s2, s3 = zero, zero, zero, zero
            g0 = gam[0, r]
            for n in range(N):
                s0 += du[r, n] * x_hat[r, n]
                s1 += da[r, n] * h_hat[r, n]
                s2 += du[r, n]
                s3 += da[r, n]
                d_hat[r, n] = du[r, n] * g0
            g_gam[0, r] += s0
            g_gam[1, r] += s1
            g_gam[2, r] += s2
            g_gam[3, r] += s3
        _norm_backward(d_hat, x_hat, rstd[t, 0], dv)
        transpose_into(dXW[t], dv)
        for r in range(G):
            for n in range(N):
                d_hat[r, n] = da[r, n] * gam[1, r]
        _norm_backward(d_hat, h_hat, rstd[t, 1], dv)
        transpose_into(dHW[t], dv)
        if t >= first_padded:
            keep_padded(t, lengths, dh_out, dh_in)
        _recurrent_grad(gemm, W_hh, dv, h_mask, masked, rec, dh_out)
        dh_in, dh_out = dh_out, dh_in
    dh[...] = dh_in
