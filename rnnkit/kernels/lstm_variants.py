r"""Fused LSTM loop for the variants: projection, variational recurrent mask and zoneout.

The plain loop (:mod:`rnnkit.kernels.lstm`) plus, per step, in the layout of
:mod:`rnnkit.kernels.fused_scan` (feature-major blocks (., N)):

.. math::
    a = W_{hh} (h \odot m_h) + W_{ih} x_t + b, \quad
    (h_{cell}, c_{new}) = \mathrm{LSTM}(a, c), \quad h_{new} = W_{hr} h_{cell}, \\
    h' = h_{new} + d^h_t \odot (h - h_{new}), \quad c' = c_{new} + d^c_t \odot (c - c_{new})

and, with peepholes ``ph`` = [p_i, p_f, p_o] (each repeated over the batch: (3*H*N,)) (:mod:`rnnkit.nn.peephole`),
i and f see ``p c`` and o sees ``p_o c_new`` in their pre-activations; with ``W_hr`` (P, H) only when projected (else h_new = h_cell and P = H), ``m_h`` (P, N)
the per-sequence recurrent keep-mask and ``d`` (T, ., N) zoneout's keep-previous
weights; an absent one is passed as an array with a zero-length first axis.
The elementwise gate arithmetic is :func:`rnnkit.kernels.lstm.forward_step` /
``backward_step``, the same code as the plain loop.

Forward keeps what the plain loop keeps (gates, c entering, [h m_h | 1 | x_t]).
Backward recomputes h_cell when projected and writes ``HC`` (T, N, H) and the
gradient of h_new ``dHP`` (T, N, P), so that dW_hr = dHP^T HC is one product.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .lstm import backward_step, forward_step
from .primitives import double_buffer, fill_rows, keep_padded, mm, read_output_grad, sigmoid, tanh, \
    transpose_into, write_output, zero_padded

__all__ = ["forward", "backward"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def _times_mask(dst, src, mask, masked):
    """``dst = src * mask`` (or a copy when not ``masked``), flat."""
    d, s = dst.reshape(dst.size), src.reshape(src.size)
    if masked:
        m = mask.reshape(mask.size)
        for k in range(d.size):
            d[k] = s[k] * m[k]
    else:
        for k in range(d.size):
            d[k] = s[k]


@njit(**_JIT)
def _zone(new, old, d):
    """Zoneout: ``new += d (old - new)``, flat over a block."""
    n, o, w = new.reshape(new.size), old.reshape(old.size), d.reshape(d.size)
    for k in range(n.size):
        n[k] += w[k] * (o[k] - n[k])


@njit(**_JIT)
def _split(g, d, into, direct, zoned):
    """Zoneout's backward split of g: ``into = (1 - d) g`` (to the cell), ``direct = d g`` (to the previous state)."""
    gf, i, r = g.reshape(g.size), into.reshape(into.size), direct.reshape(direct.size)
    if zoned:
        w = d.reshape(d.size)
        one = gf.dtype.type(1)
        for k in range(gf.size):
            i[k] = (one - w[k]) * gf[k]
            r[k] = w[k] * gf[k]
    else:
        zero = gf.dtype.type(0)
        for k in range(gf.size):
            i[k] = gf[k]
            r[k] = zero


@njit(**_JIT)
def forward_step_peephole(a, c, h_out, c_out, ph):
    """:func:`rnnkit.kernels.lstm.forward_step` with peepholes; ``ph`` (3*H*N,) = [p_i, p_f, p_o], each
    repeated over the batch (one value per block entry), so the loops stay flat.

    Three short loops rather than one: written as one (o reading c' in the same iteration),
    numba's loop is not vectorised and runs about 6x slower than the plain step; these three
    together cost about 1.25x the plain step (measured at H*N = 2048, float32).
    """
    HN = c.shape[0]
    for k in range(HN):                                   # i and f see the cell state entering the step
        a[k] += ph[k] * c[k]
        a[HN + k] += ph[HN + k] * c[k]
    for k in range(HN):
        i = sigmoid(a[k])
        f = sigmoid(a[HN + k])
        g = tanh(a[2 * HN + k])
        c_out[k] = f * c[k] + i * g
        a[k], a[HN + k], a[2 * HN + k] = i, f, g
    for k in range(HN):                                   # o sees the new one
        o = sigmoid(a[3 * HN + k] + ph[2 * HN + k] * c_out[k])
        h_out[k] = o * tanh(c_out[k])
        a[3 * HN + k] = o


