"""Putting an inference output back in the caller's batch order: in place (compiled) against a copy (np.take).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/inference_reorder_ab.py [--out FILE.json]

A padded batch whose lengths are not sorted runs longest first and is put back at the end
(:meth:`rnnkit.nn.recurrent_inputs.RecurrentInputs._caller_order`). Config A (T 64, N 32, I 64, H 256, float32,
lengths uniform in [T/2, T], one of them T), inference, the numba backend. Both ways run in one process in
alternating blocks of 22 calls (the first 2 of each block and the first 2 blocks left out), because what
the copy costs is mostly the fresh pages of a second output-sized array, which depends on what the calls
before it freed: a block shows each way in its own steady state. The copy is forced by making the compiled
permutation refuse (a NumbaError, which `_caller_order` answers with np.take). Medians in ms.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

import numpy as np
from numba.core.errors import NumbaError

import rnnkit.kernels.primitives as primitives
from rnnkit.io.atomic import check_outputs, write_json
from rnnkit.nn import Recurrent

CASES = [("RNN_TANH", 1, False), ("GRU", 1, False), ("LSTM", 1, False), ("RNN_TANH", 2, True), ("GRU", 2, True)]


def _refuse(a, back):
    raise NumbaError("the copy's turn")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="also write the medians as JSON here")
    ap.add_argument("--blocks", type=int, default=24)
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
            times = {"in_place": [], "copy": []}
            for block in range(args.blocks):
                way = ("in_place", "copy")[block % 2]
                primitives.permute_rows_inplace = in_place if way == "in_place" else _refuse
                for j in range(22):
                    t0 = time.perf_counter()
                    layer.forward(x, lengths=lengths, need_cache=False)
                    if j >= 2 and block >= 2:
                        times[way].append(time.perf_counter() - t0)
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
