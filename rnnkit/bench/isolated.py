"""Measurements that need a fresh process: peak memory of a training step, and numba compile times.

Each runs ``python -m rnnkit.bench.isolated ...`` in a subprocess and reads one
JSON line back, so neither the parent's allocations nor its loaded kernels
colour the result.

**Peak memory.** The child builds the layer and input, runs one training step
(so lazy initialisation is not counted), then resets the kernel's record of
peak resident memory (``/proc/self/clear_refs``), runs a second step and reads
the peak (``VmHWM``). Reported: that peak minus the resident memory just
before the step, i.e. what the step itself needed, for rnnkit and torch alike.
For rnnkit the peak of NumPy's traced allocations (``tracemalloc``) is given too.

**Compile times.** The child points ``NUMBA_CACHE_DIR`` at an empty directory
and times the first forward+backward of each cell (compilation), then a second
child with the same directory times it again (loading from the cache).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, Optional

import numpy as np

__all__ = ["peak_memory", "compile_times"]


def _run_child(args, env=None, timeout=900) -> dict:
    done = subprocess.run([sys.executable, "-m", "rnnkit.bench.isolated", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child {' '.join(map(str, args))} failed: {done.stderr.strip()[-500:]}")
    return json.loads(lines[-1])


def peak_memory(T: int = 1000, N: int = 32, I: int = 64, H: int = 256, layers: int = 1, cell: str = "lstm",
                frameworks=("rnnkit", "torch"), threads: Optional[int] = None) -> Dict[str, dict]:
    """Peak extra resident memory (MiB) of one training step, per framework, each in its own process."""
    out = {}
    for fw in frameworks:
        out[fw] = _run_child(["memory", fw, cell, T, N, I, H, layers, threads or 0])
    return out


def compile_times(cells=("lstm", "gru", "rnn")) -> Dict[str, dict]:
    """Seconds for the first forward+backward of each cell with an empty numba cache, then with it filled."""
    with tempfile.TemporaryDirectory(prefix="rnnkit-numba-cache-") as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        env.pop("RNNKIT_BACKEND", None)
        cold = _run_child(["compile", ",".join(cells)], env=env)
        warm = _run_child(["compile", ",".join(cells)], env=env)
    return {"first_call_s": cold, "cached_call_s": warm}


# -- children ------------------------------------------------------------------------------

def _rss_mib(field: str) -> Optional[float]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _child_memory(fw, cell, T, N, I, H, layers, threads) -> dict:
    T, N, I, H, layers, threads = map(int, (T, N, I, H, layers, threads))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    dy = rng.standard_normal((T, N, H)).astype(np.float32)
    if fw == "torch":
        import torch
        if threads:
            torch.set_num_threads(threads)
        module = getattr(torch.nn, cell.upper())(I, H, layers)
        xt = torch.from_numpy(x).requires_grad_(True)
        dyt = torch.from_numpy(dy)

        def step():
            module.zero_grad()
            xt.grad = None
            module(xt)[0].backward(dyt)
    else:
        from ..nn import GRU, LSTM, RNN
        from ..kernels import resolve_backend
        from ..threads import set_threads
        if threads:
            set_threads(threads)
        layer = {"lstm": LSTM, "gru": GRU, "rnn": RNN}[cell](I, H, layers, rng=0)

        def step():
            layer.zero_grad()
            _, _, cache = layer.forward(x)
            layer.backward(dy, cache)
    step()                                           # lazy initialisation, kernel loading: not counted
    base = _rss_mib("VmRSS")
    exact = _reset_peak()
    traced = None
    if fw != "torch":
        import tracemalloc
        tracemalloc.start()
        step()
        traced = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        _reset_peak()                                # tracemalloc's own bookkeeping is not the step's
        base = _rss_mib("VmRSS")
    t0 = time.perf_counter()
    step()
    seconds = time.perf_counter() - t0
    peak = _rss_mib("VmHWM")
    if not exact:                                    # no clear_refs: fall back to the lifetime peak
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {"framework": fw, "cell": cell, "T": T, "N": N, "I": I, "H": H, "layers": layers,
              "baseline_rss_mib": base, "peak_rss_mib": peak, "step_peak_mib": None if peak is None else peak - base,
              "peak_is_per_step": exact, "step_seconds": seconds}
    if fw != "torch":
        result["tracemalloc_peak_mib"] = traced
        result["backend"] = resolve_backend(layer.backend)
    return result


def _child_compile(cells) -> dict:
    t0 = time.perf_counter()
    from ..nn import GRU, LSTM, RNN
    from ..kernels import resolve_backend
    out = {"import_and_resolve": None}
    backend = resolve_backend()
    out["import_and_resolve"] = time.perf_counter() - t0
    out["backend"] = backend
    for cell in cells.split(","):
        layer = {"lstm": LSTM, "gru": GRU, "rnn": RNN}[cell](8, 16, rng=0)
        x = np.ones((100, 4, 8), np.float32)              # T*N above the stacking threshold
        t0 = time.perf_counter()
        y, _, cache = layer.forward(x)
        layer.backward(np.ones_like(y), cache)
        out[cell] = time.perf_counter() - t0
    return out


def _main(argv) -> None:
    kind, *rest = argv
    result = _child_memory(*rest) if kind == "memory" else _child_compile(*rest)
    print(json.dumps(result))


if __name__ == "__main__":
    _main(sys.argv[1:])
