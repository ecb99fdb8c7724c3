"""Where a recurrent step's time goes on CuPy: the host-side cost of each call the scanner makes per step.

    python benchmarks/gpu_step_overhead.py [--out benchmarks/results/gpu_step_overhead.json] [--device cuda]

At config A (T 64, N 32, I 64, H 256, float32) each piece of one step is called 2,000 times in a row: an
index of the input products, the recurrent product ``h @ W_hh.T`` (cuBLAS), the fused LSTM kernel with its
seven outputs, the copy of h into the output sequence, a one-line ElementwiseKernel and an allocating
``+``. Each is timed twice: until the last call returns on the host ("issue"), and until the GPU has
finished them all; when the two agree, the GPU waits on the host and the step costs what Python and CuPy
take to launch it. Then whole layers (LSTM, GRU, RNN-tanh; inference and a training step) divided by T.
Results go to a JSON file (atomic writer) and a table on stdout; without CuPy or a GPU the script exits
with one line, status 2.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import numpy as np

from rnnkit.errors import RnnkitError
from rnnkit.io.atomic import check_outputs, write_json
from rnnkit.nn.xp import resolve_device

T, N, I, H = 64, 32, 64, 256


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("benchmarks", "results", "gpu_step_overhead.json"))
    ap.add_argument("--device", default="cuda", help="cuda or cuda:K")
    args = ap.parse_args(argv)
    try:
        check_outputs({"--out": args.out})
        if not args.device.startswith("cuda"):
            raise RnnkitError(f"--device {args.device}: this probe times CuPy calls; give cuda or cuda:K")
        cp, dev = resolve_device(args.device)
    except RnnkitError as e:
        print(f"gpu_step_overhead: {str(e).replace(', or use --device cpu', '')}", file=sys.stderr)
        return 2
    from rnnkit.kernels import cupy_cells
    from rnnkit.nn import Recurrent

    rng = np.random.default_rng(0)
    f32 = cp.float32
    results = {}

    def per_call(name, fn, reps=2000, per=1):
        """Time ``reps`` calls of ``fn`` (after a warm-up) until issued and until the GPU is done, per ``per``."""
        for _ in range(min(reps, 50)):
            fn()
        dev.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        issued = time.perf_counter() - t0
        dev.synchronize()
        done = time.perf_counter() - t0
        results[name] = {"issue_us": 1e6 * issued / reps / per, "with_gpu_us": 1e6 * done / reps / per}
        print(f"{name:36s} issue {results[name]['issue_us']:7.1f} us   until the GPU is done "
              f"{results[name]['with_gpu_us']:7.1f} us")

    with dev:
        XW = cp.asarray(rng.standard_normal((T, N, 4 * H)), dtype=f32)      # (T, N, 4H)
        W = cp.asarray(rng.standard_normal((4 * H, H)) * 0.05, dtype=f32)   # (4H, H)
        WT = W.T
        h = cp.asarray(rng.standard_normal((N, H)), dtype=f32)              # (N, H)
        c = cp.asarray(rng.standard_normal((N, H)), dtype=f32)              # (N, H)
        y = cp.empty((T, N, H), dtype=f32)                                  # (T, N, H)
        per_call("view XW[t]", lambda: XW[5, ...])
        per_call("cp.empty((N, H))", lambda: cp.empty((N, H), dtype=f32))
        per_call("matmul h @ W_hh.T", lambda: h @ WT)
        hw = h @ WT
        per_call("fused_step lstm (7 outputs)", lambda: cupy_cells.fused_step("lstm", XW[5], hw, (h, c)))
        per_call("setitem y[t] = h", lambda: y.__setitem__(5, h))
        copy = cp.ElementwiseKernel("T a", "T b", "b = a;", "rnnkit_probe_copy")
        per_call("one-line ElementwiseKernel", lambda: copy(h, y[5]))
        per_call("h + c (allocating)", lambda: h + c)
        for mode in ("LSTM", "GRU", "RNN_TANH"):
            layer = Recurrent(mode, I, H, 1, dtype=np.float32, rng=0).to(dev)
            x = cp.asarray(rng.standard_normal((T, N, I)), dtype=f32)       # (T, N, I)
            dy = cp.asarray(rng.standard_normal((T, N, H)), dtype=f32)      # (T, N, H)

            def train():
                _, _, cache = layer.forward(x)
                layer.backward(dy, cache)
            per_call(f"{mode} inference, per step", lambda: layer.forward(x, need_cache=False), reps=30, per=T)
            per_call(f"{mode} training step, per step", train, reps=30, per=T)
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    gpu = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    write_json(args.out, {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                          "device": gpu, "cupy": cp.__version__, "shape": {"T": T, "N": N, "I": I, "H": H},
                          "dtype": "float32", "results": results})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
