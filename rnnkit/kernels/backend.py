"""Which implementation runs the recurrent scan: the NumPy reference or the fused numba kernels.

- ``"numpy"``: :mod:`rnnkit.nn.scan`, the reference (readable, one cell step per call);
- ``"numba"``: :mod:`rnnkit.kernels.fused_scan`, one compiled loop per layer and direction;
- ``"auto"`` (default): numba when it imports and compiles, else numpy.

The setting comes from :func:`set_backend`, else the environment variable
``RNNKIT_BACKEND``, else ``"auto"``; a layer's ``backend=`` argument overrides
both for that layer. When the numba path cannot run (numba missing, a failed
compilation, no writable cache directory), rnnkit says so once, as a
``RuntimeWarning``, and runs the reference: results are the same, only slower.

Compiled code is cached on disk (numba ``cache=True``): the first call of each
kernel in a fresh installation compiles it (seconds), later processes load it
(tens of milliseconds). The cache lives next to the modules, or, when that
directory is not writable, under ``NUMBA_CACHE_DIR`` or ``~/.cache/rnnkit/numba``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import warnings
from typing import Optional

from ..errors import RnnkitError

__all__ = ["BACKENDS", "set_backend", "get_backend", "resolve_backend", "numba_status", "fused_scan_module",
           "disable_numba", "KernelUnavailable"]

BACKENDS = ("auto", "numpy", "numba")
_setting: Optional[str] = None
_status = {"checked": False, "ok": False, "reason": "", "warned": False}


class KernelUnavailable(RuntimeError):
    """A fused kernel could not run here (it failed to compile); the caller runs its reference instead.

    Raised by :func:`rnnkit.kernels.fused_scan.scan_forward` after :func:`disable_numba`,
    caught by :func:`rnnkit.nn.scan.scan_forward`: the kernels never import the reference.
    """


def _validate(name, where: str) -> str:
    if name not in BACKENDS:
        raise RnnkitError(f"{where}: expected one of {', '.join(map(repr, BACKENDS))}, got {name!r}")
    return name


def set_backend(name: str) -> None:
    """Choose the recurrent backend for every layer that does not name its own: "auto", "numpy" or "numba".

    Asking for "numba" where it cannot run raises :class:`rnnkit.errors.RnnkitError` with the reason.
    """
    global _setting
    _validate(name, "backend")
    if name == "numba" and not _numba_ok():
        raise RnnkitError(f"backend 'numba' is not available here: {_status['reason']} "
                          "(install the extra: pip install 'rnnkit[fast]')")
    _setting = name


def get_backend() -> str:
    """The current setting ("auto", "numpy" or "numba"), from :func:`set_backend` or ``RNNKIT_BACKEND``."""
    if _setting is not None:
        return _setting
    return _validate(os.environ.get("RNNKIT_BACKEND", "auto").strip().lower() or "auto", "RNNKIT_BACKEND")


def resolve_backend(requested: Optional[str] = None) -> str:
    """What actually runs for a layer asking for ``requested`` (None: the global setting): "numpy" or "numba"."""
    name = get_backend() if requested is None else _validate(requested, "backend")
    if name == "numpy":
        return "numpy"
    if _numba_ok():
        return "numba"
    _notice()
    return "numpy"


def numba_status() -> dict:
    """``{"ok": bool, "reason": str, "blas": path or None}``: can the numba kernels run, and which BLAS they call."""
    ok = _numba_ok()
    blas = None
    if ok:
        from .blas import blas_library, gemm_pointers
        blas = blas_library() if gemm_pointers() is not None else None
    return {"ok": ok, "reason": _status["reason"], "blas": blas}


def fused_scan_module(requested: Optional[str] = None):
    """:mod:`rnnkit.kernels.fused_scan` when the numba backend is selected and works, else None."""
    if resolve_backend(requested) != "numba":
        return None
    from . import fused_scan
    return fused_scan


def disable_numba(reason: str) -> None:
    """Turn the numba path off for this process (after a failure), with the one-line notice."""
    _status.update(checked=True, ok=False, reason=reason)
    _notice()


def _notice() -> None:
    if not _status["warned"]:
        _status["warned"] = True
        warnings.warn(f"rnnkit: fused numba kernels unavailable ({_status['reason']}); "
                      "running the NumPy reference path (same results, slower)", RuntimeWarning,
                      stacklevel=_caller_level())


def _caller_level() -> int:
    """The warning's stack level that names the first frame outside rnnkit (the user's call)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(2), 2           # 1 is _notice itself
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _ensure_cache_dir() -> None:
    """Give numba a writable cache directory when the one beside the modules is not (read-only installs)."""
    import numba.core.config as config

    if config.CACHE_DIR:
        return
    here = os.path.join(os.path.dirname(__file__), "__pycache__")
    try:
        os.makedirs(here, exist_ok=True)
        if os.access(here, os.W_OK):
            return
    except OSError:
        pass
    for candidate in (os.path.join(os.path.expanduser("~"), ".cache", "rnnkit", "numba"),
                      os.path.join(tempfile.gettempdir(), f"rnnkit-numba-{os.getuid() if hasattr(os, 'getuid') else 0}")):
        try:
            os.makedirs(candidate, exist_ok=True)
            if os.access(candidate, os.W_OK):
                config.CACHE_DIR = candidate
                return
        except OSError:
            continue


