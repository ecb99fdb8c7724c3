"""The fused scan for the cell variants (projection, variational recurrent mask, zoneout).

Same arguments, results and cache contract as :mod:`rnnkit.kernels.fused_scan`
(which hands a scan with a non-plain ``variant`` here): LSTM runs
:mod:`rnnkit.kernels.lstm_variants`, GRU :mod:`rnnkit.kernels.gru_variants`.
The variant's batch-major arrays (masks (N, P), zoneout weights (T, N, P)) are
transposed once per call into the loops' feature-major layout; an absent one is
an empty array, so one compiled loop serves every combination.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from . import gru_variants, layernorm_scan, lstm_variants

__all__ = ["KERNELS", "VariantScanCache", "scan_forward", "scan_backward"]

KERNELS = ("lstm", "gru", "lstm_peephole") + layernorm_scan.KERNELS
"""The cells' kernels that have a variant loop here (peephole and layer-norm cells have only these)."""


class VariantScanCache(NamedTuple):
    cell: object
    x: np.ndarray                 # (T, N, D) input
    W_ih: np.ndarray
    W_hh: np.ndarray              # (G*H, P) as used (after weight drop)
    has_bias: bool
    lengths: np.ndarray           # (N,) int64
    reverse: bool
    acts: np.ndarray              # (T, G*H, N) gate activations
    zs: np.ndarray                # LSTM: (T, N, P+1+D) [h m | 1 | x_t]; GRU: (T, N, H) h m
    extra: np.ndarray             # LSTM: (T, H, N) c entering; GRU: (T, H, N) a_n
    hs: Optional[np.ndarray]      # GRU: (T, H, N) h entering each step
    masks: tuple                  # feature-major (W_hr, h_mask, zoneout h, zoneout c) as the loops take them
    variant: object               # the ScanVariant


def _feature_major(variant, T, N, P, H, dtype):
    """(W_hr or (0, 0), h_mask (P, N) or (0, N), d_h (T, P, N) or (0, P, N), d_c (T, H, N) or (0, H, N))."""
    W_hr, h_mask, zone = (None, None, None) if variant is None else variant
    W_hr = np.zeros((0, 0), dtype) if W_hr is None else np.ascontiguousarray(W_hr, dtype=dtype)
    h_mask = np.zeros((0, N), dtype) if h_mask is None else np.ascontiguousarray(np.asarray(h_mask, dtype).T)
    zone = (None, None) if zone is None else tuple(zone) + (None,) * (2 - len(zone))
    d = [np.zeros((0, n, N), dtype) if z is None else np.ascontiguousarray(np.asarray(z, dtype).transpose(0, 2, 1))
         for z, n in zip(zone, (P, H))]
    return W_hr, h_mask, d[0], d[1]


