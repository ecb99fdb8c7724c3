"""The machine's multiply-add peak as rnnkit's products can reach it: the register tile on panels held in L1.

The inference loops (:mod:`rnnkit.kernels.microgemm`) run every product as 6-row x 4-vector
tiles of fused multiply-adds. Here the same tile runs on one 128-row chunk of panels (32 KiB,
which stays in L1) and 48 rows of input, over and over: nothing waits for memory, so its rate is
the most any product of the loops can reach, on one core and on all of them at once (one Python
thread each: the compiled loop releases the GIL). The issue-14 goals are judged against it
(``benchmarks/inference_goals.py RESULT.json --peak GFLOPS``): a speedup over PyTorch that would
need more than this rate cannot be reached by a faster loop.

    python benchmarks/fma_peak.py --out benchmarks/results/fma_peak.json
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np
from numba import njit

from rnnkit.bench.timing import environment, load_average
from rnnkit.io.atomic import check_outputs, write_json
from rnnkit.kernels import microgemm

ROWS, K = 48, 128


@njit(nogil=True)
def _repeat(Wp, h, A, reps):
    for _ in range(reps):
        microgemm.panel_product(4, Wp, h, A, K, False)


def _inputs():
    V = microgemm.lanes(np.float32)
    rng = np.random.default_rng(0)
    Wp = microgemm.pack_panels(rng.standard_normal((4 * V, K)).astype(np.float32), np.arange(4 * V), 4 * V)
    h = rng.standard_normal((ROWS, K)).astype(np.float32)
    return Wp, h, np.zeros((ROWS, 4 * V), np.float32), 2.0 * ROWS * K * 4 * V


def rate(threads: int, seconds: float = 1.0) -> float:
    """GFLOP/s of ``threads`` tiles running at once, each on its own panels (summed over the threads)."""
    work = [_inputs() for _ in range(threads)]
    _repeat(*work[0][:3], 1)                                  # compile
    flops = work[0][3]
    reps = max(1, int(seconds * 100e9 / flops))               # about ``seconds`` at 100 GFLOP/s a core
    start = threading.Barrier(threads + 1)
    spans = [0.0] * threads

    def run(i):
        start.wait()
        t0 = time.perf_counter()
        _repeat(*work[i][:3], reps)
        spans[i] = time.perf_counter() - t0

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    for t in pool:
        t.join()
    return sum(flops * reps / s for s in spans) / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="tiles at once for the all-cores figure")
    p.add_argument("--rounds", type=int, default=5, help="rounds of each figure (the median is reported)")
    p.add_argument("--out", default=None, help="write the figures as JSON")
    args = p.parse_args(argv)
    if args.out:
        check_outputs({"--out": args.out})
    one = float(np.median([rate(1) for _ in range(args.rounds)]))
    every = float(np.median([rate(args.threads) for _ in range(args.rounds)]))
    print(f"tile peak: {one:.1f} GFLOP/s on one core, {every:.1f} on {args.threads} at once")
    if args.out:
        write_json(args.out, {"one_core_gflops": one, "all_cores_gflops": every, "threads": args.threads,
                              "rows": ROWS, "k": K, "vector_bytes": microgemm.VECTOR_BYTES,
                              "environment": environment(None), "load_average": load_average()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
