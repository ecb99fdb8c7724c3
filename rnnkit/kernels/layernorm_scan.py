"""The fused scan of the layer-normalised cells: arguments and cache around :mod:`rnnkit.kernels.layernorm`.

Called by :mod:`rnnkit.kernels.variant_scan` for a cell whose ``fused_kernel`` is
"lstm_ln" or "gru_ln"; the cell carries its weights in ``cell.p`` (a dict by name,
see :mod:`rnnkit.nn.layernorm_cells`) and the scanner passes no biases (the cell adds
them after the norms). Returns the scanner's results, with the cell's gradients as
``d_cell`` = {name: gradient}.

Everything is batch-major, as the scanner's own arrays are (see :mod:`rnnkit.kernels.layernorm`):
before the loop, the input product of all steps, ``XW = X W_ih^T`` (T*N, G*H), and its norm;
after it, the input norm's backward and the sums of the gains and biases over all T*N rows,
then the weight gradients as single products over all tokens.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from . import layernorm, microgemm, panel_mm

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
    masks: tuple                  # (W_hr, h_mask, d_h, d_c) batch-major
    gam: np.ndarray
    b: Optional[np.ndarray]
    xhat: np.ndarray              # (T, N, G*H) normalised input products
    rstd_x: np.ndarray            # (T*N,) their 1 / std
    variant: object


def _batch_major(variant, N, P, H, dtype):
    """(W_hr or (0, 0), h_mask (N, P) or (0, P), d_h (T, N, P) or (0, N, P), d_c (T, N, H) or (0, N, H))."""
    W_hr, h_mask, zone = (None, None, None) if variant is None else variant
    W_hr = np.zeros((0, 0), dtype) if W_hr is None else np.ascontiguousarray(W_hr, dtype=dtype)
    h_mask = np.zeros((0, P), dtype) if h_mask is None else np.ascontiguousarray(h_mask, dtype=dtype)
    zone = (None, None) if zone is None else tuple(zone) + (None,) * (2 - len(zone))
    d = [np.zeros((0, N, n), dtype) if z is None else np.ascontiguousarray(z, dtype=dtype)
         for z, n in zip(zone, (P, H))]
    return W_hr, h_mask, d[0], d[1]


BACKWARD_CHUNKS = 4
"""The backward's product (K = G*H, P columns) runs K in chunks of this many L1 chunks (128 KiB of panel):
at (32, 1024) x (1024, 256) 163 us against 197 with L1-sized chunks (the accumulators of N = 32 rows are
loaded and stored once per chunk); the forward's (K = P) keeps L1 chunks, its fastest."""


PANEL_MIN_STEPS = 2
"""Packing costs about what one step's product gains on the panels (50 us for config A's (256, 1024)
weights): a one-step scan (a decoder fed one token at a time) multiplies with BLAS on the weights as they are."""


def _panels(gemm, M, T, chunks=1):
    """``(Mp, k_chunk)``: ``M``'s panels for the compiled loops (:mod:`rnnkit.kernels.panel_mm`), K in chunks
    of ``chunks`` L1 chunks; none (BLAS) for the Python ones (``gemm`` None), which multiply with
    ``np.matmul``, and for scans of fewer than :data:`PANEL_MIN_STEPS` steps ``T``."""
    kc = chunks * microgemm.k_chunk(panel_mm.VECTORS, M.dtype)
    use = gemm is not None and T >= PANEL_MIN_STEPS
    return (panel_mm.pack(M) if use else panel_mm.no_panels(M.dtype)), kc


