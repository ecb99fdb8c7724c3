"""The fused scan of the layer-normalised cells: arguments and cache around :mod:`rnnkit.kernels.layernorm`.

Called by :mod:`rnnkit.kernels.variant_scan` for a cell whose ``fused_kernel`` is
"lstm_ln" or "gru_ln"; the cell carries its weights in ``cell.p`` (a dict by name,
see :mod:`rnnkit.nn.layernorm_cells`) and the scanner passes no biases (the cell adds
them after the norms). Returns the scanner's results, with the cell's gradients as
``d_cell`` = {name: gradient}.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from . import layernorm

__all__ = ["KERNELS", "LayerNormScanCache", "scan_forward", "scan_backward"]

KERNELS = ("lstm_ln", "gru_ln")


class LayerNormScanCache(NamedTuple):
    cell: object
    x: np.ndarray                 # (T, N, D)
    W_ih: np.ndarray
    W_hh: np.ndarray              # (G*H, P) as used (after weight drop)
    lengths: np.ndarray
    reverse: bool
    arrays: tuple                 # what forward kept (see the loops)
    hms: np.ndarray               # (T, N, P) h m_h: the recurrent product's input
    masks: tuple                  # (W_hr, h_mask, d_h, d_c) feature-major
    gam: np.ndarray
    b: Optional[np.ndarray]
    variant: object


def scan_forward(loop, cell, x, state0, W_ih, W_hh, lengths, reverse, need_cache, variant, masks):
    T, N, D = x.shape
    GH, P = W_hh.shape
    H = GH // cell.num_gates
    dtype = x.dtype
    p = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in cell.p.items()}
    lens = np.full(N, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    y = np.empty((T, N, P), dtype)
    states = [np.array(s.T, order="C") for s in state0]
    S = T if need_cache else 0
    W_hr, h_mask, d_h, d_c = masks
    acts, xhat, hhat = (np.empty((S, GH, N), dtype) for _ in range(3))
    hms = np.empty((S, N, P), dtype)
    if cell.fused_kernel == "lstm_ln":
        gam = np.stack([p["ln_weight_ih"], p["ln_weight_hh"], p["bias_ih"] + p["bias_hh"]])   # (3, 4H)
        b = np.stack([p["ln_weight_c"], p["ln_bias_c"]])                                   # (2, H)
        rstd = np.empty((S, 3, N), dtype)
        cs, chat = np.empty((S, H, N), dtype), np.empty((S, H, N), dtype)
        fn, gemm = loop(layernorm.lstm_forward, dtype)
        fn(gemm, W_hh, W_ih, gam, b, W_hr, x, states[0], states[1], lens, reverse, h_mask, d_h, d_c, y, acts, xhat,
           hhat, rstd, cs, chat, hms, need_cache)
        arrays = (acts, xhat, hhat, rstd, cs, chat)
    else:
        gam = np.stack([p["ln_weight_ih"], p["ln_weight_hh"], p["bias_ih"], p["bias_hh"]])  # (4, 3H)
        b = None
        rstd = np.empty((S, 2, N), dtype)
        a_ns, hs = np.empty((S, H, N), dtype), np.empty((S, H, N), dtype)
        fn, gemm = loop(layernorm.gru_forward, dtype)
        fn(gemm, W_hh, W_ih, gam, x, states[0], lens, reverse, h_mask, d_h, y, acts, xhat, hhat, rstd, a_ns, hs, hms,
           need_cache)
        arrays = (acts, xhat, hhat, rstd, a_ns, hs)
    state_T = tuple(np.ascontiguousarray(s.T) for s in states)
    if not need_cache:
        return y, state_T, None
    return y, state_T, LayerNormScanCache(cell, x, W_ih, W_hh, lens, reverse, arrays, hms, masks, gam, b, variant)


def scan_backward(loop, dy, d_state_T, cache: LayerNormScanCache):
    cell, x, W_ih, W_hh, lens, reverse, arrays, hms, masks, gam, b, _ = cache
    W_hr, h_mask, d_h, d_c = masks
    T, N, D = x.shape
    GH, P = W_hh.shape
    H = GH // cell.num_gates
    TN = T * N
    dtype = x.dtype
    d_states = [np.zeros((n, N), dtype) if d is None else np.array(np.asarray(d, dtype=dtype).T, order="C")
                for d, n in zip(d_state_T or (None,) * cell.num_states, (P, H))]
    dy = np.empty((0, N, P), dtype) if dy is None else np.ascontiguousarray(dy, dtype=dtype)
    dXW, dHW = np.empty((T, N, GH), dtype), np.empty((T, N, GH), dtype)
    g_gam = np.zeros((4, GH), dtype)
    dW_hr = None
    if cell.fused_kernel == "lstm_ln":
        proj = W_hr.shape[0] > 0
        dHP, HC = np.empty((T if proj else 0, N, P), dtype), np.empty((T if proj else 0, N, H), dtype)
        g_b = np.zeros((2, H), dtype)
        fn, gemm = loop(layernorm.lstm_backward, dtype)
        fn(gemm, W_hh, gam, b, W_hr, *arrays, lens, reverse, h_mask, d_h, d_c, dy, d_states[0], d_states[1], dXW, dHW,
           dHP, HC, g_gam, g_b)
        if proj:
            dW_hr = dHP.reshape(TN, P).T @ HC.reshape(TN, H)                 # (P, H)
        d_cell = {"ln_weight_c": g_b[0], "ln_bias_c": g_b[1]}
    else:
        fn, gemm = loop(layernorm.gru_backward, dtype)
        fn(gemm, W_hh, gam, *arrays, lens, reverse, h_mask, d_h, dy, d_states[0], dXW, dHW, g_gam)
        d_cell = {}
    d_cell.update(ln_weight_ih=g_gam[0], ln_weight_hh=g_gam[1], bias_ih=g_gam[2], bias_hh=g_gam[3])
    dXW2, dHW2 = dXW.reshape(TN, GH), dHW.reshape(TN, GH)
    dx = (dXW2 @ W_ih).reshape(T, N, D)                                     # (T, N, D)
    dW_ih = dXW2.T @ x.reshape(TN, D)                                       # (G*H, D)
    dW_hh = dHW2.T @ hms.reshape(TN, P)                                     # (G*H, P)
    d_state0 = tuple(np.ascontiguousarray(d.T) for d in d_states)
    return dx, d_state0, (dW_ih, dW_hh, None, None, dW_hr, d_cell)
