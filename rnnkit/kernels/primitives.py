"""What the compiled loops are made of: vectorisable tanh and sigmoid, ``mm`` (one BLAS product), block moves.

``tanh``, ``sigmoid`` and ``mm`` have two versions: the plain Python one
(NumPy), used when a loop runs as ordinary Python, and a numba overload used
inside compiled code.

**tanh, sigmoid.**
Without Intel's SVML, numba compiles ``math.tanh`` to one libm call per element,
which keeps the loop scalar. For float32 we use a rational approximation made
of multiplies, adds and one division (Eigen's ``ptanh_float``: odd degree-13
numerator over even degree-6 denominator, inputs clamped to +-7.9053 where
tanh rounds to +-1); its error is a few float32 ulps, the size of the rounding
differences between any two float32 implementations. Float64 keeps libm's
``tanh``: it is the dtype of gradient checks, where exactness matters more than speed.

The sigmoid is written through tanh, s(a) = 1/2 + tanh(a/2)/2, as in
:func:`rnnkit.nn.cells.sigmoid`: it never overflows and shares the approximation.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

__all__ = ["tanh", "sigmoid", "mm", "transpose_into", "permute_rows_inplace",
           "fill_rows", "zero_padded_rows", "keep_padded", "zero_padded",
           "loop_sizes", "double_buffer", "write_output", "read_output_grad"]

_CLAMP = np.float32(7.90531110763549805)
_A1, _A3, _A5 = np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04), np.float32(1.48572235717979e-05)
_A7, _A9 = np.float32(5.12229709037114e-08), np.float32(-8.60467152213735e-11)
_A11, _A13 = np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2 = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03)
_B4, _B6 = np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)
_HALF32 = np.float32(0.5)


def tanh(x):
    """tanh for one scalar (the Python version, used only outside compiled code)."""
    return np.tanh(x)


def sigmoid(x):
    """1/2 + tanh(x/2)/2 for one scalar (the Python version)."""
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _tanh32(x):
    xc = min(max(x, -_CLAMP), _CLAMP)
    x2 = xc * xc
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    p = xc * p
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return p / q                          # near 0 this is x (1 - 1.3e-7): within an ulp, and branch-free


@overload(tanh, inline="always")
def _tanh_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return _tanh32
    if isinstance(x, types.Float):
        return lambda x: math.tanh(x)
    return None


@overload(sigmoid, inline="always")
def _sigmoid_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        def impl32(x):
            return _HALF32 + _HALF32 * tanh(_HALF32 * x)
        return impl32
    if isinstance(x, types.Float):
        return lambda x: 0.5 + 0.5 * math.tanh(0.5 * x)
    return None


def mm(gemm, trans_a, a, b, alpha, beta, c):
    """``c = alpha op(a) @ b + beta c`` with op(a) = a.T if ``trans_a``, for 2-D views with unit inner stride.

    ``gemm`` is the address of ``cblas_?gemm`` from :func:`rnnkit.kernels.blas.gemm_pointers`
    (compiled code calls it directly); the Python version ignores it and uses ``np.matmul``.
    """
    prod = (a.T if trans_a else a) @ b
    if alpha != 1:
        prod *= alpha
    if beta == 0:
        c[...] = prod
    else:
        c *= beta
        c += prod


@intrinsic
def _call_gemm(typingctx, address, trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Call the cblas_?gemm at ``address`` (row-major, B not transposed); pointers passed as integers."""
    sig = types.void(types.intp, types.int32, types.int64, types.int64, types.int64, alpha, types.intp, types.int64,
                     types.intp, types.int64, beta, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        address, trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc = args
        i32, i64, ptr = ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()
        scalar = context.get_value_type(signature.args[5])
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, scalar, ptr, i64, ptr, i64, scalar,
                                               ptr, i64])
        fn = builder.inttoptr(address, fnty.as_pointer())
        builder.call(fn, [i32(101), trans_a, i32(111), m, n, k, alpha, builder.inttoptr(a, ptr), lda,
                          builder.inttoptr(b, ptr), ldb, beta, builder.inttoptr(c, ptr), ldc])
        return context.get_dummy_value()
    return sig, codegen