def scan_forward(loop, cell, x, state0, W_ih, W_hh, lengths, reverse, need_cache, variant):
    T, N, D = x.shape
    GH, P = W_hh.shape
    H = GH // cell.num_gates
    TN = T * N
    dtype = x.dtype
    p = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in cell.p.items()}
    lens = np.full(N, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    masks = _batch_major(variant, N, P, H, dtype)
    W_hr, h_mask, d_h, d_c = masks
    xhat, rstd_x = (x.reshape(TN, D) @ W_ih.T).reshape(T, N, GH), np.empty(TN, dtype)   # X W_ih^T (T, N, G*H)
    norm, _ = loop(layernorm.norm_rows_inplace, dtype)
    norm(xhat.reshape(TN, GH), rstd_x)                                      # LN of every step's, in place
    W_hhT = np.ascontiguousarray(W_hh.T)                                    # (P, G*H)
    y = np.empty((T, N, P), dtype)
    states = [np.array(s, dtype=dtype, order="C") for s in state0]         # (N, P), (N, H): ends as state_T
    S = T if need_cache else 0
    acts, hhat = np.empty((S, N, GH), dtype), np.empty((S, N, GH), dtype)
    hms = np.empty((S, N, P), dtype)
    if cell.fused_kernel == "lstm_ln":
        gam = np.stack([p["ln_weight_ih"], p["ln_weight_hh"], p["bias_ih"] + p["bias_hh"]])   # (3, 4H)
        b = np.stack([p["ln_weight_c"], p["ln_bias_c"]])                                   # (2, H)
        rstd = np.empty((S, 3, N), dtype)
        cs = np.empty((S, N, H), dtype)
        W_hrT = np.ascontiguousarray(W_hr.T)                                # (H, P) or (0, 0)
        fn, gemm = loop(layernorm.lstm_forward, dtype)
        panels = _panels(gemm, W_hhT, T)                                     # (P, 4H) as panels
        fn(gemm, W_hhT, *panels, gam, b, W_hrT, xhat, states[0], states[1], lens, reverse, h_mask, d_h, d_c, y, acts,
           hhat, rstd, cs, hms, need_cache)
        arrays = (acts, hhat, rstd, cs)
    else:
        gam = np.stack([p["ln_weight_ih"], p["ln_weight_hh"], p["bias_ih"], p["bias_hh"]])  # (4, 3H)
        b = None
        rstd = np.empty((S, N), dtype)
        a_ns, hs = np.empty((S, N, H), dtype), np.empty((S, N, H), dtype)
        fn, gemm = loop(layernorm.gru_forward, dtype)
        panels = _panels(gemm, W_hhT, T)                                     # (H, 3H) as panels
        fn(gemm, W_hhT, *panels, gam, xhat, states[0], lens, reverse, h_mask, d_h, y, acts, hhat, rstd, a_ns, hs, hms,
           need_cache)
        arrays = (acts, hhat, rstd, a_ns, hs)
    state_T = tuple(states)
    if not need_cache:
        return y, state_T, None
    return y, state_T, LayerNormScanCache(cell, x, W_ih, W_hh, lens, reverse, arrays, hms, masks, gam, b, xhat,
                                          rstd_x, variant)


def scan_backward(loop, dy, d_state_T, cache: LayerNormScanCache):
    cell, x, W_ih, W_hh, lens, reverse, arrays, hms, masks, gam, b, xhat, rstd_x, _ = cache
    W_hr, h_mask, d_h, d_c = masks
    T, N, D = x.shape
    GH, P = W_hh.shape
    H = GH // cell.num_gates
    TN = T * N
    dtype = x.dtype
    d_states = [np.zeros((N, n), dtype) if d is None else np.array(d, dtype=dtype, order="C")
                for d, n in zip(d_state_T or (None,) * cell.num_states, (P, H))]
    dy = np.empty((0, N, P), dtype) if dy is None else np.ascontiguousarray(dy, dtype=dtype)
    dA, dHW = np.empty((T, N, GH), dtype), np.empty((T, N, GH), dtype)
    g_gam = np.zeros((4, GH), dtype)
    dW_hr = None
    side, _ = loop(layernorm.input_side_backward, dtype)
    if cell.fused_kernel == "lstm_ln":
        proj = W_hr.shape[0] > 0
        dHP, HC = np.empty((T if proj else 0, N, P), dtype), np.empty((T if proj else 0, N, H), dtype)
        g_b = np.zeros((2, H), dtype)
        fn, gemm = loop(layernorm.lstm_backward, dtype)
        panels = _panels(gemm, W_hh, T, BACKWARD_CHUNKS)                     # (4H, P) as panels
        fn(gemm, W_hh, *panels, gam, b, W_hr, *arrays, lens, reverse, h_mask, d_h, d_c, dy, d_states[0], d_states[1],
           dA, dHW, dHP, HC, g_gam, g_b)
        side(dA.reshape(TN, GH), xhat.reshape(TN, GH), rstd_x, gam[0], g_gam, arrays[1].reshape(TN, GH))
        g_gam[3] = g_gam[2]                                                 # d b_hh = d b_ih = sum d a
        if proj:
            dW_hr = dHP.reshape(TN, P).T @ HC.reshape(TN, H)                 # (P, H)
        d_cell = {"ln_weight_c": g_b[0], "ln_bias_c": g_b[1]}
    else:
        fn, gemm = loop(layernorm.gru_backward, dtype)
        panels = _panels(gemm, W_hh, T, BACKWARD_CHUNKS)                     # (3H, H) as panels
        fn(gemm, W_hh, *panels, gam, *arrays, lens, reverse, h_mask, d_h, dy, d_states[0], dA, dHW, g_gam)
        side(dA.reshape(TN, GH), xhat.reshape(TN, GH), rstd_x, gam[0], g_gam, np.empty((0, GH), dtype))
        d_cell = {}
    d_cell.update(ln_weight_ih=g_gam[0], ln_weight_hh=g_gam[1], bias_ih=g_gam[2], bias_hh=g_gam[3])
    dXW2, dHW2 = dA.reshape(TN, GH), dHW.reshape(TN, GH)                     # dA now holds d XW
    dx = (dXW2 @ W_ih).reshape(T, N, D)                                     # (T, N, D)
    dW_ih = dXW2.T @ x.reshape(TN, D)                                       # (G*H, D)
    dW_hh = dHW2.T @ hms.reshape(TN, P)                                     # (G*H, P)
    return dx, tuple(d_states), (dW_ih, dW_hh, None, None, dW_hr, d_cell)
