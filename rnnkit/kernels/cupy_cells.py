r"""The cells' elementwise time step as one CuPy kernel per step, forward and backward.

On a GPU the reference cells (:mod:`rnnkit.nn.cells`) launch one kernel per array
operation: an LSTM step is about fifteen launches (adds, slices, sigmoids, tanh,
products), each reading and writing (N, H) arrays in GPU memory. Here each step
is one ``cupy.ElementwiseKernel`` launch over the (N, H) units, which reads the
gate pre-activations once and writes the new state and the cache once. The
recurrent product ``hw = h W_hh^T + b_hh`` stays with the scanner (cuBLAS).

Same math, same protocol and same cache layout as the reference cells, so the
scanner can call these in place of ``cell.step`` / ``cell.step_backward``:

- ``fused_step(cell_name, xw, hw, state) -> (new_state, cache)``
- ``fused_step_backward(cell_name, d_state, cache, d_xw, d_hw=None) -> d_state_prev``

``cell_name`` is a cell's ``fused_kernel`` ("rnn_tanh", "rnn_relu", "lstm",
"gru"). With :math:`\sigma(a) = (1 + \tanh(a/2))/2` (never overflows):

.. math::
    \text{LSTM: } & i, f, o = \sigma(a_{i,f,o}),\ g = \tanh(a_g),\ c' = f c + i g,\ h' = o \tanh(c') \\
    & dc = dc' + dh'\, o (1 - \tanh^2 c'),\ da_i = dc\, g\, i(1-i),\ da_f = dc\, c\, f(1-f),\
      da_g = dc\, i (1 - g^2),\ da_o = dh' \tanh(c')\, o(1-o),\ dc_{prev} = dc\, f \\
    \text{GRU: } & r, z = \sigma(xw_{r,z} + hw_{r,z}),\ n = \tanh(xw_n + r\, hw_n),\ h' = n + z (h - n) \\
    & dn = dh' (1-z)(1-n^2),\ da_r = dn\, hw_n\, r(1-r),\ da_z = dh' (h - n) z (1-z),\
      d\,hw_n = dn\, r,\ dh_{prev} = dh'\, z \\
    \text{RNN: } & h' = \phi(xw + hw),\ da = dh' \phi'(h')

Arrays are (N, G*H) for the pre-activations and (N, H) for the rest, float32 or
float64, on one GPU. CuPy is imported on first use; without it (or without a
GPU) :class:`~rnnkit.kernels.backend.KernelUnavailable` is raised, as for a
kernel that fails to compile, and the caller runs the reference cells.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from .backend import KernelUnavailable

__all__ = ["fused_step", "fused_step_backward", "CELL_NAMES", "available"]

CELL_NAMES = ("rnn_tanh", "rnn_relu", "lstm", "gru")

# T is float or double; every literal is cast to T so float32 kernels stay in single precision. The macro
# expands inside each kernel, where CuPy has defined T.
_PREAMBLE = "#define SIGMOID(a) ((T)0.5 * tanh((T)0.5 * (a)) + (T)0.5)"

_SOURCES: Dict[str, Tuple[str, str, str]] = {
    # name: (in_params, out_params, operation); raw arrays are indexed by hand: row n = i / H, unit j = i % H
    "lstm_fwd": (
        "raw T xw, raw T hw, T c_prev, int32 H",
        "T h, T c, T gi, T gf, T gg, T go, T tanh_c",
        """
        const long long n = i / H, j = i % H, row = n * 4 * H;
        const T a_i = xw[row + j] + hw[row + j];
        const T a_f = xw[row + H + j] + hw[row + H + j];
        const T a_g = xw[row + 2 * H + j] + hw[row + 2 * H + j];
        const T a_o = xw[row + 3 * H + j] + hw[row + 3 * H + j];
        gi = SIGMOID(a_i); gf = SIGMOID(a_f); go = SIGMOID(a_o);
        gg = tanh(a_g);
        c = gf * c_prev + gi * gg;
        tanh_c = tanh(c);
        h = go * tanh_c;
        """),
    "lstm_bwd": (
        "T dh, T dc_next, T gi, T gf, T gg, T go, T c_prev, T tanh_c, int32 H",
        "raw T d_xw, T dc_prev",
        """
        const long long n = i / H, j = i % H, row = n * 4 * H;
        const T dc = dc_next + dh * go * ((T)1 - tanh_c * tanh_c);
        d_xw[row + j] = dc * gg * gi * ((T)1 - gi);
        d_xw[row + H + j] = dc * c_prev * gf * ((T)1 - gf);
        d_xw[row + 2 * H + j] = dc * gi * ((T)1 - gg * gg);
        d_xw[row + 3 * H + j] = dh * tanh_c * go * ((T)1 - go);
        dc_prev = dc * gf;
        """),
    "gru_fwd": (
        "raw T xw, raw T hw, T h_prev, int32 H",
        "T h, T r, T z, T n, T hw_n",
        """
        const long long b = i / H, j = i % H, row = b * 3 * H;
        r = SIGMOID(xw[row + j] + hw[row + j]);
        z = SIGMOID(xw[row + H + j] + hw[row + H + j]);
        hw_n = hw[row + 2 * H + j];
        n = tanh(xw[row + 2 * H + j] + r * hw_n);
        h = n + z * (h_prev - n);
        """),
    "gru_bwd": (
        "T dh, T r, T z, T n, T hw_n, T h_prev, int32 H",
        "raw T d_xw, raw T d_hw, T dh_prev",
        """
        const long long b = i / H, j = i % H, row = b * 3 * H;
        const T dn_pre = dh * ((T)1 - z) * ((T)1 - n * n);
        const T d_ar = dn_pre * hw_n * r * ((T)1 - r);
        const T d_az = dh * (h_prev - n) * z * ((T)1 - z);
        d_xw[row + j] = d_ar;           d_hw[row + j] = d_ar;
        d_xw[row + H + j] = d_az;       d_hw[row + H + j] = d_az;
        d_xw[row + 2 * H + j] = dn_pre; d_hw[row + 2 * H + j] = dn_pre * r;
        dh_prev = dh * z;
        """),
    "rnn_tanh_fwd": ("T xw, T hw", "T h", "h = tanh(xw + hw);"),
    "rnn_relu_fwd": ("T xw, T hw", "T h", "const T a = xw + hw; h = a < (T)0 ? (T)0 : a;"),
    "rnn_tanh_bwd": ("T dh, T h", "T d_a", "d_a = dh * ((T)1 - h * h);"),
    "rnn_relu_bwd": ("T dh, T h", "T d_a", "d_a = h > (T)0 ? dh : (T)0;"),
}

_compiled: Dict[str, Any] = {}


def _cupy():
    try:
        import cupy
    except ImportError:
        raise KernelUnavailable("the CuPy cell kernels need CuPy (pip install 'rnnkit[gpu]')") from None
    return cupy


def available() -> bool:
    """True when CuPy imports and sees a GPU (the kernels may still fail to compile: KernelUnavailable then)."""
    try:
        return _cupy().cuda.runtime.getDeviceCount() > 0
    except Exception:       # no CuPy, no driver, no device
        return False


def _kernel(name: str):
    k = _compiled.get(name)
    if k is None:
        cupy = _cupy()
        in_params, out_params, body = _SOURCES[name]
        try:
            k = cupy.ElementwiseKernel(in_params, out_params, body, "rnnkit_" + name, preamble=_PREAMBLE)
        except Exception as e:     # no compiler, no GPU: the caller runs the reference cells
            raise KernelUnavailable(f"CuPy kernel {name} is unavailable here: {e}") from None
        _compiled[name] = k
    return k


def _contiguous(a):
    return a if a.flags.c_contiguous else _cupy().ascontiguousarray(a)


def _into(kernel_out, target):
    """Copy a result computed into a contiguous buffer back into ``target`` when ``target`` was not contiguous."""
    if kernel_out is not target:
        target[...] = kernel_out


def fused_step(cell_name: str, xw, hw, state):
    """One forward step of cell ``cell_name`` in one kernel; returns ``(new_state, cache)`` as the reference cell."""
    if cell_name not in CELL_NAMES:
        raise KernelUnavailable(f"no CuPy kernel for cell {cell_name!r} (known: {', '.join(CELL_NAMES)})")
    cupy = _cupy()
    xw, hw = _contiguous(xw), _contiguous(hw)
    if cell_name == "lstm":
        h_prev, c_prev = state
        N, H = c_prev.shape
        out = [cupy.empty((N, H), dtype=xw.dtype) for _ in range(7)]
        h, c, i, f, g, o, tanh_c = _kernel("lstm_fwd")(xw, hw, _contiguous(c_prev), H, *out)
        return (h, c), (i, f, g, o, c_prev, tanh_c)
    if cell_name == "gru":
        (h_prev,) = state
        N, H = h_prev.shape
        out = [cupy.empty((N, H), dtype=xw.dtype) for _ in range(5)]
        h, r, z, n, hw_n = _kernel("gru_fwd")(xw, hw, _contiguous(h_prev), H, *out)
        return (h,), (r, z, n, hw_n, h_prev)
    h = _kernel(cell_name + "_fwd")(xw, hw)
    return (h,), h


def fused_step_backward(cell_name: str, d_state, cache, d_xw, d_hw=None):
    """One backward step in one kernel: writes the gate gradients into ``d_xw`` (and ``d_hw`` for GRU)
    and returns the elementwise part of the previous state's gradient, as the reference cell does."""
    if cell_name not in CELL_NAMES:
        raise KernelUnavailable(f"no CuPy kernel for cell {cell_name!r} (known: {', '.join(CELL_NAMES)})")
    cupy = _cupy()
    if cell_name == "lstm":
        dh, dc = d_state
        i, f, g, o, c_prev, tanh_c = cache
        H = dh.shape[1]
        buf = _contiguous(d_xw)
        dc_prev = cupy.empty_like(dh)
        _kernel("lstm_bwd")(dh, dc, i, f, g, o, c_prev, tanh_c, H, buf, dc_prev)
        _into(buf, d_xw)
        return (None, dc_prev)
    if cell_name == "gru":
        (dh,) = d_state
        r, z, n, hw_n, h_prev = cache
        H = dh.shape[1]
        bx, bh = _contiguous(d_xw), _contiguous(d_hw)
        dh_prev = cupy.empty_like(dh)
        _kernel("gru_bwd")(dh, r, z, n, hw_n, h_prev, H, bx, bh, dh_prev)
        _into(bx, d_xw)
        _into(bh, d_hw)
        return (dh_prev,)
    (dh,), h = d_state, cache
    _kernel(cell_name + "_bwd")(dh, h, d_xw)
    return (None,)
