"""Putting an inference output back in the caller's batch order: in place (compiled) against a copy (np.take).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/inference_reorder_ab.py [--out FILE.json]

A padded batch whose lengths are not sorted runs longest first and is put back at the end
(:meth:`rnnkit.nn.recurrent_inputs.RecurrentInputs._caller_order`). Config A (T 64, N 32, I 64, H 256, float32,
lengths uniform in [T/2, T], one of them T), inference, the numba backend. Both ways run in one process in
turns of 22 calls, round-robin with the order rotated every round (:func:`rnnkit.bench.timing.interleaved`; the
first call of each turn and 44 warm-up calls of each way left out), because what
the copy costs is mostly the fresh pages of a second output-sized array, which depends on what the calls
before it freed: a turn shows each way in its own steady state. The copy is forced by making the compiled
permutation refuse (a NumbaError, which `_caller_order` answers with np.take). Medians in ms.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import sys

import numpy as np
from numba.core.errors import NumbaError

import rnnkit.kernels.primitives as primitives
from rnnkit.bench.timing import interleaved
from rnnkit.io.atomic import check_outputs, write_json
from rnnkit.nn import Recurrent

CALLS = 22
"""Calls in a row of one way (its turn); the first of each turn is untimed."""

CASES = [("RNN_TANH", 1, False), ("GRU", 1, False), ("LSTM", 1, False), ("RNN_TANH", 2, True), ("GRU", 2, True)]


def _refuse(a, back):
    raise NumbaError("the copy's turn")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="also write the medians as JSON here")
    ap.add_argument("--turns", type=int, default=12, help="turns of %d calls each way (default 12)" % CALLS)
    args = ap.parse_args(argv)
    if args.out:
        check_outputs({"--out": args.out})
    in_place = primitives.permute_rows_inplace
    rng = np.random.default_rng(0)
    T, N, I, H = 64, 32, 64, 256
    rows = []
    try:
        for cell, layers, bi in CASES:
            layer = Recurrent(cell, I, H, layers, bidirectional=bi, dtype=np.float32, rng=0, backend="numba").eval()
            x = rng.standard_normal((T, N, I)).astype(np.float32)                 # (T, N, I)
            lengths = rng.integers(T // 2, T + 1, size=N)
            lengths[0] = T

            def run(way, layer=layer, x=x, lengths=lengths):
                primitives.permute_rows_inplace = in_place if way == "in_place" else _refuse
                layer.forward(x, lengths=lengths, need_cache=False)

            times = interleaved({way: functools.partial(run, way) for way in ("in_place", "copy")},
                                warmup=2 * CALLS, min_reps=args.turns * (CALLS - 1), max_reps=args.turns * (CALLS - 1),
                                calls_per_turn=CALLS)
            row = {"cell": cell, "layers": layers, "bidirectional": bi,
                   **{f"{k}_ms": 1e3 * float(np.median(v)) for k, v in times.items()}}
            rows.append(row)
            print(f"{cell:9s} L{layers} {'bi ' if bi else 'uni'}  in place {row['in_place_ms']:7.3f} ms   "
                  f"copy {row['copy_ms']:7.3f} ms   copy / in place {row['copy_ms'] / row['in_place_ms']:.2f}")
    finally:
        primitives.permute_rows_inplace = in_place
    if args.out:
        write_json(args.out, {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                              "shape": {"T": T, "N": N, "I": I, "H": H}, "dtype": "float32", "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
