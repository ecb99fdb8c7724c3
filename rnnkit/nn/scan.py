"""The scanner: runs any cell over a whole sequence, one layer and one direction.

Forward, for t in order (0..T-1, or T-1..0 for the reverse direction):

    XW = X W_ih^T + b_ih  (+ b_hh when the cell does not split it)   # (T, N, G*H), one product
    hw_t = h_{t-1} W_hh^T (+ b_hh)                                   # (N, G*H), the only sequential product
    s_t = cell.step(XW[t], hw_t, s_{t-1})
    s_t = m_t * s_t + (1 - m_t) * s_{t-1},   y_t = m_t * h_t            # variable lengths

with the mask m_t[n] = [t < length_n]. Iterating the reverse direction from
T-1 down with the same mask starts each sequence at its own last real step:
the semantics of PyTorch's packed sequences, without any reindexing.

Backward walks the same steps in the opposite order, collects the gate
gradients dXW, dHW of all steps, and turns them into

    dX = dXW W_ih,   dW_ih = dXW^T X,   dW_hh = dHW^T H_prev,   db = sum dXW (dHW)

with one product each. Gradients arriving at the final state (truncated BPTT,
encoder-decoder bridges) enter the walk as its starting ``d_state``.

The pieces of one step (:func:`input_projection`, :func:`recurrent_step`,
:func:`recurrent_step_backward`, :func:`weight_gradients`) are public: the
one-step API of :class:`rnnkit.nn.Recurrent` is built from them, so the cells
and this module hold the only recurrent math.

This is the reference implementation, and it is array-API code: ``xp`` comes
from the arrays (:func:`rnnkit.nn.xp.namespace`), new arrays are made on the
device of the input, and only the standard's functions, operators and index
forms (``a[t, ...]``, slices) are used, so the same code runs on NumPy, CuPy,
PyTorch and array-api-strict arrays. The only NumPy-only path is the fused one:
with the numba backend (see
:mod:`rnnkit.kernels.backend`) both functions hand the work to the fused loops
of :mod:`rnnkit.kernels.fused_scan` for a cell that declares a ``fused_kernel``:
same arguments, same results, and a cache that only their ``scan_backward``
reads. They run only when every array is a NumPy array (:func:`rnnkit.nn.xp.is_numpy`); any
other library's arrays take the reference. A kernel that cannot compile raises
``KernelUnavailable`` and the reference below runs instead (the kernels never import this module).
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from ..kernels import cupy_cells
from ..kernels.backend import KernelUnavailable, fused_scan_module
from .xp import device_of, is_numpy, namespace

__all__ = ["ScanCache", "ScanVariant", "PLAIN", "scan_forward", "scan_backward", "input_projection", "recurrent_step",
           "recurrent_step_backward", "weight_gradients"]

State = Tuple[np.ndarray, ...]


class ScanCache(NamedTuple):
    cell: object
    x: np.ndarray                 # (T, N, D) input
    h_prev: np.ndarray            # (T, N, P) h entering each step's product, masked (for dW_hh)
    step_caches: List[object]     # what cell.step returned, indexed by t
    W_ih: np.ndarray
    W_hh: np.ndarray
    has_bias: bool
    lengths: Optional[np.ndarray]
    reverse: bool
    variant: "ScanVariant"        # projection, recurrent mask, zoneout (all None for the plain cell)
    h_full: Optional[np.ndarray]  # (T, N, H) the cell's h before the projection (None without W_hr)


class ScanVariant(NamedTuple):
    """What the variants of a cell add to the scan; every field None is the plain scan.

    - ``W_hr`` (P, H): LSTM projection (Sak et al. 2014), the state's h is ``h_cell W_hr^T``;
    - ``h_mask`` (N, P): variational recurrent dropout (Gal and Ghahramani 2016), one scaled
      keep-mask per sequence multiplying h_{t-1} in the recurrent product at every step;
    - ``zoneout``: a tuple with one (T, N, .) array per state component (or None), the
      probability d that a unit keeps its previous value (Krueger et al. 2017): 0/1 draws in
      training, the constant p at evaluation: ``s_t = s_new + d (s_{t-1} - s_new)``.
    """
    W_hr: Optional[np.ndarray] = None
    h_mask: Optional[np.ndarray] = None
    zoneout: Optional[Tuple[Optional[np.ndarray], ...]] = None

    @property
    def plain(self) -> bool:
        return self.W_hr is None and self.h_mask is None and self.zoneout is None


PLAIN = ScanVariant()


def _all_numpy(x, state0, W_ih, W_hh, b_ih, b_hh, lengths, variant) -> bool:
    """Every array of a scan is a NumPy array: only then may the compiled kernels take it."""
    zone = variant.zoneout or ()
    return is_numpy(x, W_ih, W_hh, b_ih, b_hh, lengths, variant.W_hr, variant.h_mask, *state0, *zone)


def fused_for(cell, x, state0, W_ih, W_hh, b_ih, b_hh, lengths, variant, backend):
    """The fused module (:mod:`rnnkit.kernels.fused_scan`) that :func:`scan_forward` hands this scan to, or
    None where the reference below runs it."""
    fused = fused_scan_module(backend)
    if fused is not None and _all_numpy(x, state0, W_ih, W_hh, b_ih, b_hh, lengths, variant) \
            and fused.supports(cell, x, variant):
        return fused
    return None


def _order(T: int, reverse: bool):
    return range(T - 1, -1, -1) if reverse else range(T)


def input_projection(cell, x, W_ih, b_ih=None, b_hh=None):
    """xw = x W_ih^T + b_ih (+ b_hh when the cell does not split it): x (M, D) -> (M, G*H).

    RNN and LSTM use ``xw + hw`` only as a sum, so ``b_hh`` is added here once
    instead of to every step's ``hw``; :func:`recurrent_step` adds it for GRU.
    """
    xw = x @ W_ih.T                                            # (M, G*H): `@` and `.T` are the standard's
    if b_ih is not None:
        xw += b_ih
    if b_hh is not None and not cell.split_recurrent:
        xw += b_hh
    return xw


def recurrent_step(cell, xw, state: State, W_hh, b_hh=None, h_mask=None):
    """One step from ``xw`` (N, G*H): hw = (h * h_mask) W_hh^T (+ b_hh if split), then ``cell.step``.

    Returns ``(new_state, cell_cache)``. The cell sees the unmasked state (GRU's
    ``z h`` term keeps h as it is); only the recurrent product sees the mask.
    """
    h_in = state[0] if h_mask is None else state[0] * h_mask   # (N, P)
    hw = h_in @ W_hh.T                                         # (N, G*H): the only sequential product
    if b_hh is not None and cell.split_recurrent:
        hw += b_hh
    if _on_cupy(xw) and cell.fused_kernel in cupy_cells.CELL_NAMES:
        try:
            return cupy_cells.fused_step(cell.fused_kernel, xw, hw, state)     # one kernel launch per step
        except KernelUnavailable:
            pass
    return cell.step(xw, hw, state)


def _on_cupy(a) -> bool:
    """True for a CuPy array: the cell's elementwise step can run as one fused GPU kernel."""
    return type(a) is not np.ndarray and type(a).__module__.startswith("cupy")   # NumPy's answer first: per step


