r"""Fused loops of the layer-normalised LSTM and GRU (:mod:`rnnkit.nn.layernorm_cells`), batch-major.

Same equations as the cells. Unlike the plain loops (feature-major, :mod:`rnnkit.kernels.fused_scan`),
these keep every per-step block batch-major, (N, G*H) with one row per sequence, because a layer
norm is a reduction over the features of each row: here a contiguous row, and the state, outputs,
masks and stored blocks need no transposes at all. What does not depend on the recurrence leaves
the loop:

- forward: the input product of all steps is one product, ``XW = X W_ih^T`` (T*N, G*H), normalised
  row by row before the loop (:func:`norm_rows_inplace`), so a step does only the recurrent product
  ``hw = (h m_h) W_hh^T`` (N, G*H), its norm and the gates;
- backward: a step writes ``d a`` (the gradient of the gates' pre-activations, batch-major, where
  the weight gradients read it) and does only the recurrent norm's backward and product; the input
  norm's backward and the sums of gamma_ih and b_ih run over all T*N rows after the loop
  (:func:`input_side_backward`), and for the LSTM, whose two norms see the same d a, also those of
  gamma_hh and b_hh (the GRU's recurrent side has its own d a: its sums stay in the loop).

The row kernels (norms, their backward, the LSTM's gate rows) are :mod:`rnnkit.kernels.layernorm_rows`.

Both per-step products, ``h m_h W_hh^T`` forward and ``d hw W_hh`` backward, run on the weights packed
once per call into register-tiled panels (:mod:`rnnkit.kernels.panel_mm`: ``Wp``, ``kc``), BLAS where no
panel width divides their columns and in the Python version of the loops.

The variants' projection (LSTM), recurrent mask and zoneout work as in
:mod:`rnnkit.kernels.lstm_variants`, on batch-major blocks (absent ones are arrays with a zero-length
first axis).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .gru import forward_step as gru_step
from .layernorm_rows import (EPS, affine, centred_rstd, input_side_backward, lstm_chat_row, lstm_gates_back_row,
                             lstm_gates_row, lstm_norm_out_row, lstm_out_back_row, lstm_out_row, norm_backward_rows,
                             norm_into, norm_rows, norm_rows_inplace)
from .lstm_variants import _split, _times_mask, _zone
from .panel_mm import pmm
from .primitives import mm

__all__ = ["norm_rows", "norm_rows_inplace", "input_side_backward", "lstm_forward", "lstm_backward", "gru_forward",
           "gru_backward", "EPS"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def _rows_padded(t, lengths, new, old, keep):
    """Where step t is padding for sequence n: ``new[n] = old[n]`` (``keep``) or 0."""
    N, R = new.shape
    zero = new.dtype.type(0)
    for n in range(N):
        if t >= lengths[n]:
            for r in range(R):
                new[n, r] = old[n, r] if keep else zero


@njit(**_JIT)
def _recurrent_grad(gemm, W_hh, Wp, kc, dhw, h_mask, masked, rec, dh_out):
    """d h += m_h * (d hw (N, G*H) @ W_hh (G*H, P)); on ``W_hh``'s panels ``Wp`` when not empty."""
    one = dhw.dtype.type(1)
    if masked:
        pmm(gemm, Wp, kc, dhw, W_hh, one - one, rec)
        N, P = rec.shape
        for n in range(N):
            for p in range(P):
                dh_out[n, p] += h_mask[n, p] * rec[n, p]
    else:
        pmm(gemm, Wp, kc, dhw, W_hh, one, dh_out)