@njit(**_JIT)
def backward_step_peephole(act, c, dh, dc, dg, dc_out, ph, g_ph):
    """Elementwise backward of :func:`forward_step_peephole`: gate gradients ``dg`` (4*H*N,) and d c;
    adds [da_i c, da_f c, da_o c'] into ``g_ph`` (3*H*N,) (summed over the batch by the caller)."""
    HN = c.shape[0]
    one = c.dtype.type(1)
    for k in range(HN):
        i, f, g, o = act[k], act[HN + k], act[2 * HN + k], act[3 * HN + k]
        c_prev = c[k]
        tanh_c = tanh(f * c_prev + i * g)
        da_o = dh[k] * tanh_c * o * (one - o)
        dc_t = dc[k] + dh[k] * o * (one - tanh_c * tanh_c) + da_o * ph[2 * HN + k]
        da_i = dc_t * g * i * (one - i)
        da_f = dc_t * c_prev * f * (one - f)
        dg[k] = da_i
        dg[HN + k] = da_f
        dg[2 * HN + k] = dc_t * i * (one - g * g)
        dg[3 * HN + k] = da_o
        dc_out[k] = dc_t * f + da_i * ph[k] + da_f * ph[HN + k]
    for k in range(HN):
        c_prev = c[k]
        g_ph[k] += dg[k] * c_prev
        g_ph[HN + k] += dg[HN + k] * c_prev
        g_ph[2 * HN + k] += dg[3 * HN + k] * (act[HN + k] * c_prev + act[k] * act[2 * HN + k])


@njit(**_JIT)
def _cell_step(a, c, h_out, c_out, ph):
    """The step's gate arithmetic: plain, or with peepholes when ``ph`` is not empty."""
    if ph.shape[0] > 0:
        forward_step_peephole(a, c, h_out, c_out, ph)
    else:
        forward_step(a, c, h_out, c_out)


@njit(**_JIT)
def forward(gemm, W_hh, W_ih, b, W_hr, ph, x, h, c, lengths, reverse, h_mask, zh, zc, y, acts, cs, zs, store):
    """Run all T steps; ``h`` (P, N), ``c`` (H, N) hold the initial state and end as the final one.

    ``y`` (T, N, P) receives the outputs. With ``store``, fills ``acts`` (T, 4H, N), ``cs`` (T, H, N)
    and ``zs`` (T, N, P+1+D), each step's [h m_h | 1 | x_t], for backward.
    """
    T, _, D = x.shape
    P, N = h.shape
    H = c.shape[0]
    HN = H * N
    one = h.dtype.type(1)
    zero = one - one
    first_padded = lengths.min()
    proj, masked = W_hr.shape[0] > 0, h_mask.shape[0] > 0
    a_scratch = np.empty((4 * H, N), h.dtype)
    z_in = np.empty((P + 1 + D, N), h.dtype)         # [h m_h; 1; x_t^T]: the products' right-hand sides
    z_in[P] = one
    h_cell = np.empty((H, N), h.dtype)
    h_in, h_out = double_buffer(h)
    c_in, c_out = double_buffer(c)
    for s in range(T):
        t = T - 1 - s if reverse else s
        a = acts[t] if store else a_scratch
        _times_mask(z_in[:P], h_in, h_mask, masked)                # h m_h (P, N)
        transpose_into(z_in[P + 1:], x[t])                         # x_t^T (D, N)
        fill_rows(a, b)                                            # a = b
        mm(gemm, False, W_hh, z_in[:P], one, one, a)               #   + W_hh (4H, P) @ h m_h (P, N)
        mm(gemm, False, W_ih, z_in[P + 1:], one, one, a)           #   + W_ih (4H, D) @ x_t^T (D, N)
        if store:
            transpose_into(zs[t], z_in)                            # [h m_h | 1 | x_t] (N, P+1+D)
            cs[t] = c_in
        if proj:
            _cell_step(a.reshape(4 * HN), c_in.reshape(HN), h_cell.reshape(HN), c_out.reshape(HN), ph)
            mm(gemm, False, W_hr, h_cell, one, zero, h_out)        # h_new = W_hr (P, H) @ h_cell (H, N)
        else:
            _cell_step(a.reshape(4 * HN), c_in.reshape(HN), h_out.reshape(HN), c_out.reshape(HN), ph)
        if zh.shape[0] > 0:
            _zone(h_out, h_in, zh[t])
        if zc.shape[0] > 0:
            _zone(c_out, c_in, zc[t])
        if t >= first_padded:                                      # padded sequences keep their state
            keep_padded(t, lengths, h_out, h_in)
            keep_padded(t, lengths, c_out, c_in)
        write_output(t, lengths, first_padded, h_out, y[t])
        h_in, h_out = h_out, h_in
        c_in, c_out = c_out, c_in
    h[...] = h_in
    c[...] = c_in


