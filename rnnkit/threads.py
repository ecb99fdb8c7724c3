"""How many threads rnnkit's matrix products use: ``set_threads`` and the ``--threads`` policy.

NumPy's OpenBLAS starts one thread per core and spins them between products.
When other jobs share the cores, that collapses: this project measured a
training step 4-40x slower with OpenBLAS's default threading than with one
thread on a loaded 2-core machine. So the default, ``"auto"``, takes the cores
this process may run on, subtracts the cores other work keeps busy now and uses
what is left, at least one:

    threads = max(1, min(cores, cores - round(busy)))

``busy`` is measured over a tenth of a second from ``/proc/stat`` (the busy share
of each of this process's cores, summed). Where that cannot be read, it is the
one-minute load average, which lags: right after ``pip install`` it still counts
the installer, and a run then got one thread on an idle 2-core machine.

An integer fixes the count. The setting covers NumPy's BLAS (through the
OpenBLAS that NumPy loaded, or threadpoolctl when installed), which the
compiled kernels call too, and numba's thread pool when numba is loaded.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Dict, Optional, Union

from .errors import HyperparameterError

__all__ = ["set_threads", "auto_threads", "available_cores", "busy_cores", "parse_threads", "thread_budget"]

_setting: Dict[str, Optional[int]] = {"threads": None}


def available_cores() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times(cpus, stat_file: str):
    """{cpu: (busy, total)} jiffies of the given CPUs from /proc/stat."""
    times = {}
    with open(stat_file) as f:
        for line in f:
            name, *fields = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            cpu = int(name[3:])
            if cpu in cpus:
                values = [int(v) for v in fields[:8]]
                idle = values[3] + (values[4] if len(values) > 4 else 0)     # idle + iowait
                times[cpu] = (sum(values) - idle, sum(values))
    return times


def busy_cores(window: float = 0.1, stat_file: str = "/proc/stat") -> Optional[float]:
    """How many of this process's cores other work keeps busy now (0 .. cores), or None where unknown."""
    try:
        cpus = set(os.sched_getaffinity(0))
        before = _cpu_times(cpus, stat_file)
        time.sleep(window)
        after = _cpu_times(cpus, stat_file)
    except (AttributeError, OSError, ValueError, IndexError):
        return None
    busy = 0.0
    for cpu, (b1, t1) in after.items():
        b0, t0 = before.get(cpu, (b1, t1))
        if t1 > t0:
            busy += (b1 - b0) / (t1 - t0)
    return busy if after else None


def auto_threads() -> int:
    """The ``"auto"`` policy of the module docstring."""
    cores = available_cores()
    busy = busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):
            return cores
    return max(1, min(cores, cores - int(round(busy))))


def parse_threads(value: Union[str, int, None], name: str = "threads (--threads)") -> Optional[int]:
    """``"auto"``/None -> None (decide at run time), else a positive int; anything else is refused."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, bool):
        raise HyperparameterError(f"{name} must be 'auto' or an integer >= 1, got {value!r}")
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise HyperparameterError(f"{name} must be 'auto' or an integer >= 1, got {value!r}") from None
    if n < 1 or (isinstance(value, float) and n != value):
        raise HyperparameterError(f"{name} must be 'auto' or an integer >= 1, got {value!r}")
    return n


def set_threads(n: Union[str, int, None] = "auto") -> Dict[str, Optional[int]]:
    """Use ``n`` threads (or the ``"auto"`` count) for BLAS and numba; returns what was set.

    ``{"threads": n, "blas": threads BLAS reports (None if unreachable), "numba": ... or None}``.
    """
    count = parse_threads(n)
    if count is None:
        count = auto_threads()
    elif count > available_cores():
        # measured on 2 cores: 3 threads ran the sgemm peak at 3 GFLOP/s instead of 141
        raise HyperparameterError(f"threads (--threads) is {count}, but this process may use {available_cores()} "
                                  "core(s); more threads than cores slows the matrix products many times over. "
                                  "Use --threads auto or a number up to the core count")
    from .kernels.blas import get_blas_threads, set_blas_threads
    blas: Optional[int] = None
    if set_blas_threads(count):
        blas = get_blas_threads()
    else:
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(count, user_api="blas")
            blas = count
        except ImportError:
            pass
    _setting["threads"] = count
    numba_threads = None
    if "numba" in sys.modules:         # never import numba just to set its pool
        try:
            import numba
            numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
            numba_threads = numba.get_num_threads()
        except Exception:              # a numba without a thread pool (or a broken one): BLAS is what matters
            numba_threads = None
    return {"threads": count, "blas": blas, "numba": numba_threads}


def thread_budget() -> Optional[int]:
    """The count of the last :func:`set_threads` (None before any): what the compiled inference loops
    that split a batch's rows or share a step among numba's threads may use, also when numba was loaded after the setting."""
    return _setting["threads"]
