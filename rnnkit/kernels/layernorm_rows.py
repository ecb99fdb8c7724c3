r"""The row kernels of the layer-norm loops (:mod:`rnnkit.kernels.layernorm`): norms, their backward, gate rows.

A layer norm of a row v (R,) and its backward, for ``out = gain * v_hat + shift``:

.. math::
    \mu = \bar v, \quad s = 1/\sqrt{\overline{(v - \mu)^2} + \epsilon}, \quad \hat v = (v - \mu) s, \\
    \delta = d \odot \mathrm{gain}, \quad
    dv = s\,(\delta - \bar\delta - \hat v\, \overline{\delta \hat v}), \quad
    d\,\mathrm{gain} \mathrel{+}= d \odot \hat v, \quad d\,\mathrm{shift} \mathrel{+}= d

Each row is walked as few times as its data dependencies allow: the backward takes the two means
in the pass that forms delta and writes dv in a second one; the LSTM's norm of c' takes its sum in
the gate pass, its variance in a second and writes h in a third; the backward forms c_hat again
from the gates, c and the two statistics (not kept: H fewer stored values per row) in the output
gate's backward pass, takes the c' norm's means there and applies its backward inside the gates'
backward pass. Reductions are compiled with reassociation and contraction allowed (the one way
LLVM vectorises a floating-point sum); that changes only the order of the additions.
Every scalar statistic (means, 1 / std) is kept in the rows' dtype: in numba a float32 sum divided by
an integer is a float64, and the row loops that use it then run in float64 (the norm's backward of a
(16, 512) float32 block took 14.8 us that way, 1.5-2.2 us now; an output pass whose tanh got a float64
argument went through libm: 48 against 1 us for a (16, 128) block).
A norm written in place is its own function (:func:`norm_rows_inplace`, ``inplace`` of
:func:`norm_backward_rows`): with two array arguments that might overlap, LLVM checks for the
overlap at run time and, when they are the same array, runs its scalar loop, half as fast.
"""

from __future__ import annotations

import math

from numba import njit

from .primitives import sigmoid, tanh

__all__ = ["EPS", "centred_rstd", "norm_rows", "norm_rows_inplace", "norm_into", "affine", "lstm_gates_row",
           "lstm_norm_out_row", "lstm_chat_row", "lstm_out_row", "lstm_out_back_row", "lstm_gates_back_row",
           "norm_backward_rows", "input_side_backward"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)
_JIT_SUM = dict(_JIT, fastmath={"reassoc", "contract"})
EPS = 1e-5


@njit(inline="always", **_JIT_SUM)
def _row_stats(v, m):
    """Mean and 1 / sqrt(var + EPS) of row ``m`` of ``v`` (two passes: the variance of the centred values)."""
    R = v.shape[1]
    s = v.dtype.type(0)
    for r in range(R):
        s += v[m, r]
    mu = s * v.dtype.type(1.0 / R)
    return mu, centred_rstd(v[m], mu)


@njit(inline="always", **_JIT_SUM)
def centred_rstd(v, mu):
    """1 / sqrt(mean((v - mu)^2) + EPS) of a row ``v`` (R,), in ``v``'s dtype (as ``mu`` must be)."""
    R = v.shape[0]
    q = v.dtype.type(0)
    for r in range(R):
        d = v[r] - mu
        q += d * d
    return v.dtype.type(1.0 / math.sqrt(q * (1.0 / R) + EPS))


@njit(**_JIT_SUM)
def norm_rows(v, v_hat, rstd):
    """Per row of ``v`` (M, R): v_hat = (v - mean) / sqrt(var + EPS); ``rstd`` (M,) = 1 / sqrt(var + EPS)."""
    M, R = v.shape
    for m in range(M):
        mu, rs = _row_stats(v, m)
        rstd[m] = rs
        for r in range(R):
            v_hat[m, r] = (v[m, r] - mu) * rs


@njit(**_JIT_SUM)
def norm_rows_inplace(v, rstd):
    """:func:`norm_rows` with ``v_hat`` = ``v``."""
    M, R = v.shape
    for m in range(M):
        mu, rs = _row_stats(v, m)
        rstd[m] = rs
        for r in range(R):
            v[m, r] = (v[m, r] - mu) * rs


