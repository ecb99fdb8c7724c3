"""What each recurrent variant costs per training step, against the plain cell, in the compiled path.

For each config (A, D by default), cell and variant of ``rnnkit.bench.cases.VARIANTS``,
the plain layer's training step (forward + backward, float32) and the variant's are
timed *interleaved* (round robin, one call each per round, medians), so that load from
other processes on a shared machine hits both alike and the ratio stays meaningful.

    python benchmarks/variant_cost.py --threads 1 --out benchmarks/results/variant_cost.json

Prints a table of median milliseconds and the variant / plain ratio (the goal: <= 1.3x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rnnkit.bench import timing  # noqa: E402
from rnnkit.bench.cases import CONFIGS, VARIANTS, Case, build  # noqa: E402
from rnnkit.io.atomic import check_outputs, write_json  # noqa: E402


def _load():
    """The 1-minute load average when a pair is done (the machine is shared), or None where there is none."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="A,D")
    p.add_argument("--cells", default="lstm,gru")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated keys of VARIANTS")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--target-seconds", type=float, default=2.0, help="time per variant pair")
    p.add_argument("--backend", default="numba", choices=("numba", "numpy"))
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.out:
        check_outputs({"--out": args.out})
    threads = timing.set_threads(args.threads)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for config in args.configs.split(","):
        T, N, I, H = CONFIGS[config]
        for cell in args.cells.split(","):
            plain = build(Case(cell, config, T, N, I, H, "train"), backend=args.backend)["rnnkit"]
            for variant, (cells, _) in VARIANTS.items():
                if cell not in cells or variant not in args.variants.split(","):
                    continue
                fn = build(Case(cell, config, T, N, I, H, "train", variant=variant), backend=args.backend)["rnnkit"]
                samples = timing.interleaved({"plain": plain, "variant": fn}, target_s=args.target_seconds)
                ms = {k: 1e3 * statistics.median(v) for k, v in samples.items()}
                rows.append(dict(config=config, cell=cell, variant=variant, plain_ms=ms["plain"],
                                 variant_ms=ms["variant"], ratio=ms["variant"] / ms["plain"], load1=_load()))
                r = rows[-1]
                print(f"{config} {cell:4s} {variant:12s} plain {r['plain_ms']:8.2f} ms  variant {r['variant_ms']:8.2f} ms"
                      f"  {r['ratio']:.2f}x  (load {r['load1']})", flush=True)
    if args.out:
        write_json(args.out, {"threads": threads, "backend": args.backend, "environment": timing.environment(None),
                              "started": started, "ended": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                              "target_seconds": args.target_seconds, "rows": rows}, what="variant costs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
