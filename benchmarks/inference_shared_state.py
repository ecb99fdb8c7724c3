"""Where a step shared by two threads loses its time: the barrier, or the state crossing between cores.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/inference_shared_state.py 32 256 640

A tanh RNN recurrence ``h_t = tanh(h_{t-1} W^T)`` (N rows, H units, T steps, float32)
with the inference loops' own panel product and vector gates, run five ways, per
step in microseconds (medians of 15 interleaved calls):

- ``one_thread``: all unit blocks on one thread;
- ``shared``: two threads, each its half of the unit blocks, reading the whole of
  h_{t-1} (half of it written by the other core) and meeting at the spinning barrier
  after every step: what :mod:`rnnkit.kernels.inference_threads` does;
- ``private+barrier``: the same work and barrier, but each thread reads its own copy
  of h (the numbers are wrong; the time is that of the work and the barrier alone);
- ``private``: as above without the barrier: the work alone;
- ``shared_no_barrier``: shared h, no barrier (a race; the time only).

On 2026-12-03 (N=32, H=256): one_thread 28, shared 26, private+barrier 18, private
16 us: the state crossing between the cores cost more than the barrier, which is why
a batch split by rows (:mod:`rnnkit.kernels.inference_loops`), where no state
crosses, wins at configs A and D.
"""

import sys
import time

import numba
import numpy as np
from numba import njit, prange

from rnnkit.kernels import spin
from rnnkit.kernels.inference_rows import line_aligned, rnn_gates
from rnnkit.kernels.microgemm import VECTOR_BYTES, k_chunk, panel_product

MODES = ("shared", "private+barrier", "private", "shared_no_barrier")


@njit(inline="always")
def _work(Wp, h_in, A, h_out, b0, b1, kc, Z):
    GV = Wp.shape[2]
    panel_product(4, Wp[b0:b1], h_in, A[:, b0 * GV:b1 * GV], kc, False)      # (N, units) h W^T
    for n in range(h_in.shape[0]):
        rnn_gates(A, Z, h_out, n, b0, b1, GV // 4, 0)


@njit
def one_thread(Wp, h, T, kc):
    N, H = h.shape
    a, b, A = line_aligned(h, N, H), line_aligned(h, N, H), line_aligned(h, N, H)
    a[...] = h
    Z = np.zeros((N, H), h.dtype)
    for _ in range(T):
        _work(Wp, a, A, b, 0, Wp.shape[0], kc, Z)
        a, b = b, a
    return a


@njit(parallel=True)
def two_threads(Wp, h, T, kc, mode):
    N, H = h.shape
    B = Wp.shape[0]
    L = spin.LINE
    a, b = line_aligned(h, N, H), line_aligned(h, N, H)
    a[...] = h
    b[...] = h
    Z = np.zeros((N, H), h.dtype)
    flags = np.zeros(2 * L, np.int64)
    for w in prange(2):
        b0, b1 = (0, B // 2) if w == 0 else (B // 2, B)
        if mode == 1 or mode == 2:                     # private copies of h
            hi, ho = line_aligned(h, N, H), line_aligned(h, N, H)
            hi[...] = h
            ho[...] = h
        else:
            hi, ho = a, b
        A = line_aligned(h, N, H)
        for s in range(T):
            _work(Wp, hi, A, ho, b0, b1, kc, Z)
            if mode <= 1:
                spin.store_release(flags.ctypes.data + w * L * 8, s + 1)
                for q in range(2):
                    spin.wait_for(flags, q, s + 1, False)
            hi, ho = ho, hi
    return a


def main(argv):
    V = VECTOR_BYTES // 4
    GV = 4 * V
    try:
        N, H, T = (int(v) for v in (argv + ["32", "256", "640"][len(argv):])[:3])
    except ValueError:
        N = H = T = 0
    if len(argv) > 3 or N < 1 or T < 1 or H < 2 * GV or H % (2 * GV):
        print(f"inference_shared_state: error: arguments are N H T, whole numbers, N and T >= 1 and H a multiple "
              f"of {2 * GV} (got {' '.join(argv)})", file=sys.stderr)
        return 2
    numba.set_num_threads(2)
    rng = np.random.default_rng(0)
    Wp = (rng.standard_normal((H // GV, H, GV)) * (1.5 / np.sqrt(H))).astype(np.float32)   # no decay to denormals
    h = rng.standard_normal((N, H)).astype(np.float32)
    kc = k_chunk(4, np.float32)
    one_thread(Wp, h, 2, kc)
    for m in range(len(MODES)):
        two_threads(Wp, h, 2, kc, m)
    times = {k: [] for k in ("one_thread",) + MODES}
    for _ in range(15):
        t = time.perf_counter()
        one_thread(Wp, h, T, kc)
        times["one_thread"].append(time.perf_counter() - t)
        for m, name in enumerate(MODES):
            t = time.perf_counter()
            two_threads(Wp, h, T, kc, m)
            times[name].append(time.perf_counter() - t)
    print(f"N={N} H={H} T={T} per step: " + "  ".join(f"{k} {np.median(v) / T * 1e6:.2f} us" for k, v in times.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
