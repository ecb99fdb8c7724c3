"""Inference with the batch split by rows, steps shared by unit blocks, one thread, and PyTorch, side by side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/inference_row_split.py \
        --configs A,B,D --threads 2 --repeats 25 --out results/inference_row_split.json

One layer, float32, no variable lengths, each cell (tanh RNN, GRU, LSTM) at the
bench's configs (T, N, D, H). Per repeat the four are timed one after the other
(``rnnkit.bench.timing.interleaved``, the bench's turns of 3 calls with the first
untimed, so one side's spinning worker threads do not slow the next), so a machine
whose speed drifts moves all four; medians are reported, with each rnnkit variant's speed against PyTorch's. ``rows`` and
``one_thread`` run the loops of ``rnnkit.kernels.inference_loops`` (on ranges of rows,
or once), ``units`` the steps shared by ``rnnkit.kernels.inference_threads``; all three
must give identical outputs and final states, which the script checks before timing. Speed is never
asserted in the tests: this is where it is measured.
"""

import argparse
import sys
import time

import numpy as np

import rnnkit
from rnnkit.bench.cases import CONFIGS
from rnnkit.bench.timing import CALLS_PER_TURN, interleaved
from rnnkit.io.atomic import check_outputs, write_json
from rnnkit.kernels import inference
from rnnkit.nn import GRU, LSTM, RNN

NEVER = 1 << 62
VARIANTS = {"rows": (None, None), "units": (NEVER, None), "one_thread": (NEVER, NEVER)}
"""(ROW_MACS, THREADED_MACS) of each variant, None for the library's own setting: rows as ``row_parts``
chooses or never; steps shared as ``thread_parts`` chooses or never."""
DEFAULTS = (inference.ROW_MACS, inference.THREADED_MACS)


def _variant(name):
    rows, steps = VARIANTS[name]
    inference.ROW_MACS = DEFAULTS[0] if rows is None else rows
    inference.THREADED_MACS = DEFAULTS[1] if steps is None else steps


def run(configs, repeats, target_s):
    import torch
    rows = []
    for config in configs:
        T, N, D, H = CONFIGS[config]
        x = np.random.default_rng(0).standard_normal((T, N, D)).astype(np.float32)      # (T, N, D)
        for cell, ours, theirs in (("rnn_tanh", RNN, torch.nn.RNN), ("gru", GRU, torch.nn.GRU),
                                   ("lstm", LSTM, torch.nn.LSTM)):
            model = ours(D, H, dtype=np.float32, rng=0)
            ref = theirs(D, H).eval()
            xt = torch.from_numpy(x)
            outputs = {}
            for name in VARIANTS:
                _variant(name)
                y, state, _ = model.forward(x, need_cache=False)
                outputs[name] = [y] + list(state if isinstance(state, tuple) else (state,))
            if not all(np.array_equal(a, b) for out in outputs.values() for a, b in zip(outputs["one_thread"], out)):
                raise SystemExit(f"{config} {cell}: the variants' outputs differ; the loops are broken")
            def call(name):
                def fn():
                    _variant(name)
                    return model.forward(x, need_cache=False)
                return fn
            fns = {name: call(name) for name in VARIANTS}
            fns["torch"] = lambda: ref(xt)
            with torch.no_grad():
                times = interleaved(fns, min_reps=repeats, max_reps=max(repeats, 200), target_s=target_s,
                                    calls_per_turn=CALLS_PER_TURN)
            med = {name: float(np.median(v)) for name, v in times.items()}
            row = {"config": config, "T": T, "N": N, "D": D, "H": H, "cell": cell,
                   "median_ms": {k: round(v * 1e3, 4) for k, v in med.items()},
                   "speed_vs_torch": {k: round(med["torch"] / med[k], 3) for k in VARIANTS}}
            rows.append(row)
            print(f"{config} {cell:8s} " + "  ".join(f"{k} {v * 1e3:8.3f} ms" for k, v in med.items())
                  + "  | vs torch: " + "  ".join(f"{k} {v:.2f}x" for k, v in row["speed_vs_torch"].items()),
                  flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="A,B,D", help="comma-separated bench configs (default A,B,D)")
    p.add_argument("--threads", type=int, default=2, help="threads for rnnkit and PyTorch alike (default 2)")
    p.add_argument("--repeats", type=int, default=25, help="timed repeats per variant at least (default 25)")
    p.add_argument("--seconds", type=float, default=2.0, help="about how long the slowest side runs per cell (default 2)")
    p.add_argument("--out", default=None, help="JSON results (written atomically)")
    args = p.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown or args.threads < 1 or args.repeats < 1 or not args.seconds > 0:
        print(f"inference_row_split: error: --configs takes {', '.join(CONFIGS)} (got {args.configs}); --threads and "
              f"--repeats are >= 1 and --seconds > 0 (got {args.threads}, {args.repeats}, {args.seconds})",
              file=sys.stderr)
        return 2
    if args.out:
        check_outputs({"--out": args.out})
    import torch
    rnnkit.set_threads(args.threads)
    torch.set_num_threads(args.threads)
    try:
        rows = run(configs, args.repeats, args.seconds)
    finally:
        inference.ROW_MACS, inference.THREADED_MACS = DEFAULTS
    if args.out:
        write_json(args.out, {"threads": args.threads, "repeats": args.repeats, "dtype": "float32",
                              "seconds": args.seconds, "rows": rows}, what="--out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
