"""Timing helpers for ``rnnkit bench``: interleaved runs, robust summaries, thread control, sgemm peak.

Timings on a shared or busy machine drift by tens of percent between minutes.
Running the contenders *interleaved* (a call of each in turn, the order rotated
every round) exposes them to the same drift, so their ratio stays meaningful
even when the absolute times do not; medians and the interquartile range
summarise each side without letting a few slow outliers dominate.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Callable, Dict, List, Optional

import numpy as np

__all__ = ["interleaved", "summarize", "set_threads", "sgemm_peak", "environment", "load_average"]


CALLS_PER_TURN = 3
"""How many calls each contender makes in a row in ``rnnkit bench`` (its *turn*), the first of them untimed.
Measured on 2026-12-03: PyTorch's and numba's OpenMP worker threads, and onnxruntime's unless told otherwise,
keep spinning for about 5-9 ms of CPU after a call returns. With one call per turn they took a core from
whichever contender came next: a bidirectional layer run as two concurrent directions measured 0.9x of
its serial time right after a PyTorch call and 1.2-1.4x after a 5 ms pause. A pause instead of the untimed
call does not work: after 15 ms of sleep every side ran cold (PyTorch's one-sequence LSTM at config C took
12 ms instead of 0.5 ms, rnnkit's and onnxruntime's 2x their time), which is not how a served model runs.
The untimed first call absorbs the previous contender's threads; the timed ones follow the contender's own
call, as in a process that runs only it."""


def interleaved(fns: Dict[str, Callable[[], object]], *, warmup: int = 2, min_reps: int = 5,
                max_reps: int = 200, target_s: float = 1.0, calls_per_turn: int = 1) -> Dict[str, List[float]]:
    """Seconds per call of each function, measured round-robin.

    After ``warmup`` calls each, the number of timed calls per function is chosen
    so that the slowest function runs about ``target_s`` seconds in total (within
    [min_reps, max_reps]). Each round gives every function one turn, starting at a
    different one each time; a turn is ``calls_per_turn`` calls in a row, of which
    all but the first are timed when there are more than one (the first absorbs
    what the previous function left running: see :data:`CALLS_PER_TURN`).
    """
    names = list(fns)
    slowest = 0.0
    for name in names:
        for _ in range(max(1, warmup)):
            t0 = time.perf_counter()
            fns[name]()
            slowest = max(slowest, time.perf_counter() - t0)
    reps = int(min(max_reps, max(min_reps, target_s / max(slowest, 1e-9))))
    timed = max(1, calls_per_turn - 1)
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(-(-reps // timed)):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            if calls_per_turn > 1:
                fns[name]()                                  # untimed: the previous function's threads settle
            for _ in range(timed):
                t0 = time.perf_counter()
                fns[name]()
                samples[name].append(time.perf_counter() - t0)
    return samples


def summarize(seconds: List[float]) -> Dict[str, float]:
    """Median, quartiles and minimum in milliseconds, and the number of samples."""
    ms = np.asarray(seconds) * 1e3
    q1, med, q3 = np.percentile(ms, [25, 50, 75])
    return {"median_ms": float(med), "q1_ms": float(q1), "q3_ms": float(q3), "min_ms": float(ms.min()),
            "spread_pct": float(100 * (q3 - q1) / 2 / med) if med > 0 else 0.0, "reps": int(ms.size)}


def set_threads(n, torch_module=None) -> Dict[str, Optional[int]]:
    """Use ``n`` threads (an integer or "auto") in NumPy's BLAS, numba and, if given, torch: the same for both sides.

    BLAS and numba go through :func:`rnnkit.threads.set_threads`, the one place
    that knows how; torch gets the count that call settled on.
    """
    from ..threads import set_threads as set_rnnkit_threads

    done = set_rnnkit_threads(n)
    if torch_module is not None:
        torch_module.set_num_threads(done["threads"])
    return {"threads": done["threads"], "blas": done["blas"], "numba": done["numba"],
            "torch": None if torch_module is None else torch_module.get_num_threads()}


def sgemm_peak(n: int = 2048, reps: int = 5, torch_module=None) -> Dict[str, float]:
    """GFLOP/s of an n x n float32 matrix product: NumPy's BLAS (the kernels' one) and torch's, if given."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    fns = {"numpy": lambda: a @ b}
    if torch_module is not None:
        ta, tb = torch_module.from_numpy(a), torch_module.from_numpy(b)
        fns["torch"] = lambda: ta @ tb
    samples = interleaved(fns, warmup=1, min_reps=reps, max_reps=reps, target_s=0.0)
    return {k: 2.0 * n ** 3 / float(np.median(v)) / 1e9 for k, v in samples.items()}


def load_average() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(torch_module=None) -> Dict[str, object]:
    """What the numbers depend on: versions, CPU, cores, BLAS, the kernels' state, relevant variables."""
    import rnnkit
    from ..kernels import get_backend, numba_status

    env = {"rnnkit": rnnkit.__version__, "python": platform.python_version(), "numpy": np.__version__,
           "platform": platform.platform(), "cpu": _cpu_model(), "cores": os.cpu_count(),
           "backend_setting": get_backend(), "numba": numba_status(),
           "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                                   "OMP_NUM_THREADS", "RNNKIT_BACKEND", "NUMBA_CACHE_DIR")}}
    try:
        import numba
        env["numba_version"] = numba.__version__
    except ImportError:
        env["numba_version"] = None
    env["torch"] = None if torch_module is None else torch_module.__version__
    return env
