r"""A register-tiled product on weights packed once per call: the products of the inference loops.

Every step of a recurrent layer multiplies the state (and its input) by the same
weights: ``A (N, G*H) = h (N, H) @ W_hh^T``. OpenBLAS packs both operands into its
own layout on every call, which at the sizes of a time step (N = 1-64) costs a
large part of the product. Here the weights are packed once per forward call into
*panels*: for each block of V hidden units (V = one SIMD register of the
dtype), the G gate rows of those units side by side,

    Wp[b, k, g*V + l] = W_hh[g*H + b*V + l, k]     (zero where b*V + l >= H)    # (B, H, G*V)

so that one step of the product for rows n..n+R-1 and unit block b is

    acc[r, g] (V,) += h[n + r, k] * Wp[b, k, g*V : (g+1)*V]      for k < H

with the R x G accumulators held in vector registers (R = 6 rows, then 4, 2, 1
for the rest of the batch), each ``Wp`` vector loaded once per k and each ``h``
element broadcast once. K runs in chunks whose panel rows fit in L1, so every
row tile of the batch reuses them. The product ends with all G gate
pre-activations of each unit block side by side: the caller applies the gate
nonlinearity row by row (see :mod:`rnnkit.kernels.inference`).

The tile is written directly in LLVM IR (numba ``@intrinsic``) as vectors of
``V`` lanes and ``llvm.fma`` calls: plain numba loops leave the accumulators in
memory (the compiler cannot prove the output does not alias the weights).
V follows the host's widest vectors: 64 bytes with AVX-512, else 32.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .aligned import aligned_empty

__all__ = ["VECTOR_BYTES", "lanes", "tile", "panel_product", "pack_panels", "k_chunk"]


def _vector_bytes() -> int:
    try:
        import llvmlite.binding as llvm
        features = llvm.get_host_cpu_features()
        return 64 if features.get("avx512f", False) else 32
    except Exception:                     # unknown host: 32-byte vectors are legal (and split) everywhere
        return 32


VECTOR_BYTES = _vector_bytes()
L1_BYTES = 32768


def k_chunk(vectors: int, dtype) -> int:
    """Rows of a panel that fit in 32 KiB of L1: the K chunk of :func:`panel_product`."""
    return max(8, L1_BYTES // (vectors * VECTOR_BYTES))


def lanes(dtype) -> int:
    """V: the lanes of one vector register for ``dtype`` (16 float32 / 8 float64 with AVX-512)."""
    return VECTOR_BYTES // np.dtype(dtype).itemsize


def _make_tile(rows: int, vectors: int):
    """The intrinsic ``(wp, hp, ldh, K, op, ldo, accumulate, zero, pf)``: pointers as integers, sizes in elements.

    ``out[r, :] (+)= sum_k h[r, k] * Wp[k, :]`` over ``vectors`` vectors of V lanes,
    for r < rows, with ``out`` row r at ``op + r*ldo``; with ``accumulate`` (0/1)
    the sums start from ``out`` instead of 0; ``zero`` (a 0 of the dtype) only
    chooses the element type. ``pf``: an address whose line ``pf + k*vectors*V``
    is prefetched into L2 at each k (the caller's next panel chunk; the current
    chunk ``wp`` when there is nothing to fetch, which costs a hit).
    """

    @intrinsic
    def _tile(typingctx, wp, hp, ldh, K, op, ldo, accumulate, zero, pf):
        sig = types.void(types.intp, types.intp, types.int64, types.int64, types.intp, types.int64, types.int64,
                         zero, types.intp)

        def codegen(context, builder, signature, args):
            wp, hp, ldh, K, op, ldo, accumulate, _, pf = args
            fty = context.get_value_type(signature.args[7])
            itemsize = 4 if fty == ir.FloatType() else 8
            V = VECTOR_BYTES // itemsize
            vty = ir.VectorType(fty, V)
            i64, i32 = ir.IntType(64), ir.IntType(32)
            fptr, vptr = fty.as_pointer(), vty.as_pointer()
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                                 f"llvm.fma.v{V}f{8 * itemsize}")
            zero_vec = ir.Constant(vty, [ir.Constant(fty, 0.0)] * V)
            splat = ir.Constant(ir.VectorType(i32, V), [0] * V)
            accs = [[cgutils.alloca_once_value(builder, zero_vec) for _ in range(vectors)] for _ in range(rows)]
            o0 = builder.inttoptr(op, fptr)
            o_vecs = [[builder.bitcast(builder.gep(o0, [builder.add(builder.mul(ldo, i64(r)), i64(g * V))]), vptr)
                       for g in range(vectors)] for r in range(rows)]
            with builder.if_then(builder.icmp_signed("!=", accumulate, i64(0))):
                for r in range(rows):
                    for g in range(vectors):
                        builder.store(builder.load(o_vecs[r][g], align=itemsize), accs[r][g])
            w0 = builder.inttoptr(wp, fptr)
            h0 = builder.inttoptr(hp, fptr)
            h_rows = [builder.gep(h0, [builder.mul(ldh, i64(r))]) for r in range(rows)]
            i8p = ir.IntType(8).as_pointer()
            prefetch = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                      "llvm.prefetch.p0")
            p0 = builder.inttoptr(pf, fptr)
            with cgutils.for_range(builder, K) as loop:
                k = loop.index
                builder.call(prefetch, [builder.bitcast(builder.gep(p0, [builder.mul(k, i64(vectors * V))]), i8p),
                                        i32(0), i32(2), i32(1)])        # read, into L2, data
                wk = builder.gep(w0, [builder.mul(k, i64(vectors * V))])
                ws = [builder.load(builder.bitcast(builder.gep(wk, [i64(g * V)]), vptr), align=itemsize)
                      for g in range(vectors)]
                for r in range(rows):
                    hs = builder.load(builder.gep(h_rows[r], [k]))
                    hb = builder.shuffle_vector(builder.insert_element(ir.Constant(vty, ir.Undefined), hs, i64(0)),
                                                ir.Constant(vty, ir.Undefined), splat)   # h[r, k] in every lane
                    for g in range(vectors):
                        builder.store(builder.call(fma, [ws[g], hb, builder.load(accs[r][g])]), accs[r][g])
            for r in range(rows):
                for g in range(vectors):
                    builder.store(builder.load(accs[r][g]), o_vecs[r][g], align=itemsize)
            return context.get_dummy_value()
        return sig, codegen
    return _tile


_t4 = {r: _make_tile(r, 4) for r in (6, 4, 2, 1)}
_t3 = {r: _make_tile(r, 3) for r in (6, 4, 2, 1)}
_t4_6, _t4_4, _t4_2, _t4_1 = _t4[6], _t4[4], _t4[2], _t4[1]
_t3_6, _t3_4, _t3_2, _t3_1 = _t3[6], _t3[4], _t3[2], _t3[1]

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(inline="always")
def tile(vectors, rows, wp, hp, ldh, K, ap, lda, accumulate, zero, pf=0):
    """``A[r, :] (+)= h[r, :K] @ Wp_k`` (K, vectors*V) for r < rows (6, 4, 2 or 1); all by address.

    Addresses, not array slices: a numba slice costs two atomic reference-count
    updates, which at tens of tiles per step is more than the tiles' arithmetic.
    ``pf`` (an address, 0: none) is read ahead into L2 along the way, one line per k.
    """
    acc = np.int64(accumulate)
    pf = wp if pf == 0 else pf
    if vectors == 4:
        if rows == 6:
            _t4_6(wp, hp, ldh, K, ap, lda, acc, zero, pf)
        elif rows == 4:
            _t4_4(wp, hp, ldh, K, ap, lda, acc, zero, pf)
        elif rows == 2:
            _t4_2(wp, hp, ldh, K, ap, lda, acc, zero, pf)
        else:
            _t4_1(wp, hp, ldh, K, ap, lda, acc, zero, pf)
    else:
        if rows == 6:
            _t3_6(wp, hp, ldh, K, ap, lda, acc, zero, pf)
        elif rows == 4:
            _t3_4(wp, hp, ldh, K, ap, lda, acc, zero, pf)
        elif rows == 2:
            _t3_2(wp, hp, ldh, K, ap, lda, acc, zero, pf)
        else:
            _t3_1(wp, hp, ldh, K, ap, lda, acc, zero, pf)


@njit(inline="always")
def panel_product(vectors, Wp, h, A, k_chunk, accumulate):
    """``A (N, B*vectors*V) (+)= h (N, :K) @ Wp`` panel by panel: ``A[:, b*GV:(b+1)*GV] (+)= h[:, :K] @ Wp[b]``.

    Per panel, K in chunks of ``k_chunk`` (a chunk of the panel stays in L1
    while every row tile uses it; a rest of at most ``k_chunk // 8`` rows joins the last chunk), rows in tiles of 6 and the rest by 4, 2, 1
    (a rest of 2 after at least one 6 as 4 + 4: a 2-row tile has too few
    independent sums to keep both FMA units busy).
    While the first ``vectors`` row tiles run on a chunk, tile i reads vector i
    of every row of the next chunk ahead into L2, so weights larger than L2
    (config B's 4 MB W_hh) arrive before they are needed instead of at the
    next chunk's first tile.
    ``h`` and ``A`` need unit stride within rows; ``Wp`` (B, K, GV) is C-contiguous.
    """
    B, K, GV = Wp.shape
    N = h.shape[0]
    size = h.itemsize
    zero = h.dtype.type(0)
    ldh, lda = np.int64(h.strides[0] // size), np.int64(A.strides[0] // size)
    w0, h0, a0 = Wp.ctypes.data, h.ctypes.data, A.ctypes.data
    vec_bytes = GV * size // vectors
    for blk in range(B):
        k0 = 0
        while k0 < K:
            k1 = min(K, k0 + k_chunk)
            if K - k1 <= k_chunk // 8:            # a short rest joins this chunk (the bias row after 128 inputs)
                k1 = K
            kc = np.int64(k1 - k0)
            wp = w0 + (blk * K + k0) * GV * size
            nxt = wp + kc * GV * size if (k0 + kc < K or blk + 1 < B) else 0   # panels follow each other
            acc = accumulate or k0 > 0
            n = 0
            i = 0
            sixes = N // 6 - 1 if (N % 6 == 2 and N >= 8) else N // 6     # a rest of 2 rows: 4 + 4, not 6 + 2
            while n < 6 * sixes:
                tile(vectors, 6, wp, h0 + (n * ldh + k0) * size, ldh, kc, a0 + (n * lda + blk * GV) * size, lda, acc,
                     zero, nxt + i * vec_bytes if (nxt != 0 and i < vectors) else 0)
                n += 6
                i += 1
            for rows in (4, 4, 2, 1):
                if n + rows <= N:
                    tile(vectors, rows, wp, h0 + (n * ldh + k0) * size, ldh, kc, a0 + (n * lda + blk * GV) * size,
                         lda, acc, zero, nxt + i * vec_bytes if (nxt != 0 and i < vectors) else 0)
                    n += rows
                    i += 1
            k0 = k1


def pack_panels(W, src, vectors_width):
    """``Wp`` (B, K, GW) from ``W`` (rows, K): panel column j of block b is row ``src[b*GW + j]`` of W
    (zero where that is -1), GW = ``vectors_width``; on a cache-line boundary (:mod:`rnnkit.kernels.aligned`)."""
    Wp = aligned_empty((src.size // vectors_width, W.shape[1], vectors_width), W.dtype)
    _fill_panels(W, src, Wp)
    return Wp


@njit(**_JIT)
def _fill_panels(W, src, Wp):
    B, K, GW = Wp.shape
    Wp[...] = 0
    for b in range(B):
        rows = src[b * GW:(b + 1) * GW]
        for k in range(K):                  # writes in order; the reads jump between GW rows of W
            out = Wp[b, k]
            for j in range(GW):
                if rows[j] >= 0:
                    out[j] = W[rows[j], k]
