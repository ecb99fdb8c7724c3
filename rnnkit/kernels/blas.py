"""NumPy's own BLAS ``gemm``, callable from numba-compiled loops.

The fused loops do one matrix product per time step. Calling it from inside
the compiled loop (instead of returning to Python for ``np.matmul`` at every
step) needs a C function pointer. We take it from the OpenBLAS that NumPy
itself loaded, so there is one BLAS thread pool in the process: numba's own
``np.dot`` would go through SciPy's BLAS, a second OpenBLAS whose threads
fight NumPy's for the same cores.

The symbol is internal to NumPy's wheel (``scipy_cblas_sgemm64_`` in NumPy 2,
``cblas_sgemm64_`` before) and may change between builds. So the lookup is
guarded: :func:`gemm_pointers` tries the known names, checks a small product
against ``np.matmul`` and returns None when anything is off; the kernels then
drive the time loop from Python with ``np.matmul`` (slower, same results).
Only the ILP64 interface (64-bit integers) is used, as NumPy's wheels ship it.

The addresses are passed to the compiled loops as plain integer arguments,
not baked in as constants, so the compiled code can be cached on disk and
reused by the next process (where the library may load elsewhere).
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Dict, Optional

import numpy as np

__all__ = ["gemm_pointers", "set_blas_threads", "get_blas_threads", "blas_library", "ROW_MAJOR",
           "NO_TRANS", "TRANS"]

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112          # CBLAS enum values

_CANDIDATES = {  # (sgemm, dgemm, set_num_threads, get_num_threads) per known NumPy build
    "scipy_openblas64": ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_",
                         "scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    "openblas64": ("cblas_sgemm64_", "cblas_dgemm64_",
                   "openblas_set_num_threads64_", "openblas_get_num_threads64_"),
}

_state: Dict[str, object] = {}


def _library_paths():
    """Shared libraries that may hold NumPy's OpenBLAS: those NumPy's wheel bundles, then those mapped now."""
    root = os.path.dirname(np.__file__)
    pats = [os.path.join(root, "..", "numpy.libs", "*openblas*"), os.path.join(root, ".dylibs", "*openblas*"),
            os.path.join(root, "..", "numpy", ".libs", "*openblas*")]
    paths = [p for pat in pats for p in sorted(glob.glob(pat))]
    try:
        with open("/proc/self/maps") as f:
            paths += [line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line]
    except OSError:
        pass
    seen, out = set(), []
    for p in paths:
        p = os.path.realpath(p)
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _find():
    if os.environ.get("RNNKIT_NO_BLAS_POINTER"):     # lets tests (and users) take the np.matmul path
        return None
    for path in _library_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for names in _CANDIDATES.values():
            try:
                fns = [getattr(lib, n) for n in names]
            except AttributeError:
                continue
            return path, lib, fns
    return None


def blas_library() -> Optional[str]:
    """Path of the BLAS library the kernels call, or None when they fall back to ``np.matmul``."""
    found = _load()
    return None if found is None else found["path"]


def _load():
    if "found" in _state:
        return _state["found"]
    _state["found"] = None
    hit = _find()
    if hit is not None:
        path, lib, (sg, dg, set_t, get_t) = hit
        set_t.argtypes, set_t.restype = [ctypes.c_int], None
        get_t.argtypes, get_t.restype = [], ctypes.c_int
        _state["found"] = {"path": path, "lib": lib, "sgemm": sg, "dgemm": dg, "set_threads": set_t,
                           "get_threads": get_t}
    return _state["found"]


def _address(fn) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value


def _check(fn, dtype) -> bool:
    """Multiply a small non-square product through the pointer (both transposes) and compare with NumPy."""
    c_fn = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                            ctypes.c_int64, _ctype(dtype), ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                            ctypes.c_int64, _ctype(dtype), ctypes.c_void_p, ctypes.c_int64)(_address(fn))
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 3)).astype(dtype)
    b = rng.standard_normal((7, 3)).astype(dtype)
    c = np.ones((5, 7), dtype)
    c_fn(ROW_MAJOR, NO_TRANS, TRANS, 5, 7, 3, 1.0, a.ctypes.data, 3, b.ctypes.data, 3, 0.5,
         c.ctypes.data, 7)
    return bool(np.allclose(c, a @ b.T + 0.5, rtol=1e-5, atol=1e-5))


def _ctype(dtype):
    return ctypes.c_float if np.dtype(dtype) == np.float32 else ctypes.c_double


def gemm_pointers():
    """``{float32: address of sgemm, float64: address of dgemm}`` (ints), or None where not found or wrong.

    Each is ``cblas_?gemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)``
    with int32 enums and int64 sizes (ILP64); :func:`rnnkit.kernels.primitives.mm` calls them.
    """
    if "pointers" in _state:
        return _state["pointers"]
    _state["pointers"] = None
    found = _load()
    if found is not None and _check(found["sgemm"], np.float32) and _check(found["dgemm"], np.float64):
        _state["pointers"] = {np.dtype(np.float32): _address(found["sgemm"]),
                              np.dtype(np.float64): _address(found["dgemm"])}
    return _state["pointers"]


def set_blas_threads(n: int) -> bool:
    """Set the number of threads of NumPy's OpenBLAS (what the kernels use); False if it is not reachable."""
    found = _load()
    if found is None:
        return False
    found["set_threads"](int(n))
    return True


def get_blas_threads() -> Optional[int]:
    found = _load()
    return None if found is None else int(found["get_threads"]())