@njit(**_JIT)
def backward(gemm, W_hh, W_hr, ph, acts, cs, lengths, reverse, h_mask, zh, zc, dy, dh, dc, dG, dHP, HC, g_ph):
    """Walk the steps backwards; ``dh`` (P, N), ``dc`` (H, N) enter as d state_T and end as d state_0.

    Fills ``dG`` (T, N, 4H) with the gate gradients and, when projected, ``dHP`` (T, N, P) with
    d h_new and ``HC`` (T, N, H) with h_cell. ``dy`` is (T, N, P) or empty (0, N, P).
    """
    T = acts.shape[0]
    P, N = dh.shape
    H = dc.shape[0]
    HN = H * N
    one = dh.dtype.type(1)
    zero = one - one
    first_padded = lengths.min()
    proj, masked = W_hr.shape[0] > 0, h_mask.shape[0] > 0
    zoned_h, zoned_c = zh.shape[0] > 0, zc.shape[0] > 0
    dg = np.empty((4 * H, N), dh.dtype)
    g = np.empty((P, N), dh.dtype)                   # d h' + d y_t: the gradient at the state's h
    g_h = np.empty((P, N), dh.dtype)                 # its part that enters the step (d h_new)
    g_c = np.empty((H, N), dh.dtype)
    c_direct = np.empty((H, N), dh.dtype)
    d_cell = np.empty((H, N), dh.dtype) if proj else g_h   # d h_cell = W_hr^T d h_new
    h_cell = np.empty((H, N), dh.dtype)
    scratch = np.empty((H, N), dh.dtype)
    no_dy = np.zeros((H, N), dh.dtype)
    rec = np.empty((P, N), dh.dtype)
    dh_in, dh_out = double_buffer(dh)
    dc_in, dc_out = double_buffer(dc)
    dy_t = np.zeros_like(dh)
    for s in range(T):
        t = s if reverse else T - 1 - s
        read_output_grad(dy, t, dy_t)
        gf, a_, b_ = g.reshape(P * N), dh_in.reshape(P * N), dy_t.reshape(P * N)
        for k in range(P * N):
            gf[k] = a_[k] + b_[k]
        _split(g, zh[t] if zoned_h else g, g_h, dh_out, zoned_h)   # dh_out starts as zoneout's direct path
        _split(dc_in, zc[t] if zoned_c else dc_in, g_c, c_direct, zoned_c)
        if t >= first_padded:                                      # padded: nothing enters the step
            zero_padded(t, lengths, g_h)
            zero_padded(t, lengths, g_c)
        if proj:
            mm(gemm, True, W_hr, g_h, one, zero, d_cell)           # d h_cell = W_hr^T (H, P) @ d h_new (P, N)
            transpose_into(dHP[t], g_h)
            act, c_prev = acts[t].reshape(4 * HN), cs[t].reshape(HN)
            hc = h_cell.reshape(HN)
            for k in range(HN):                                    # h_cell = o tanh(f c + i g), for dW_hr
                hc[k] = act[3 * HN + k] * tanh(act[HN + k] * c_prev[k] + act[k] * act[2 * HN + k])
            transpose_into(HC[t], h_cell)
        if ph.shape[0] > 0:
            backward_step_peephole(acts[t].reshape(4 * HN), cs[t].reshape(HN), d_cell.reshape(HN), g_c.reshape(HN),
                                   dg.reshape(4 * HN), dc_out.reshape(HN), ph, g_ph)
        else:
            backward_step(acts[t].reshape(4 * HN), cs[t].reshape(HN), d_cell.reshape(HN), g_c.reshape(HN),
                          no_dy.reshape(HN), dg.reshape(4 * HN), scratch.reshape(HN), dc_out.reshape(HN))
        dco, cd = dc_out.reshape(HN), c_direct.reshape(HN)
        for k in range(HN):
            dco[k] += cd[k]
        if t >= first_padded:                                      # padded: the state passes through
            keep_padded(t, lengths, dh_out, dh_in)
            keep_padded(t, lengths, dc_out, dc_in)
        if masked:                                                 # d h += m_h * (W_hh^T (P, 4H) @ dg (4H, N))
            mm(gemm, True, W_hh, dg, one, zero, rec)
            o, r, m = dh_out.reshape(P * N), rec.reshape(P * N), h_mask.reshape(P * N)
            for k in range(P * N):
                o[k] += m[k] * r[k]
        else:
            mm(gemm, True, W_hh, dg, one, one, dh_out)
        transpose_into(dG[t], dg)
        dh_in, dh_out = dh_out, dh_in
        dc_in, dc_out = dc_out, dc_in
    dh[...] = dh_in
    dc[...] = dc_in