def recurrent_step_backward(cell, d_state: State, cell_cache, W_hh, d_xw, d_hw, h_mask=None,
                            acc=None) -> List[np.ndarray]:
    """Backward of :func:`recurrent_step`: the previous state's gradient, as a list.

    Writes the gate gradients into ``d_xw`` (N, G*H) (and ``d_hw`` when the cell
    splits them; pass ``d_xw`` again when it does not) and adds the recurrent
    path d h_prev = (d_hw W_hh) * h_mask to the cell's elementwise part. ``acc``: the
    accumulator of a cell with its own weights (``cell.zero_parameter_gradients()``).
    """
    if acc is None and _on_cupy(d_xw) and cell.fused_kernel in cupy_cells.CELL_NAMES:
        try:                             # same cache layout as the cell's: either backward reads either forward
            d_elem = cupy_cells.fused_step_backward(cell.fused_kernel, d_state, cell_cache, d_xw,
                                                    d_hw if cell.split_recurrent else None)
        except KernelUnavailable:
            d_elem = cell.step_backward(d_state, cell_cache, d_xw, d_hw)
    elif acc is None:
        d_elem = cell.step_backward(d_state, cell_cache, d_xw, d_hw)
    else:
        d_elem = cell.step_backward(d_state, cell_cache, d_xw, d_hw, acc=acc)
    dh_prev = d_hw @ W_hh                                      # (N, P)
    if h_mask is not None:
        dh_prev *= h_mask
    if d_elem[0] is not None:
        dh_prev += d_elem[0]
    return [dh_prev] + [namespace(dh_prev).zeros_like(dh_prev) if d is None else d for d in d_elem[1:]]