def scan_forward(loop, cell, x, state0, W_ih, W_hh, b_ih, b_hh, lengths, reverse, need_cache, variant):
    """``loop(fn, dtype) -> (callable, gemm)`` is fused_scan's loop picker; returns ``(y, state_T, cache)``."""
    x, W_ih, W_hh, b_ih, b_hh = (None if a is None else np.ascontiguousarray(a, dtype=x.dtype)
                                 for a in (x, W_ih, W_hh, b_ih, b_hh))
    T, N, D = x.shape
    GH, P = W_hh.shape
    H = GH // cell.num_gates
    dtype = x.dtype
    if cell.fused_kernel in layernorm_scan.KERNELS:
        return layernorm_scan.scan_forward(loop, cell, x, state0, W_ih, W_hh, lengths, reverse, need_cache, variant)
    lens = np.full(N, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    y = np.empty((T, N, P), dtype)                                         # (T, N, P)
    states = [np.array(s.T, order="C") for s in state0]                   # (P, N), (H, N)
    steps = T if need_cache else 0
    acts = np.empty((steps, GH, N), dtype)                                 # (T, G*H, N)
    extra = np.empty((steps, H, N), dtype)                                 # (T, H, N)
    masks = _feature_major(variant, T, N, P, H, dtype)
    W_hr, h_mask, d_h, d_c = masks
    hs = None
    if cell.fused_kernel == "gru":
        zeros = np.zeros(GH, dtype)
        zs = np.empty((steps, N, H), dtype)                                # (T, N, H) h m
        hs = np.empty((steps, H, N), dtype)                                # (T, H, N) h
        fn, gemm = loop(gru_variants.forward, dtype)
        fn(gemm, W_hh, W_ih, zeros if b_hh is None else b_hh, zeros if b_ih is None else b_ih, x, states[0], lens,
           reverse, h_mask, d_h, y, acts, extra, zs, hs, need_cache)
    else:
        b = np.zeros(GH, dtype)
        for bias in (b_ih, b_hh):
            if bias is not None:
                b = b + bias
        zs = np.empty((steps, N, P + 1 + D), dtype)                        # (T, N, P+1+D)
        fn, gemm = loop(lstm_variants.forward, dtype)
        fn(gemm, W_hh, W_ih, b, W_hr, _peephole(cell, dtype, N), x, states[0], states[1], lens, reverse, h_mask, d_h, d_c, y, acts, extra, zs,
           need_cache)
    state_T = tuple(np.ascontiguousarray(s.T) for s in states)
    if not need_cache:
        return y, state_T, None
    return y, state_T, VariantScanCache(cell, x, W_ih, W_hh, b_ih is not None, lens, reverse, acts, zs, extra, hs,
                                        masks, variant)


def scan_backward(loop, dy, d_state_T, cache: VariantScanCache):
    """``(dx, d_state0, (dW_ih, dW_hh, db_ih, db_hh, dW_hr, d_cell))`` for a :class:`VariantScanCache`
    (or a :class:`~rnnkit.kernels.layernorm_scan.LayerNormScanCache`)."""
    if isinstance(cache, layernorm_scan.LayerNormScanCache):
        return layernorm_scan.scan_backward(loop, dy, d_state_T, cache)
    cell, x, W_ih, W_hh, has_bias, lens, reverse, acts, zs, extra, hs, masks, _ = cache
    W_hr, h_mask, d_h, d_c = masks
    T, N, D = x.shape
    GH, P = W_hh.shape
    H = GH // cell.num_gates
    TN = T * N
    dtype = x.dtype
    d_states = [np.zeros((n, N), dtype) if d is None else np.array(np.asarray(d, dtype=dtype).T, order="C")
                for d, n in zip(d_state_T or (None,) * cell.num_states, (P, H))]  # (P, N), (H, N)
    dy = np.empty((0, N, P), dtype) if dy is None else np.ascontiguousarray(dy, dtype=dtype)
    dG = np.empty((T, N, GH), dtype)                                       # (T, N, G*H)
    dW_hr = d_cell = None
    if cell.fused_kernel == "gru":
        dHn = np.empty((T, N, H), dtype)                                   # d (W_hn h m + b_hn)
        fn, gemm = loop(gru_variants.backward, dtype)
        fn(gemm, W_hh, acts, extra, hs, lens, reverse, h_mask, d_h, dy, d_states[0], dG, dHn)
        dG2, hs2, dHn2 = dG.reshape(TN, GH), zs.reshape(TN, H), dHn.reshape(TN, H)
        dW_ih = dG2.T @ x.reshape(TN, D)                                   # (3H, D)
        dW_hh = np.concatenate([dG2[:, :2 * H].T @ hs2, dHn2.T @ hs2])     # (3H, H)
        db_ih = dG2.sum(axis=0) if has_bias else None
        db_hh = np.concatenate([dG2[:, :2 * H].sum(axis=0), dHn2.sum(axis=0)]) if has_bias else None
    else:
        proj = W_hr.shape[0] > 0
        dHP = np.empty((T if proj else 0, N, P), dtype)                    # (T, N, P) d h_new
        HC = np.empty((T if proj else 0, N, H), dtype)                     # (T, N, H) h_cell
        fn, gemm = loop(lstm_variants.backward, dtype)
        ph = _peephole(cell, dtype, N)
        g_ph = np.zeros_like(ph)                                           # (3*H*N,) per-entry peephole sums
        fn(gemm, W_hh, W_hr, ph, acts, extra, lens, reverse, h_mask, d_h, d_c, dy, d_states[0], d_states[1], dG, dHP,
           HC, g_ph)
        dG2 = dG.reshape(TN, GH)
        dW = dG2.T @ zs.reshape(TN, P + 1 + D)                             # (4H, P+1+D): [dW_hh | db | dW_ih]
        dW_hh, dW_ih = dW[:, :P], dW[:, P + 1:]
        db_ih = dW[:, P] if has_bias else None
        db_hh = dW[:, P].copy() if has_bias else None
        if proj:
            dW_hr = dHP.reshape(TN, P).T @ HC.reshape(TN, H)               # (P, H)
        if cell.fused_kernel == "lstm_peephole":
            d_cell = {"weight_ph": g_ph.reshape(3 * H, N).sum(axis=1)}     # [dp_i, dp_f, dp_o] (3H,)
    dx = (dG.reshape(TN, GH) @ W_ih).reshape(T, N, D)                      # (T, N, D)
    d_state0 = tuple(np.ascontiguousarray(d.T) for d in d_states)
    return dx, d_state0, (dW_ih, dW_hh, db_ih, db_hh, dW_hr, d_cell)


def _peephole(cell, dtype, N):
    """The cell's peephole weights for the loop, each repeated over the batch (3*H*N,), or an empty array."""
    if cell.fused_kernel != "lstm_peephole":
        return np.zeros(0, dtype)
    return np.repeat(np.asarray(cell.peephole, dtype=dtype), N)

