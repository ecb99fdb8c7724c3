"""The scanner's fast path: :func:`scan_forward` / :func:`scan_backward` with one compiled loop per cell.

Same arguments, results and cache contract as :mod:`rnnkit.nn.scan` (which
calls these when the numba backend is active). What changes is how a step is
computed. The reference does, per step, a product with ``W_hh`` and a handful
of NumPy passes over the gates (each a separate call, a temporary and a trip
through memory). Here each step is the products and one compiled pass:

    a (G*H, N) = b + W_hh (G*H, H) @ h (H, N) + W_ih (G*H, D) @ x_t^T (D, N)

*Feature-major* (H, N) states let OpenBLAS split the large G*H dimension across
its threads (at N=32, H=256 twice as fast as ``h (N, H) @ W_hh^T``), and the
gate blocks of ``a`` are then contiguous, so the elementwise pass is one flat,
vectorised loop over H*N entries for any batch size, N = 1 included. The input
product is done per step too, next to the recurrent one: no (T, N, G*H)
buffer of input projections is written and read back. (Stacking both into one
product, [W_hh | b | W_ih] @ [h; 1; x_t], measured no faster at configs A, B
and D and slower at small batches, and needs a copy of the weights per call.)
GRU keeps its two products apart in the n gate, where the reset gate
multiplies only the recurrent part.

What forward keeps for backward, per step: the gate activations (T, G*H, N)
and per-cell extras (T, H, N) in the step's own layout, and the product's
input [h | 1 | x_t] batch-major (T, N, H+1+D). Backward writes the gate
gradients batch-major (T, N, G*H) so that the weight gradients are single
products over all tokens, as in the reference: ``[dW_hh | db | dW_ih] =
dG^T [H_prev | 1 | X]`` (one product), ``dX = dG W_ih``. (GRU keeps ``h``
alone and forms dW_ih, dW_hh as two products: its n rows differ.)

Variable lengths use the reference's mask semantics: a padded step keeps the
state, outputs zero and passes gradients through unchanged.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
from numba.core.errors import NumbaError

from . import gru, inference, lstm, rnn, variant_scan
from .backend import KernelUnavailable, disable_numba
from .blas import gemm_pointers

__all__ = ["FusedScanCache", "KERNELS", "supports", "runs_inference_loop", "scan_forward", "scan_backward"]

KERNELS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
"""The values of a cell's ``fused_kernel`` that have a loop here (see :mod:`rnnkit.nn.cells`)."""


class FusedScanCache(NamedTuple):
    cell: object
    x: np.ndarray                 # (T, N, D) input
    W_ih: np.ndarray
    W_hh: np.ndarray
    has_bias: bool
    lengths: np.ndarray           # (N,) int64, T where a sequence is full length
    reverse: bool
    acts: np.ndarray              # (T, G*H, N) gate activations of every step
    zs: np.ndarray                # (T, N, .) what each step's product multiplied: [h | 1 | x_t], or h (GRU)
    extra: Optional[np.ndarray]   # (T, H, N): c entering each step (LSTM), W_hn h + b_hn (GRU), None (RNN)


def supports(cell, x, variant=None) -> bool:
    """A cell that declares one of :data:`KERNELS` as its ``fused_kernel``, in float32 or float64,
    with a variant (projection, recurrent mask, zoneout) only where a variant loop exists for it."""
    kernel = getattr(cell, "fused_kernel", None)
    if x.dtype not in (np.float32, np.float64):
        return False
    return (variant is None or variant.plain) and kernel in KERNELS or kernel in variant_scan.KERNELS


def runs_inference_loop(cell, x, variant, need_cache) -> bool:
    """Whether a scan this module takes goes to the cache-free loops of :mod:`rnnkit.kernels.inference`."""
    return (not need_cache and (variant is None or variant.plain) and getattr(cell, "fused_kernel", None) in KERNELS
            and inference.supports(cell.fused_kernel, x.dtype))


def _loop(fn, dtype):
    """The compiled loop with NumPy's gemm, or the same loop as Python calling np.matmul."""
    pointers = gemm_pointers()
    if pointers is None:
        return fn.py_func, None
    return fn, pointers[np.dtype(dtype)]


def _sum(b_ih, b_hh):
    if b_ih is None or b_hh is None:
        return b_hh if b_ih is None else b_ih
    return b_ih + b_hh