def _drop_stale_compiled_code(dirs=None) -> None:
    """Remove cached kernels compiled from other sources than these.

    numba keys a cached function on its own source file only, but the loops in
    lstm.py, gru.py, rnn.py and the variant loops also compile in what they use from
    primitives.py (and the variants from lstm.py and gru.py, the inference loops from
    inference_rows.py). A stamp over all these files (and numba's version) beside the
    cache says which sources the cached code came from; on a mismatch the
    kernels' cache files are deleted, before any is loaded, and compiled anew.
    """
    import numba
    from numba.core.dispatcher import Dispatcher

    from . import (gru, gru_variants, inference, inference_loops, inference_rows, inference_threads, layernorm, lstm,
                   lstm_variants, microgemm, primitives, rnn, spin, vector_gates)

    modules = (primitives, lstm, gru, rnn, lstm_variants, gru_variants, layernorm, microgemm, vector_gates, inference,
               inference_loops, inference_rows, inference_threads, spin)
    digest = hashlib.sha256(numba.__version__.encode())
    for module in modules:
        with open(module.__file__, "rb") as f:
            digest.update(f.read())
    stamp = digest.hexdigest()
    prefixes = tuple(module.__name__.rsplit(".", 1)[1] + "." for module in modules)
    if dirs is None:
        dirs = {getattr(fn._cache, "_cache_path", None) for module in modules for fn in vars(module).values()
                if isinstance(fn, Dispatcher)}
    for path in filter(None, dirs):
        stamp_file = os.path.join(path, "rnnkit-kernels.stamp")
        try:
            with open(stamp_file) as f:
                if f.read() == stamp:
                    continue
        except OSError:
            pass
        try:
            for name in os.listdir(path):
                if name.startswith(prefixes) and name.endswith((".nbi", ".nbc")):
                    os.remove(os.path.join(path, name))
            with open(stamp_file, "w") as f:
                f.write(stamp)
        except OSError:                  # not ours to clean (read-only): numba will recompile or use it as is
            pass


def _numba_ok() -> bool:
    if _status["checked"]:
        return _status["ok"]
    _status["checked"] = True
    if os.environ.get("RNNKIT_DISABLE_NUMBA"):
        _status["reason"] = "RNNKIT_DISABLE_NUMBA is set"
        return False
    try:
        _ensure_cache_dir()
        from . import fused_scan  # noqa: F401  (imports numba and declares the kernels)
        _drop_stale_compiled_code()
    except Exception as exc:     # missing numba, broken llvmlite, no cache locator: all mean "reference path"
        _status["reason"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return False
    _status["ok"] = True
    return True