@njit(**_JIT)
def lstm_forward(gemm, W_hhT, Wp, kc, gam, b, W_hrT, xhat, h, c, lengths, reverse, h_mask, zh, zc, y, acts, hhat,
                 rstd, cs, hms, store):
    """All T steps of the layer-normalised LSTM; ``h`` (N, P), ``c`` (N, H) in as the initial state, out final.

    ``xhat`` (T, N, 4H) = LN(xw), the normalised input products of every step; ``gam`` (3, 4H) =
    [gamma_ih, gamma_hh, b_ih + b_hh]; ``b`` (2, H) = [gamma_c, beta_c]; ``W_hhT`` (P, 4H) and its panels ``Wp``
    (:func:`rnnkit.kernels.panel_mm.pack`, or empty), K chunk ``kc``; ``W_hrT`` (H, P) or (0, 0).
    With ``store``: ``acts`` = [i, f, g, o], ``hhat`` (T, N, 4H), ``rstd`` (T, 3, N) = [1 / std of hw,
    1 / std of c', mean of c'], ``cs`` (T, N, H) c entering, ``hms`` (T, N, P) = h m_h. The normalised c'
    is not kept: the backward forms it again from the gates, c and the two statistics.
    """
    T, N, G = xhat.shape
    P = h.shape[1]
    H = c.shape[1]
    one = h.dtype.type(1)
    zero = one - one
    first_padded = lengths.min()
    proj, masked = W_hrT.shape[0] > 0, h_mask.shape[0] > 0
    hw, sa, sh = np.empty((N, G), h.dtype), np.empty((N, G), h.dtype), np.empty((N, G), h.dtype)
    sr, shm = np.empty((3, N), h.dtype), np.empty((N, P), h.dtype)
    h_cell = np.empty((N, H), h.dtype)
    h_in, h_out = h.copy(), np.empty_like(h)
    c_in, c_out = c.copy(), np.empty_like(c)
    for s in range(T):
        t = T - 1 - s if reverse else s
        a, h_hat, rs, hm = (acts[t], hhat[t], rstd[t], hms[t]) if store else (sa, sh, sr, shm)
        _times_mask(hm, h_in, h_mask, masked)
        pmm(gemm, Wp, kc, hm, W_hhT, zero, hw)                    # h m_h (N, P) @ W_hh^T (P, 4H)
        norm_into(hw, h_hat, rs[0], gam[1], gam[2], xhat[t], gam[0], a)   # a = g_hh LN(hw) + g_ih LN(xw) + b
        if store:
            cs[t] = c_in
        dst = h_cell if proj else h_out
        for n in range(N):                  # gates, c' = f c + i g and its mean; its 1 / std; h
            mu = lstm_gates_row(a[n], c_in[n], c_out[n])
            rs_c = centred_rstd(c_out[n], mu)
            rs[1, n], rs[2, n] = rs_c, mu
            lstm_norm_out_row(a[n, 3 * H:], c_out[n], mu, rs_c, b[0], b[1], dst[n])
        if proj:
            mm(gemm, False, h_cell, W_hrT, one, zero, h_out)      # h_cell (N, H) @ W_hr^T (H, P)
        if zh.shape[0] > 0:
            _zone(h_out, h_in, zh[t])
        if zc.shape[0] > 0:
            _zone(c_out, c_in, zc[t])
        if t >= first_padded:
            _rows_padded(t, lengths, h_out, h_in, True)
            _rows_padded(t, lengths, c_out, c_in, True)
        y[t] = h_out
        if t >= first_padded:
            _rows_padded(t, lengths, y[t], y[t], False)
        h_in, h_out = h_out, h_in
        c_in, c_out = c_out, c_in
    h[...] = h_in
    c[...] = c_in


@njit(**_JIT)
def _output_grad(dh_in, dy, t, g):
    """g = d h_t: what comes back through the state plus, when ``dy`` is not empty, the output's gradient."""
    N, P = g.shape
    if dy.shape[0] > 0:
        dyt = dy[t]
        for n in range(N):
            for p in range(P):
                g[n, p] = dh_in[n, p] + dyt[n, p]
    else:
        g[...] = dh_in