@overload(mm, inline="always")
def _mm_overload(gemm, trans_a, a, b, alpha, beta, c):
    def impl(gemm, trans_a, a, b, alpha, beta, c):
        m, n = c.shape
        k = b.shape[0]
        size = c.itemsize
        _call_gemm(np.intp(gemm), np.int32(111 + np.int32(trans_a)), np.int64(m), np.int64(n), np.int64(k), alpha,
                   np.intp(a.ctypes.data), np.int64(a.strides[0] // size), np.intp(b.ctypes.data),
                   np.int64(b.strides[0] // size), beta, np.intp(c.ctypes.data), np.int64(c.strides[0] // size))
    return impl


# -- moving per-step blocks between layouts -------------------------------------------------
# Called once per time step (not per element), so they are ordinary compiled functions.

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def transpose_into(dst, src):
    """``dst[a, b] = src[b, a]``: writes ``dst`` row by row (the streaming side), reads ``src`` across."""
    A, B = dst.shape
    for i in range(A):
        for j in range(B):
            dst[i, j] = src[j, i]


@njit(**_JIT)
def permute_rows_inplace(a, back):
    """``a[t, i] = a[t, back[i]]`` for every step t and row i, in place: a (T, N, F) batch put back in the
    caller's order through one (N, F) block of scratch, instead of a second (T, N, F) array (whose fresh
    pages cost more than the copy on a machine that returns freed memory to the system)."""
    T, N, F = a.shape
    tmp = np.empty((N, F), a.dtype)                                        # (N, F) one step's rows
    for t in range(T):
        for i in range(N):
            src = back[i]
            for f in range(F):
                tmp[i, f] = a[t, src, f]
        for i in range(N):
            for f in range(F):
                a[t, i, f] = tmp[i, f]


@njit(**_JIT)
def fill_rows(a, b):
    """``a[r, :] = b[r]`` (a bias broadcast over the batch, before products accumulate onto it)."""
    R, N = a.shape
    for r in range(R):
        br = b[r]
        for n in range(N):
            a[r, n] = br


@njit(**_JIT)
def zero_padded_rows(t, lengths, y_t):
    """``y_t[n, :] = 0`` where step t is padding for sequence n."""
    N, H = y_t.shape
    zero = y_t.dtype.type(0)
    for n in range(N):
        if t >= lengths[n]:
            for j in range(H):
                y_t[n, j] = zero


@njit(**_JIT)
def _padded_columns(t, lengths, a, src, from_src):
    """Where step t is padding for sequence n: ``a[:, n] = src[:, n]`` (``from_src``) or 0."""
    R, N = a.shape
    zero = a.dtype.type(0)
    for n in range(N):
        if t >= lengths[n]:
            for r in range(R):
                a[r, n] = src[r, n] if from_src else zero


@njit(**_JIT)
def keep_padded(t, lengths, new, old):
    """Where step t is padding for sequence n, the column passes through: ``new[:, n] = old[:, n]``."""
    _padded_columns(t, lengths, new, old, True)


@njit(**_JIT)
def zero_padded(t, lengths, a):
    """Where step t is padding for sequence n: ``a[:, n] = 0``."""
    _padded_columns(t, lengths, a, a, False)


# -- what every loop over time shares ------------------------------------------------------

@njit(**_JIT)
def loop_sizes(state, lengths):
    """``(H, N, H*N, 1 in the state's dtype, first step that pads some sequence)`` for (H, N) states."""
    H, N = state.shape
    return H, N, H * N, state.dtype.type(1), lengths.min()


@njit(**_JIT)
def double_buffer(a):
    """``(a copy of a, an empty array like it)``: the state entering a step and the one it writes, swapped per step."""
    return a.copy(), np.empty_like(a)


@njit(**_JIT)
def write_output(t, lengths, first_padded, h, y_t):
    """``y_t`` (N, H) = h^T from the (H, N) state, zero in the rows of sequences that step t pads."""
    transpose_into(y_t, h)
    if t >= first_padded:
        zero_padded_rows(t, lengths, y_t)


@njit(**_JIT)
def read_output_grad(dy, t, dy_t):
    """``dy_t`` (H, N) = dy[t]^T; left as it is (zeros) when no gradient reaches the outputs (dy empty)."""
    if dy.shape[0] > 0:
        transpose_into(dy_t, dy[t])