def weight_gradients(dXW, dHW, X, H_prev, has_bias: bool):
    """dW_ih = dXW^T X, dW_hh = dHW^T H_prev, db_ih = sum dXW, db_hh = sum dHW: one product each.

    dXW, dHW (M, G*H) are the gate gradients of M = steps x batch rows, X (M, D)
    and H_prev (M, H) what those steps multiplied. Biases are None without bias.
    """
    dW_ih = dXW.T @ X                                          # (G*H, D)
    dW_hh = dHW.T @ H_prev                                     # (G*H, H)
    if not has_bias:
        return dW_ih, dW_hh, None, None
    xp = namespace(dXW, dHW)
    return dW_ih, dW_hh, xp.sum(dXW, axis=0), xp.sum(dHW, axis=0)


def scan_forward(cell, x, state0: State, W_ih, W_hh, b_ih=None, b_hh=None,
                 lengths: Optional[np.ndarray] = None, reverse: bool = False, *,
                 backend: Optional[str] = None, need_cache: bool = True, variant: ScanVariant = PLAIN):
    """Run ``cell`` over ``x`` (T, N, D) from ``state0``.

    Returns ``(y, state_T, cache)``: outputs (T, N, P) (zero at padded steps; P = H
    unless projected), the final state (each sequence's state after its last real
    step), and the cache for :func:`scan_backward` (None with ``need_cache=False``:
    inference only). ``variant`` adds a projection, a recurrent mask or zoneout
    (:class:`ScanVariant`); per step, after ``cell.step``:

        h = h_cell W_hr^T                          # projection (P, H)
        s_t = s_new + d_t (s_{t-1} - s_new)        # zoneout, each state component
        s_t = m_t s_t + (1 - m_t) s_{t-1}           # variable lengths

    ``backend`` ("auto", "numpy", "numba"; None: the global setting) picks the implementation.
    """
    fused = fused_for(cell, x, state0, W_ih, W_hh, b_ih, b_hh, lengths, variant, backend)
    if fused is not None:
        try:
            return fused.scan_forward(cell, x, state0, W_ih, W_hh, b_ih, b_hh, lengths, reverse, need_cache,
                                      variant=variant)
        except KernelUnavailable:        # the kernel did not compile: numba is now off, the reference runs
            pass
    T, N, D = x.shape
    P = W_hh.shape[1]                                          # size of h: H, or the projection's P
    GH = W_hh.shape[0]
    W_hr, h_mask, zoneout = variant
    xp, dev = namespace(x, W_ih, W_hh), device_of(x)
    XW = xp.reshape(input_projection(cell, xp.reshape(x, (T * N, D)), W_ih, b_ih, b_hh), (T, N, GH))  # (T, N, G*H)
    y = xp.empty((T, N, P), dtype=x.dtype, device=dev)         # (T, N, P)
    h_prev_all = xp.empty((T, N, P), dtype=x.dtype, device=dev)  # (T, N, P)
    h_full = None if W_hr is None else xp.empty((T, N, W_hr.shape[1]), dtype=x.dtype, device=dev)  # (T, N, H)
    caches: List[object] = [None] * T
    state = tuple(state0)
    for t in _order(T, reverse):
        h_prev_all[t, ...] = state[0] if h_mask is None else state[0] * h_mask
        new_state, caches[t] = recurrent_step(cell, XW[t, ...], state, W_hh, b_hh, h_mask)
        if W_hr is not None:
            h_full[t, ...] = new_state[0]
            new_state = (new_state[0] @ W_hr.T,) + tuple(new_state[1:])    # (N, P)
        if zoneout is not None:
            new_state = tuple(s_new if d is None else s_new + d[t, ...] * (s_old - s_new)
                              for s_new, s_old, d in zip(new_state, state, zoneout))
        if lengths is not None:
            m = (t < lengths)[:, None]                         # (N, 1) real step?
            new_state = tuple(xp.where(m, s_new, s_old) for s_new, s_old in zip(new_state, state))
            y[t, ...] = new_state[0] * xp.astype(m, x.dtype)
        else:
            y[t, ...] = new_state[0]
        state = new_state
    if not need_cache:
        return y, state, None
    cache = ScanCache(cell, x, h_prev_all, caches, W_ih, W_hh, b_ih is not None, lengths, reverse, variant, h_full)
    return y, state, cache