def scan_forward(cell, x, state0, W_ih, W_hh, b_ih=None, b_hh=None, lengths=None, reverse=False,
                 need_cache=True, variant=None):
    """Fused :func:`rnnkit.nn.scan.scan_forward`; returns ``(y, state_T, cache)`` (cache None if not needed).

    If the kernel fails to compile, the numba backend is switched off for this
    process (with the one-line notice) and :class:`KernelUnavailable` tells the
    caller (:func:`rnnkit.nn.scan.scan_forward`) to compute the result itself.
    """
    try:
        if variant is not None and not variant.plain or cell.fused_kernel not in KERNELS:
            return variant_scan.scan_forward(_loop, cell, x, state0, W_ih, W_hh, b_ih, b_hh, lengths, reverse,
                                             need_cache, variant)
        return _scan_forward(cell, x, state0, W_ih, W_hh, b_ih, b_hh, lengths, reverse, need_cache)
    except NumbaError as exc:
        disable_numba(f"{type(exc).__name__} compiling the {cell.fused_kernel} kernel")
        raise KernelUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def _scan_forward(cell, x, state0, W_ih, W_hh, b_ih, b_hh, lengths, reverse, need_cache):
    if runs_inference_loop(cell, x, None, need_cache):        # inference: no cache, packed weights (plain here)
        y, state_T = inference.scan_forward(cell.fused_kernel, x, state0, W_ih, W_hh, b_ih, b_hh, lengths, reverse)
        return y, state_T, None
    # the loops assume C order with the dtype of x (a no-op for a layer's own parameters)
    x, W_ih, W_hh, b_ih, b_hh = (None if a is None else np.ascontiguousarray(a, dtype=x.dtype)
                                 for a in (x, W_ih, W_hh, b_ih, b_hh))
    T, N, D = x.shape
    GH, H = W_hh.shape
    dtype = x.dtype
    lens = np.full(N, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    y = np.empty((T, N, H), dtype)                                         # (T, N, H)
    states = [np.array(s.T, order="C") for s in state0]    # (H, N) copies: the loop ends with the final state
    steps = T if need_cache else 0                                         # nothing kept for inference
    acts = np.empty((steps, GH, N), dtype)                                 # (T, G*H, N) gate activations
    kernel = cell.fused_kernel
    K = H if kernel == "gru" else H + 1 + D
    zs = np.empty((steps, N, K), dtype)                                    # (T, N, K) [h | 1 | x_t], or h
    extra = np.empty((steps, H, N), dtype)
    if kernel == "gru":
        zeros = np.zeros(GH, dtype)
        fn, gemm = _loop(gru.forward, dtype)
        fn(gemm, W_hh, W_ih, zeros if b_hh is None else b_hh, zeros if b_ih is None else b_ih, x, states[0], lens,
           reverse, y, acts, extra, zs, need_cache)
    else:
        b = _sum(b_ih, b_hh)                                               # both only ever appear summed
        b = np.zeros(GH, dtype) if b is None else b
        if kernel == "lstm":
            fn, gemm = _loop(lstm.forward, dtype)
            fn(gemm, W_hh, W_ih, b, x, states[0], states[1], lens, reverse, y, acts, extra, zs, need_cache)
        else:
            extra = None
            fn, gemm = _loop(rnn.forward, dtype)
            fn(gemm, W_hh, W_ih, b, x, states[0], lens, reverse, kernel == "rnn_relu", y, acts, zs, need_cache)
    state_T = tuple(np.ascontiguousarray(s.T) for s in states)            # (N, H) each
    if not need_cache:
        return y, state_T, None
    cache = FusedScanCache(cell, x, W_ih, W_hh, b_ih is not None, lens, reverse, acts, zs, extra)
    return y, state_T, cache


def scan_backward(dy: Optional[np.ndarray], d_state_T, cache: FusedScanCache):
    """Fused :func:`rnnkit.nn.scan.scan_backward`: ``(dx, d_state0, (dW_ih, dW_hh, db_ih, db_hh, dW_hr, d_cell))``."""
    if isinstance(cache, (variant_scan.VariantScanCache, variant_scan.layernorm_scan.LayerNormScanCache)):
        return variant_scan.scan_backward(_loop, dy, d_state_T, cache)
    cell, x, W_ih, W_hh, has_bias, lens, reverse, acts, zs, extra = cache
    T, N, D = x.shape
    GH, H = W_hh.shape
    TN = T * N
    dtype = x.dtype
    d_states = [np.zeros((H, N), dtype) if d is None else np.array(np.asarray(d, dtype=dtype).T, order="C")
                for d in (d_state_T or (None,) * cell.num_states)]        # (H, N) each
    dy = np.empty((0, N, H), dtype) if dy is None else np.ascontiguousarray(dy, dtype=dtype)
    dG = np.empty((T, N, GH), dtype)                                       # (T, N, G*H) gate gradients
    kernel = cell.fused_kernel
    if kernel == "lstm":
        fn, gemm = _loop(lstm.backward, dtype)
        fn(gemm, W_hh, acts, extra, lens, reverse, dy, d_states[0], d_states[1], dG)
    elif kernel == "gru":
        dHn = np.empty((T, N, H), dtype)                                   # d (W_hn h + b_hn)
        fn, gemm = _loop(gru.backward, dtype)
        fn(gemm, W_hh, acts, extra, zs, lens, reverse, dy, d_states[0], dG, dHn)
    else:
        fn, gemm = _loop(rnn.backward, dtype)
        fn(gemm, W_hh, acts, lens, reverse, kernel == "rnn_relu", dy, d_states[0], dG)
    dG2 = dG.reshape(TN, GH)                                               # (T*N, G*H)
    dx = (dG2 @ W_ih).reshape(T, N, D)                                     # (T, N, D)
    if kernel == "gru":                          # recurrent gradient: rows r, z as dG, rows n their own
        hs2, dHn2 = zs.reshape(TN, H), dHn.reshape(TN, H)                  # (T*N, H) each
        dW_ih = dG2.T @ x.reshape(TN, D)                                   # (3H, D)
        dW_hh = np.concatenate([dG2[:, :2 * H].T @ hs2, dHn2.T @ hs2])     # (3H, H)
        db_ih = dG2.sum(axis=0) if has_bias else None
        db_hh = np.concatenate([dG2[:, :2 * H].sum(axis=0), dHn2.sum(axis=0)]) if has_bias else None
    else:                                        # one product gives [dW_hh | db | dW_ih]
        dW = dG2.T @ zs.reshape(TN, H + 1 + D)                             # (G*H, H+1+D)
        dW_hh, dW_ih = dW[:, :H], dW[:, H + 1:]
        db_ih = dW[:, H] if has_bias else None
        db_hh = dW[:, H].copy() if has_bias else None
    d_state0 = tuple(np.ascontiguousarray(d.T) for d in d_states)        # (N, H) each
    return dx, d_state0, (dW_ih, dW_hh, db_ih, db_hh, None, None)
