"""The inference goals of issue 14, read off ``rnnkit bench`` JSON: which cases reach them, and before/after.

Goals: LSTM inference >= 1.0x PyTorch, GRU and RNN inference >= 2.0x, at configs A-D,
1 and 2 layers, uni- and bidirectional, with and without variable lengths
(``rnnkit bench --suite full --modes inference``).

    python benchmarks/inference_goals.py benchmarks/results/bench-full-inference-2026-12-02-1thread.json
    python benchmarks/inference_goals.py AFTER.json --before BEFORE.json     # a before/after table
    python benchmarks/inference_goals.py RESULT.json --peak 190   # and each missed goal's ceiling

With ``--peak`` (GFLOP/s, e.g. the tile peak of ``benchmarks/inference_profile.py``), the
cases that miss their goal are listed with their *ceiling*: PyTorch's time over the time
of the case's FLOPs at that peak, the speedup rnnkit would have if every multiply-add ran at
the peak and nothing else took time. A goal above the ceiling cannot be reached by a faster loop.
With variable lengths both sides skip the padding (PyTorch packs the batch), so the FLOPs
counted there are the real ones: the bench's lengths, drawn again from its ``random_state``.
The bench's times are wall clock: on a loaded machine they include the time spent waiting for a
core, which inflates the ceiling unless the peak is scaled the same way (the README's ceilings come
from ``inference_profile.py``, which times both sides and the peak in thread CPU time).

Prints Markdown: one row per config and variant, one column per cell (speedup,
marked with a check where the goal is reached), then the count per cell.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

GOAL = {"lstm": 1.0, "gru": 2.0, "rnn": 2.0}


def _variant(case: dict) -> str:
    return (f"L{case['layers']} {'bi' if case['bidirectional'] else 'uni'}"
            + (" varlen" if case["varlen"] else ""))


def _speedups(result: dict) -> dict:
    """{(config, variant): {cell: speedup}} over the inference cases with a PyTorch side."""
    out: dict = {}
    for row in result["cases"]:
        case = row["case"]
        if case["mode"] != "inference" or row.get("speedup") is None or case.get("variant"):
            continue
        out.setdefault((case["config"], _variant(case)), {})[case["cell"]] = row["speedup"]
    return out


def goals_table(result: dict) -> str:
    rows = _speedups(result)
    cells = [c for c in GOAL if any(c in v for v in rows.values())]
    lines = ["| config | variant | " + " | ".join(f"{c.upper()} (goal {GOAL[c]:.1f}x)" for c in cells) + " |",
             "|---|---|" + "---:|" * len(cells)]
    met = {c: [0, 0] for c in cells}
    for (config, variant), by_cell in sorted(rows.items()):
        cols = []
        for c in cells:
            s = by_cell.get(c)
            if s is None:
                cols.append("")
                continue
            ok = s >= GOAL[c]
            met[c][0] += ok
            met[c][1] += 1
            shown = f"{s:.2f}" if ok or round(s, 2) < GOAL[c] else f"{s:.3f}"   # 1.995x is not 2.00x
            cols.append(f"{shown}x" + (" ✓" if ok else ""))
        lines.append(f"| {config} | {variant} | " + " | ".join(cols) + " |")
    lines += ["", "Reached: " + ", ".join(f"{c.upper()} {m[0]} of {m[1]}" for c, m in met.items())]
    return "\n".join(lines)


def real_flops(case: dict, seed: int) -> float:
    """The multiply-adds (x2) of an inference case over the steps its sequences have: the bench's count
    (every padded step) scaled by the mean length over T, the lengths drawn as ``rnnkit.bench.cases.build``
    draws them (after the input, from ``default_rng(seed)``)."""
    from rnnkit.bench import cases
    c = cases.Case(**{k: case[k] for k in ("cell", "config", "T", "N", "I", "H", "mode", "layers", "bidirectional",
                                           "varlen", "variant")})
    rng = np.random.default_rng(seed)
    rng.standard_normal((c.T, c.N, c.I))
    lengths = cases._lengths(c, rng)
    return c.flops() * (1.0 if lengths is None else float(lengths.mean()) / c.T)


def ceilings(result: dict, peak: float) -> str:
    """The missed goals with their ceilings (``peak`` in GFLOP/s), and what the goal asks of the peak:
    the goal times PyTorch's rate (real FLOPs over its median), as a fraction of ``peak``."""
    lines = ["| case | goal | speedup | ceiling at the peak | goal asks (GFLOP/s, of the peak) | rnnkit runs at "
             "| reachable? |", "|---|---:|---:|---:|---:|---:|---|"]
    for row in result["cases"]:
        case = row["case"]
        if case["mode"] != "inference" or row.get("speedup") is None or case.get("variant"):
            continue
        goal = GOAL[case["cell"]]
        if row["speedup"] >= goal:
            continue
        flops = real_flops(case, result["random_state"])
        torch_ms = row["sides"]["torch"]["median_ms"]
        ceiling = torch_ms / (flops / peak / 1e6)
        asks = goal * flops / torch_ms / 1e6                     # GFLOP/s rnnkit would need
        runs = flops / row["sides"]["rnnkit"]["median_ms"] / 1e6  # GFLOP/s it has
        lines.append(f"| {case['config']} {case['cell']} {_variant(case)} | {goal:.1f}x | {row['speedup']:.2f}x | "
                     f"{ceiling:.2f}x | {asks:.0f} ({asks / peak:.0%}) | {runs:.0f} ({runs / peak:.0%}) | "
                     f"{'yes' if ceiling >= goal else 'no'} |")
    return "\n".join(lines)


def before_after(after: dict, before: dict) -> str:
    a, b = _speedups(after), _speedups(before)
    lines = ["| case | before | after |", "|---|---:|---:|"]
    for key in sorted(set(a) & set(b)):
        for cell in GOAL:
            if cell in a[key] and cell in b[key]:
                lines.append(f"| {key[0]} {cell} {key[1]} | {b[key][cell]:.2f}x | {a[key][cell]:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("result", help="JSON written by rnnkit bench --out")
    p.add_argument("--before", default=None, help="an earlier run's JSON: print a before/after table instead")
    p.add_argument("--peak", type=float, default=None, help="GFLOP/s: also list each missed goal's ceiling")
    args = p.parse_args(argv)
    with open(args.result) as f:
        result = json.load(f)
    if args.before:
        with open(args.before) as f:
            print(before_after(result, json.load(f)))
    else:
        print(goals_table(result))
        if args.peak:
            print()
            print(ceilings(result, args.peak))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