def scan_backward(dy: Optional[np.ndarray], d_state_T: Optional[State], cache: ScanCache):
    """Backpropagate through :func:`scan_forward`.

    ``dy`` (T, N, P) is the gradient at the outputs (or None), ``d_state_T`` the
    gradient at the final state (a tuple, entries may be None). Returns
    ``(dx, d_state0, (dW_ih, dW_hh, db_ih, db_hh, dW_hr, d_cell))``; the bias gradients are None
    without bias, dW_hr None without projection, d_cell the gradients of the cell's own weights
    as a dict by name (peepholes: ``cell.parameter_gradients(dXW, step caches)``; layer norm:
    summed step by step into ``cell.zero_parameter_gradients()``), or None. With zoneout the gradient splits
    at every step: ``(1 - d_t) ds_t`` into the cell, ``d_t ds_t`` straight to s_{t-1}.
    """
    if not isinstance(cache, ScanCache):            # made by the fused kernels: they take it back
        from ..kernels.fused_scan import scan_backward as fused_scan_backward
        return fused_scan_backward(dy, d_state_T, cache)
    cell, x, h_prev_all, caches, W_ih, W_hh, has_bias, lengths, reverse, variant, h_full = cache
    W_hr, h_mask, zoneout = variant
    T, N, D = x.shape
    P = W_hh.shape[1]
    GH = W_hh.shape[0]
    H = GH // cell.num_gates
    dtype = x.dtype
    xp, dev = namespace(x, W_ih, W_hh), device_of(x)
    sizes = (P,) + (H,) * (cell.num_states - 1)
    d_state = tuple(xp.zeros((N, n), dtype=dtype, device=dev) if d is None else xp.asarray(d, dtype=dtype, copy=True, device=dev)
                    for d, n in zip(d_state_T or (None,) * cell.num_states, sizes))
    dXW = xp.empty((T, N, GH), dtype=dtype, device=dev)         # (T, N, G*H)
    dHW = xp.empty((T, N, GH), dtype=dtype, device=dev) if cell.split_recurrent else dXW
    dHP = None if W_hr is None else xp.empty((T, N, P), dtype=dtype, device=dev)  # (T, N, P) d of the projected h
    acc = cell.zero_parameter_gradients() if hasattr(cell, "zero_parameter_gradients") else None
    for t in reversed(_order(T, reverse)):
        dh = d_state[0] if dy is None else d_state[0] + dy[t, ...]   # (N, P); dy is 0 where padded
        d_new = (dh,) + d_state[1:]
        if lengths is not None:
            real = (t < lengths)[:, None]                       # (N, 1)
            m = xp.astype(real, dtype)
            d_new = tuple(d * m for d in d_new)
        direct = None
        if zoneout is not None:                                 # s_t = (1 - d) s_new + d s_{t-1}
            direct = [None if z is None else z[t, ...] * d for d, z in zip(d_new, zoneout)]
            d_new = tuple(d if z is None else (1.0 - z[t, ...]) * d for d, z in zip(d_new, zoneout))
        if W_hr is not None:
            dHP[t, ...] = d_new[0]
            d_new = (d_new[0] @ W_hr,) + tuple(d_new[1:])       # (N, H): through h = h_cell W_hr^T
        d_prev = recurrent_step_backward(cell, d_new, caches[t], W_hh, dXW[t, ...], dHW[t, ...], h_mask, acc)
        if direct is not None:
            d_prev = [d if e is None else d + e for d, e in zip(d_prev, direct)]
        if lengths is not None:
            keep = xp.astype(~real, dtype)                      # padded rows pass the state through
            for k in range(len(d_prev)):
                d_prev[k] = d_prev[k] + d_state[k] * keep
        d_state = tuple(d_prev)
    dXW2 = xp.reshape(dXW, (T * N, GH))
    dHW2 = xp.reshape(dHW, (T * N, GH))
    dx = xp.reshape(dXW2 @ W_ih, (T, N, D))                     # (T, N, D)
    grads = weight_gradients(dXW2, dHW2, xp.reshape(x, (T * N, D)), xp.reshape(h_prev_all, (T * N, P)), has_bias)
    dW_hr = None if W_hr is None else xp.reshape(dHP, (T * N, P)).T @ xp.reshape(h_full, (T * N, -1))  # (P, H)
    d_cell = acc
    if hasattr(cell, "parameter_gradients"):
        d_cell = cell.parameter_gradients(dXW, caches)
    return dx, d_state, grads + (dW_hr, d_cell)
