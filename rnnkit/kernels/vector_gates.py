r"""The gate nonlinearities of one row of a step, as explicit float32 vectors (LLVM IR via numba ``@intrinsic``).

For a row of pre-activations in panel order (see :mod:`rnnkit.kernels.microgemm`),
``a`` = recurrent part and ``x`` = input part (with biases), per block of V units:

- LSTM: ``i, f, o = sigmoid(x + a)``, ``g = tanh(x + a)`` on the four gate vectors;
  ``c' = f c + i g``, ``h' = o tanh(c')``;
- GRU: ``r, z = sigmoid(x + a)``, ``n = tanh(x_n + r (a_n + b_hn))``, ``h' = n + z (h - n)``;
- RNN: ``h' = tanh(x + a)`` or ``max(x + a, 0)``;

with ``tanh`` the rational approximation of :mod:`rnnkit.kernels.primitives`
(the same constants and clamp; its division p/q taken as p times a reciprocal
estimate refined by one Newton step) and ``sigmoid(v) = 1/2 + tanh(v/2)/2``. Written as vectors because the compiler cannot vectorise
the same loop in numba reliably: it must prove at run time that the five
arrays do not overlap, and on a row of 16 units those checks cost as much as
the arithmetic. Float32 only; float64 (the dtype of gradient checks) runs the
plain loops.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import primitives as P
from .microgemm import VECTOR_BYTES

__all__ = ["lstm_row", "gru_row", "rnn_row", "V32"]

V32 = VECTOR_BYTES // 4


def _reciprocal_estimate() -> str:
    """Which x86 reciprocal estimate the host has ("avx512", "avx"), or "" (then a division)."""
    try:
        import llvmlite.binding as llvm
        features = llvm.get_host_cpu_features()
    except Exception:
        return ""
    if V32 == 16 and features.get("avx512f", False):
        return "avx512"
    return "avx" if V32 == 8 and features.get("avx", False) else ""


_RCP = _reciprocal_estimate()
_F = ir.FloatType()
_VT = ir.VectorType(_F, V32)
_I64 = ir.IntType(64)


def _splat(value: float):
    return ir.Constant(_VT, [ir.Constant(_F, float(value))] * V32)


def _tanh(builder, v):
    """Eigen's ptanh_float on a vector: clamp, odd numerator over even denominator (as primitives._tanh32),
    the polynomials in fused multiply-adds."""
    clamp, low = _splat(P._CLAMP), _splat(-P._CLAMP)
    v = builder.select(builder.fcmp_ordered("<", v, low), low, v)
    v = builder.select(builder.fcmp_ordered(">", v, clamp), clamp, v)
    x2 = builder.fmul(v, v)
    p = _fma(builder, x2, _splat(P._A13), _splat(P._A11))
    for c in (P._A9, P._A7, P._A5, P._A3, P._A1):
        p = _fma(builder, x2, p, _splat(c))
    p = builder.fmul(v, p)
    q = _fma(builder, x2, _splat(P._B6), _splat(P._B4))
    for c in (P._B2, P._B0):
        q = _fma(builder, x2, q, _splat(c))
    return builder.fmul(p, _reciprocal(builder, q))


def _fma(builder, a, b, c):
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VT, [_VT] * 3), f"llvm.fma.v{V32}f32")
    return builder.call(fn, [a, b, c])


def _reciprocal(builder, q):
    """1/q from the x86 estimate (14 bits with AVX-512, 12 with AVX) and one Newton step,
    r (2 - q r): to within a few ulps of float32, at a fraction of a division's cost
    (five divisions a unit made the LSTM's gates a quarter of its inference time)."""
    if _RCP == "avx512":
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VT, [_VT, _VT, ir.IntType(16)]),
                                            "llvm.x86.avx512.rcp14.ps.512")
        r = builder.call(fn, [q, _splat(0.0), ir.Constant(ir.IntType(16), -1)])
    elif _RCP == "avx":
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VT, [_VT]), "llvm.x86.avx.rcp.ps.256")
        r = builder.call(fn, [q])
    else:                                     # another architecture: the division itself
        return builder.fdiv(_splat(1.0), q)
    return builder.fmul(r, _fma(builder, builder.fneg(q), r, _splat(2.0)))      # r (2 - q r)


