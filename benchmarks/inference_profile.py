"""Where inference time goes, per config and cell, against PyTorch: the issue-14 profile.

For one layer, one direction, float32, one thread, the weights of the bench's cases:

- ``whole``: :func:`rnnkit.kernels.inference.scan_forward` (what ``Recurrent.forward(need_cache=False)``
  runs per layer and direction);
- ``step product``: the T recurrent products ``h W_hh^T`` alone, on the packed panels;
- ``input product``: the products ``[x_t | 1] [W_ih | b]^T`` alone, over the same blocks of steps;
- ``rest``: whole minus both products (the gates, outputs, packing check, per-call work);
- ``torch``: ``nn.LSTM``/``GRU``/``RNN`` on the same input under ``inference_mode``;
- ``tile peak``: the register tile's rate on panels that stay in L1 (the best either product can do);
- ``ceiling``: torch time / (FLOPs / tile peak), the speedup rnnkit would have if every FLOP ran at
  the tile's peak and nothing else took time: a goal above it cannot be reached by a faster loop.

Times are thread CPU time (``time.thread_time``), medians of interleaved rounds: on a machine shared
with other jobs, wall time also counts the time the thread waits for a core.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 python benchmarks/inference_profile.py \\
        --out benchmarks/results/inference_profile.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

from rnnkit.bench.cases import CONFIGS
from rnnkit.bench.timing import load_average, set_threads
from rnnkit.io.atomic import check_outputs, write_json
from rnnkit.kernels import inference, microgemm

KERNEL = {"lstm": "lstm", "gru": "gru", "rnn": "rnn_tanh"}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


@njit
def _steps(vectors, Wp, h, A, T, k_chunk):
    for _ in range(T):
        microgemm.panel_product(vectors, Wp, h, A, k_chunk, False)


@njit
def _inputs(vectors, Wx, XB, x, lengths, XW, chunks, offsets):
    first = -1
    for t in range(x.shape[0]):
        _, first = inference.step_inputs(vectors, Wx, XB, x, lengths, t, XW, first, chunks, offsets)


def tile_peak(reps: int = 15) -> float:
    """GFLOP/s of the 6-row x 4-vector tile on one 128-row panel chunk (32 KiB, in L1), 36 rows a step."""
    V = microgemm.lanes(np.float32)
    Wp = np.random.default_rng(0).standard_normal((1, 128, 4 * V)).astype(np.float32)
    h = np.ones((36, 128), np.float32)
    A = np.empty((36, 4 * V), np.float32)
    T = 2000
    _steps(4, Wp, h, A, 1, 128)
    best = []
    for _ in range(reps):
        t0 = time.thread_time()
        _steps(4, Wp, h, A, T, 128)
        best.append(time.thread_time() - t0)
    return 2.0 * 36 * 128 * 4 * V * T / float(np.median(best)) / 1e9


def profile(torch, cell: str, config: str, reps: int, peak: float) -> dict:
    T, N, D, H = CONFIGS[config]
    G = GATES[cell]
    kernel = KERNEL[cell]
    rng = np.random.default_rng(0)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](D, H)
    W_ih, W_hh, b_ih, b_hh = (p.detach().numpy().copy() for p in module.parameters())
    x = rng.standard_normal((T, N, D)).astype(np.float32)
    state = tuple(np.zeros((N, H), np.float32) for _ in range(2 if cell == "lstm" else 1))
    b = np.concatenate([b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:]]) if cell == "gru" else b_ih + b_hh
    Wp, Wx, b_p = inference.pack(kernel, W_hh, W_ih, b)
    P = b_p.size
    vectors = Wp.shape[2] * 4 // microgemm.VECTOR_BYTES
    kc = microgemm.k_chunk(vectors, np.float32)
    steps = max(1, min(T, inference.INPUT_ROWS // N, inference.INPUT_BYTES // (N * P * 4)))
    h = np.zeros((N, Wp.shape[1]), np.float32)
    A = np.empty((N, P), np.float32)
    XW = np.empty((steps * N, P), np.float32)
    XB = np.ones((steps * N, D + 1), np.float32)
    xt = torch.from_numpy(x)
    fns = {"whole": lambda: inference.scan_forward(kernel, x, state, W_ih, W_hh, b_ih, b_hh, None, False),
           "step product": lambda: _steps(vectors, Wp, h, A, T, kc),
           "input product": lambda: _inputs(vectors, Wx, XB, x, np.full(N, T, np.int64), XW, (kc, kc, steps),
                                            np.zeros(steps + 1, np.int64)),
           "torch": lambda: module(xt)}
    times = {k: [] for k in fns}
    with torch.inference_mode():
        for f in fns.values():
            f()
        for r in range(reps):
            names = list(fns)
            for i in range(len(names)):
                name = names[(r + i) % len(names)]
                t0 = time.thread_time()
                fns[name]()
                times[name].append(time.thread_time() - t0)
    ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    ms["rest"] = ms["whole"] - ms["step product"] - ms["input product"]
    flops = 2.0 * T * N * G * H * (D + H)
    return {"cell": cell, "config": config, "ms": ms, "speedup": ms["torch"] / ms["whole"],
            "rnnkit_gflops": flops / ms["whole"] / 1e6, "torch_gflops": flops / ms["torch"] / 1e6,
            "ceiling": ms["torch"] / (flops / peak / 1e6)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="JSON results (written atomically)")
    p.add_argument("--cells", default="lstm,gru,rnn")
    p.add_argument("--configs", default="A,B,C,D")
    p.add_argument("--reps", type=int, default=15)
    args = p.parse_args(argv)
    if args.out:
        check_outputs({"--out": args.out}, examples={"--out": "inference_profile.json"})
    import torch
    set_threads(1, torch)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average_start": load_average(),
              "clock": "thread CPU time", "tile_peak_gflops": tile_peak(), "cases": []}
    print(f"tile peak {result['tile_peak_gflops']:.0f} GFLOP/s (thread CPU time)")
    print("| case | whole ms | step product | input product | rest | torch ms | speedup | ceiling |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for config in args.configs.split(","):
        for cell in args.cells.split(","):
            r = profile(torch, cell, config, args.reps, result["tile_peak_gflops"])
            result["cases"].append(r)
            ms = r["ms"]
            share = {k: f"{ms[k]:.2f} ({100 * ms[k] / ms['whole']:.0f}%)" for k in ("step product", "input product",
                                                                                   "rest")}
            print(f"| {config} {cell} | {ms['whole']:.2f} | {share['step product']} | {share['input product']} | "
                  f"{share['rest']} | {ms['torch']:.2f} | {r['speedup']:.2f}x | {r['ceiling']:.2f}x |", flush=True)
    result["load_average_end"] = load_average()
    if args.out:
        write_json(args.out, result, what="--out")
        print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