@njit(**_JIT_SUM)
def norm_into(v, v_hat, rstd, gain, shift, x, x_gain, out):
    """:func:`norm_rows`, and ``out`` (M, R) = gain * v_hat + shift (+ x_gain * x, when ``x`` is not empty)
    in the same pass."""
    M, R = v.shape
    both = x.shape[0] > 0
    for m in range(M):
        mu, rs = _row_stats(v, m)
        rstd[m] = rs
        if both:
            for r in range(R):
                vh = (v[m, r] - mu) * rs
                v_hat[m, r] = vh
                out[m, r] = gain[r] * vh + x_gain[r] * x[m, r] + shift[r]
        else:
            for r in range(R):
                vh = (v[m, r] - mu) * rs
                v_hat[m, r] = vh
                out[m, r] = gain[r] * vh + shift[r]


@njit(**_JIT)
def affine(x, gain, shift, out):
    """out (M, R) = gain * x + shift."""
    M, R = x.shape
    for m in range(M):
        for r in range(R):
            out[m, r] = gain[r] * x[m, r] + shift[r]


@njit(**_JIT_SUM)
def lstm_gates_row(a, c, c_out):
    """One row: ``a`` (4H,) pre-activations in, [i, f, g, o] out; ``c_out`` = f c + i g; returns its mean."""
    H = c.shape[0]
    s = c.dtype.type(0)
    for k in range(H):
        i = sigmoid(a[k])
        f = sigmoid(a[H + k])
        g = tanh(a[2 * H + k])
        o = sigmoid(a[3 * H + k])
        cn = f * c[k] + i * g
        c_out[k] = cn
        s += cn
        a[k], a[H + k], a[2 * H + k], a[3 * H + k] = i, f, g, o
    return s * c.dtype.type(1.0 / H)


@njit(**_JIT)
def lstm_norm_out_row(o, c, mu, rs, gain, bias, h):
    """One row: h (H,) = o tanh(gain c_hat + bias), c_hat = (c - mu) rs."""
    for k in range(h.shape[0]):
        h[k] = o[k] * tanh(gain[k] * ((c[k] - mu) * rs) + bias[k])


@njit(**_JIT)
def lstm_chat_row(a, c_prev, mu, rs, c_hat):
    """One row: c_hat (H,) = (f c_prev + i g - mu) rs, the normalised c' again from the gates ``a`` (4H,)
    and the c entering, instead of keeping it from the forward."""
    H = c_hat.shape[0]
    for k in range(H):
        c_hat[k] = (a[H + k] * c_prev[k] + a[k] * a[2 * H + k] - mu) * rs


@njit(**_JIT)
def lstm_out_row(o, c_hat, gain, bias, h):
    """One row: h (H,) = o tanh(gain c_hat + bias)."""
    for k in range(h.shape[0]):
        h[k] = o[k] * tanh(gain[k] * c_hat[k] + bias[k])


@njit(**_JIT_SUM)
def lstm_out_back_row(d_cell, a, c_prev, mu, rs, gain, bias, c_hat, d_chat, da, g_gain, g_bias):
    """One row of the backward of h = o tanh(gain c_hat + bias), c_hat = (f c_prev + i g - mu) rs formed
    again (into ``c_hat``, as :func:`lstm_chat_row`): ``da``'s o block, ``d_chat`` = d c_hat (through the
    gain), the gain's and bias's sums; returns the means of d_chat and d_chat c_hat."""
    H = c_hat.shape[0]
    one = c_prev.dtype.type(1)
    m1, m2 = one - one, one - one
    for k in range(H):
        ch = (a[H + k] * c_prev[k] + a[k] * a[2 * H + k] - mu) * rs
        c_hat[k] = ch
        o = a[3 * H + k]
        tm = tanh(gain[k] * ch + bias[k])
        dm = d_cell[k] * o * (one - tm * tm)
        dch = dm * gain[k]
        d_chat[k] = dch
        m1 += dch
        m2 += dch * ch
        da[3 * H + k] = d_cell[k] * tm * o * (one - o)
        g_gain[k] += dm * ch
        g_bias[k] += dm
    inv = c_prev.dtype.type(1.0 / H)
    return m1 * inv, m2 * inv