def _sigmoid(builder, v):
    half = _splat(0.5)
    return builder.fadd(half, builder.fmul(half, _tanh(builder, builder.fmul(half, v))))


def _vec(builder, base, offset):
    """The vector at ``base + offset`` (a float pointer and an i64 element offset)."""
    return builder.bitcast(builder.gep(base, [offset]), _VT.as_pointer())


def _pointers(builder, *addresses):
    return [builder.inttoptr(a, _F.as_pointer()) for a in addresses]


@intrinsic
def lstm_row(typingctx, a, x, c, h, blocks):
    """``lstm_row(a, x, c, h, blocks)``: addresses of one row; ``c`` updated in place, ``h`` written."""
    sig = types.void(types.intp, types.intp, types.intp, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        a, x, c, h = _pointers(builder, *args[:4])
        with cgutils.for_range(builder, args[4]) as loop:
            j = builder.mul(loop.index, _I64(4 * V32))              # the block's first gate column
            u = builder.mul(loop.index, _I64(V32))                  # its first unit
            pre = [builder.fadd(builder.load(_vec(builder, x, builder.add(j, _I64(g * V32))), align=4),
                                builder.load(_vec(builder, a, builder.add(j, _I64(g * V32))), align=4))
                   for g in range(4)]
            i, f, o = _sigmoid(builder, pre[0]), _sigmoid(builder, pre[1]), _sigmoid(builder, pre[3])
            g = _tanh(builder, pre[2])
            c_ptr = _vec(builder, c, u)
            c_new = builder.fadd(builder.fmul(f, builder.load(c_ptr, align=4)), builder.fmul(i, g))
            builder.store(c_new, c_ptr, align=4)
            builder.store(builder.fmul(o, _tanh(builder, c_new)), _vec(builder, h, u), align=4)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def gru_row(typingctx, a, x, b_hn, h_prev, h, blocks):
    """``gru_row(a, x, b_hn, h_prev, h, blocks)``: addresses of one row; ``h`` written."""
    sig = types.void(types.intp, types.intp, types.intp, types.intp, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        a, x, b_hn, h_prev, h = _pointers(builder, *args[:5])
        with cgutils.for_range(builder, args[5]) as loop:
            j = builder.mul(loop.index, _I64(3 * V32))
            u = builder.mul(loop.index, _I64(V32))
            xs = [builder.load(_vec(builder, x, builder.add(j, _I64(g * V32))), align=4) for g in range(3)]
            As = [builder.load(_vec(builder, a, builder.add(j, _I64(g * V32))), align=4) for g in range(3)]
            r = _sigmoid(builder, builder.fadd(xs[0], As[0]))
            z = _sigmoid(builder, builder.fadd(xs[1], As[1]))
            a_n = builder.fadd(As[2], builder.load(_vec(builder, b_hn, u), align=4))
            n = _tanh(builder, builder.fadd(xs[2], builder.fmul(r, a_n)))
            hp = builder.load(_vec(builder, h_prev, u), align=4)
            builder.store(builder.fadd(n, builder.fmul(z, builder.fsub(hp, n))), _vec(builder, h, u), align=4)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def rnn_row(typingctx, a, x, h, vectors, relu):
    """``rnn_row(a, x, h, vectors, relu)``: ``h = tanh(x + a)`` (or ``max(x + a, 0)`` with ``relu`` != 0)."""
    sig = types.void(types.intp, types.intp, types.intp, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        a, x, h = _pointers(builder, *args[:3])
        is_relu = builder.icmp_signed("!=", args[4], _I64(0))
        zero = _splat(0.0)
        with cgutils.for_range(builder, args[3]) as loop:
            j = builder.mul(loop.index, _I64(V32))
            v = builder.fadd(builder.load(_vec(builder, x, j), align=4), builder.load(_vec(builder, a, j), align=4))
            relu_v = builder.select(builder.fcmp_ordered(">", v, zero), v, zero)
            builder.store(builder.select(is_relu, relu_v, _tanh(builder, v)), _vec(builder, h, j), align=4)
        return context.get_dummy_value()
    return sig, codegen