@njit(**_JIT)
def lstm_backward(gemm, W_hh, Wp, kc, gam, b, W_hr, acts, hhat, rstd, cs, lengths, reverse, h_mask, zh, zc, dy,
                  dh, dc, dA, dHW, dHP, HC, g_gam, g_b):
    """Backward of :func:`lstm_forward`; ``dh`` (N, P), ``dc`` (N, H) in as d state_T, out as d state_0.

    Fills ``dA`` (T, N, 4H) with d a (the input norm's backward is :func:`input_side_backward`'s),
    ``dHW`` (T, N, 4H) with d hw, and when projected ``dHP`` (T, N, P) = d h_new, ``HC`` (T, N, H) = h_cell;
    adds into ``g_b`` (2, H) = [d gamma_c, d beta_c]. The recurrent norm's gain and shift gradients,
    sum d a hhat and sum d a (the same d a as the input side's), are left to :func:`input_side_backward`.
    """
    T, N, G = acts.shape
    P = dh.shape[1]
    H = dc.shape[1]
    one = dh.dtype.type(1)
    zero = one - one
    first_padded = lengths.min()
    proj, masked = W_hr.shape[0] > 0, h_mask.shape[0] > 0
    zoned_h, zoned_c = zh.shape[0] > 0, zc.shape[0] > 0
    g, g_h, rec = np.empty((N, P), dh.dtype), np.empty((N, P), dh.dtype), np.empty((N, P), dh.dtype)
    g_c, c_direct = np.empty((N, H), dh.dtype), np.empty((N, H), dh.dtype)
    d_cell = np.empty((N, H), dh.dtype) if proj else g_h
    d_chat, c_hat = np.empty(H, dh.dtype), np.empty((N, H), dh.dtype)
    dh_in, dh_out = dh.copy(), np.empty_like(dh)
    dc_in, dc_out = dc.copy(), np.empty_like(dc)
    for s in range(T):
        t = s if reverse else T - 1 - s
        _output_grad(dh_in, dy, t, g)
        _split(g, zh[t] if zoned_h else g, g_h, dh_out, zoned_h)
        _split(dc_in, zc[t] if zoned_c else dc_in, g_c, c_direct, zoned_c)
        if t >= first_padded:
            _rows_padded(t, lengths, g_h, g_h, False)
            _rows_padded(t, lengths, g_c, g_c, False)
        a, da, c_prev, rs = acts[t], dA[t], cs[t], rstd[t]
        if proj:
            mm(gemm, False, g_h, W_hr, one, zero, d_cell)          # d h_new (N, P) @ W_hr (P, H)
            dHP[t] = g_h
            for n in range(N):
                lstm_chat_row(a[n], c_prev[n], rs[2, n], rs[1, n], c_hat[n])
                lstm_out_row(a[n, 3 * H:], c_hat[n], b[0], b[1], HC[t, n])
        for n in range(N):                  # c_hat again, o's and its gradients (and c''s norm's means); i, f, g's, d c
            m1, m2 = lstm_out_back_row(d_cell[n], a[n], c_prev[n], rs[2, n], rs[1, n], b[0], b[1], c_hat[n], d_chat,
                                       da[n], g_b[0], g_b[1])
            lstm_gates_back_row(a[n], c_prev[n], g_c[n], d_chat, c_hat[n], rs[1, n], m1, m2, c_direct[n], da[n],
                                dc_out[n])
        norm_backward_rows(da, gam[1], hhat[t], rs[0], dHW[t], False, False, g_gam[1], g_gam[3])   # sums: after
        if t >= first_padded:
            _rows_padded(t, lengths, dh_out, dh_in, True)
            _rows_padded(t, lengths, dc_out, dc_in, True)
        _recurrent_grad(gemm, W_hh, Wp, kc, dHW[t], h_mask, masked, rec, dh_out)
        dh_in, dh_out = dh_out, dh_in
        dc_in, dc_out = dc_out, dc_in
    dh[...] = dh_in
    dc[...] = dc_in