@njit(**_JIT)
def lstm_gates_back_row(a, c_prev, g_c, d_chat, c_hat, rs, m1, m2, c_direct, da, dc_out):
    """One row: d c' = g_c + rs (d_chat - m1 - c_hat m2) (c''s norm backward, means from
    :func:`lstm_out_back_row`), then ``da``'s i, f, g blocks and d c entering (plus zoneout's direct part)."""
    H = c_prev.shape[0]
    one = c_prev.dtype.type(1)
    for k in range(H):
        i, f, gg = a[k], a[H + k], a[2 * H + k]
        dct = g_c[k] + rs * (d_chat[k] - m1 - c_hat[k] * m2)
        da[k] = dct * gg * i * (one - i)
        da[H + k] = dct * c_prev[k] * f * (one - f)
        da[2 * H + k] = dct * i * (one - gg * gg)
        dc_out[k] = dct * f + c_direct[k]


@njit(**_JIT_SUM)
def norm_backward_rows(d, gain, v_hat, rstd, dv, inplace, sums, s_dv, s_d):
    """Per row of ``d`` (M, R): ``dv`` (or ``d`` itself, ``inplace``) = the norm's backward of d * gain;
    with ``sums``, adds sum d v_hat into ``s_dv`` and sum d into ``s_d`` (the gain's and shift's gradients)."""
    M, R = d.shape
    zero, inv = d.dtype.type(0), d.dtype.type(1.0 / R)
    for m in range(M):
        m1, m2 = zero, zero
        if sums:
            for r in range(R):
                dd = d[m, r]
                s_dv[r] += dd * v_hat[m, r]
                s_d[r] += dd
                dg = dd * gain[r]
                m1 += dg
                m2 += dg * v_hat[m, r]
        else:
            for r in range(R):
                dg = d[m, r] * gain[r]
                m1 += dg
                m2 += dg * v_hat[m, r]
        m1 *= inv
        m2 *= inv
        rs = rstd[m]
        if inplace:
            for r in range(R):
                d[m, r] = rs * (d[m, r] * gain[r] - m1 - v_hat[m, r] * m2)
        else:
            for r in range(R):
                dv[m, r] = rs * (d[m, r] * gain[r] - m1 - v_hat[m, r] * m2)


@njit(**_JIT_SUM)
def _side_rows_with_h(d, gain, x_hat, h_hat, rstd, s_x, s_h, s_d):
    """:func:`norm_backward_rows` in place with sums, adding also sum d h_hat into ``s_h``, in the same passes."""
    M, R = d.shape
    zero, inv = d.dtype.type(0), d.dtype.type(1.0 / R)
    for m in range(M):
        m1, m2 = zero, zero
        for r in range(R):
            dd = d[m, r]
            xh = x_hat[m, r]
            s_x[r] += dd * xh
            s_h[r] += dd * h_hat[m, r]
            s_d[r] += dd
            dg = dd * gain[r]
            m1 += dg
            m2 += dg * xh
        m1 *= inv
        m2 *= inv
        rs = rstd[m]
        for r in range(R):
            d[m, r] = rs * (d[m, r] * gain[r] - m1 - x_hat[m, r] * m2)


@njit(**_JIT)
def input_side_backward(dA, x_hat, rstd_x, gain, g_gam, h_hat):
    """After the loop, over all rows of ``dA`` (M, G*H), the gradient of the input side
    ``gain * x_hat + b_ih``: ``g_gam[0] += sum dA x_hat``, ``g_gam[2] += sum dA``, and ``dA`` is
    overwritten with d XW, the norm's backward of dA * gain. When ``h_hat`` (M, G*H) is not empty
    (the LSTM, where the recurrent side's gradient is the same dA), also ``g_gam[1] += sum dA h_hat``."""
    if h_hat.shape[0] > 0:
        _side_rows_with_h(dA, gain, x_hat, h_hat, rstd_x, g_gam[0], g_gam[1], g_gam[2])
    else:
        norm_backward_rows(dA, gain, x_hat, rstd_x, dA, True, True, g_gam[0], g_gam[2])