@njit(**_JIT)
def gru_forward(gemm, W_hhT, Wp, kc, gam, xhat, h, lengths, reverse, h_mask, zh, y, acts, hhat, rstd, a_ns, hs, hms,
                store):
    """All T steps of the layer-normalised GRU; ``h`` (N, H) in as the initial state, out as the final one.

    ``xhat`` (T, N, 3H) = LN(xw), the normalised input products of every step; ``gam`` (4, 3H) =
    [gamma_ih, gamma_hh, b_ih, b_hh]; ``W_hhT`` (H, 3H). With ``store``:
    ``acts`` = [r, z, n], ``hhat`` (T, N, 3H), ``rstd`` (T, N) of hw, ``a_ns`` (T, N, H) =
    LN(hw)_n + b_hn, ``hs`` (T, N, H) h entering, ``hms`` (T, N, H) = h m_h.
    """
    T, N, G = xhat.shape
    H = h.shape[1]
    one = h.dtype.type(1)
    first_padded = lengths.min()
    masked = h_mask.shape[0] > 0
    hw, sa, sh = np.empty((N, G), h.dtype), np.empty((N, G), h.dtype), np.empty((N, G), h.dtype)
    sr, shm, u = np.empty(N, h.dtype), np.empty((N, H), h.dtype), np.empty((N, G), h.dtype)
    none = np.empty((0, G), h.dtype)
    h_in, h_out = h.copy(), np.empty_like(h)
    for s in range(T):
        t = T - 1 - s if reverse else s
        a, h_hat, rs, hm = (acts[t], hhat[t], rstd[t], hms[t]) if store else (sa, sh, sr, shm)
        _times_mask(hm, h_in, h_mask, masked)
        pmm(gemm, Wp, kc, hm, W_hhT, one - one, hw)               # h m_h (N, H) @ W_hh^T (H, 3H)
        norm_into(hw, h_hat, rs, gam[1], gam[3], none, gam[0], a)  # a = gamma_hh LN(hw) + b_hh
        affine(xhat[t], gam[0], gam[2], u)                        # u = gamma_ih LN(xw) + b_ih
        if store:
            hs[t] = h_in
        for n in range(N):                  # PyTorch's GRU step on (u, a); u's n block gets a_n
            gru_step(a[n], u[n], h_in[n], h_out[n])
        if store:
            a_ns[t] = u[:, 2 * H:]
        if zh.shape[0] > 0:
            _zone(h_out, h_in, zh[t])
        if t >= first_padded:
            _rows_padded(t, lengths, h_out, h_in, True)
        y[t] = h_out
        if t >= first_padded:
            _rows_padded(t, lengths, y[t], y[t], False)
        h_in, h_out = h_out, h_in
    h[...] = h_in


@njit(**_JIT)
def _gru_back_row(a, a_n, h_prev, g_h, du, da, dh_out):
    """One row: d u (input side) and d a (recurrent side, before its norm) of PyTorch's GRU step,
    and d h entering's elementwise part, added into ``dh_out``."""
    H = h_prev.shape[0]
    one = h_prev.dtype.type(1)
    for k in range(H):
        rr, z, nn = a[k], a[H + k], a[2 * H + k]
        gh = g_h[k]
        dn = gh * (one - z) * (one - nn * nn)
        dr = dn * a_n[k] * rr * (one - rr)
        dz = gh * (h_prev[k] - nn) * z * (one - z)
        du[k], du[H + k], du[2 * H + k] = dr, dz, dn
        da[k], da[H + k], da[2 * H + k] = dr, dz, dn * rr
        dh_out[k] += gh * z


@njit(**_JIT)
def gru_backward(gemm, W_hh, Wp, kc, gam, acts, hhat, rstd, a_ns, hs, lengths, reverse, h_mask, zh, dy, dh, dU, dHW,
                 g_gam):
    """Backward of :func:`gru_forward`; ``dh`` (N, H) in as d h_T, out as d h_0.

    Fills ``dU`` (T, N, 3H) with d u (the input norm's backward is :func:`input_side_backward`'s) and
    ``dHW`` (T, N, 3H) with d hw; adds the recurrent side's sums into ``g_gam[1]`` (d gamma_hh) and
    ``g_gam[3]`` (d b_hh).
    """
    T, N, G = acts.shape
    H = dh.shape[1]
    first_padded = lengths.min()
    masked, zoned = h_mask.shape[0] > 0, zh.shape[0] > 0
    g, g_h, rec = np.empty((N, H), dh.dtype), np.empty((N, H), dh.dtype), np.empty((N, H), dh.dtype)
    da = np.empty((N, G), dh.dtype)
    dh_in, dh_out = dh.copy(), np.empty_like(dh)
    for s in range(T):
        t = s if reverse else T - 1 - s
        _output_grad(dh_in, dy, t, g)
        _split(g, zh[t] if zoned else g, g_h, dh_out, zoned)
        if t >= first_padded:
            _rows_padded(t, lengths, g_h, g_h, False)
        a, a_n, h_prev, du = acts[t], a_ns[t], hs[t], dU[t]
        for n in range(N):
            _gru_back_row(a[n], a_n[n], h_prev[n], g_h[n], du[n], da[n], dh_out[n])
        norm_backward_rows(da, gam[1], hhat[t], rstd[t], dHW[t], False, True, g_gam[1], g_gam[3])
        if t >= first_padded:
            _rows_padded(t, lengths, dh_out, dh_in, True)
        _recurrent_grad(gemm, W_hh, Wp, kc, dHW[t], h_mask, masked, rec, dh_out)
        dh_in, dh_out = dh_out, dh_in
    dh[...] = dh_in
