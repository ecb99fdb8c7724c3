"""Turn the JSON of ``rnnkit bench`` into the Markdown speed table of the README.

The README's numbers come from a quiet machine with all cores, the BLAS core
type left to OpenBLAS's own detection:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m rnnkit bench --out benchmarks/speed.json
    python benchmarks/speed_table.py benchmarks/speed.json

Columns: median ms per iteration of each side, speedup (torch time / rnnkit
time; above 1 rnnkit is faster), rnnkit's tokens/s and its share of the sgemm
peak measured in the same run; when the run had an onnxruntime side (inference
cases, the layer exported with ``rnnkit.io.to_onnx``), its median ms and
rnnkit's speedup over it.
"""

from __future__ import annotations

import json
import sys


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [f"{env['cpu']}, {result['threads']['blas']} threads, {result['dtype']}; NumPy {env['numpy']}, "
             f"numba {env.get('numba_version')}, PyTorch {env.get('torch')}; sgemm peak "
             f"{result['peak_gflops_used']:.0f} GFLOP/s; load average {result['load_average_start']}",
             "",
             "| case | rnnkit ms | PyTorch ms | speedup | rnnkit tokens/s | % of sgemm peak |",
             "|---|---:|---:|---:|---:|---:|"]
    ort = any("onnxruntime" in row["sides"] for row in result["cases"])
    if ort:
        lines[-2] += " onnxruntime ms | vs onnxruntime |"
        lines[-1] += "---:|---:|"
    for row in result["cases"]:
        r, t = row["sides"]["rnnkit"], row["sides"].get("torch")
        lines.append(f"| {row['case']['name']} | {r['median_ms']:.2f} | {t['median_ms']:.2f} | "
                     f"{row['speedup']:.2f}x | {r['tokens_per_s']:,.0f} | {100 * r['peak_fraction']:.0f}% |"
                     if t else f"| {row['case']['name']} | {r['median_ms']:.2f} | - | - | "
                               f"{r['tokens_per_s']:,.0f} | {100 * r['peak_fraction']:.0f}% |")
        if ort:
            o = row["sides"].get("onnxruntime")
            lines[-1] += (f" {o['median_ms']:.2f} | {row['speedup_vs_onnxruntime']:.2f}x |" if o else " | |")
    if "charlm" in result:
        tr, sa = result["charlm"]["train_step"], result["charlm"]["sampling"]
        r, t = tr["sides"]["rnnkit"], tr["sides"].get("torch")
        if t:
            lines.append(f"| char-LM training step (2-layer LSTM, Adam) | {r['median_ms']:.2f} | "
                         f"{t['median_ms']:.2f} | {tr['speedup']:.2f}x | {r['tokens_per_s']:,.0f} | "
                         f"{100 * r['peak_fraction']:.0f}% |" + (" | |" if ort else ""))
            r, t = sa["sides"]["rnnkit"], sa["sides"]["torch"]
            lines.append(f"| char-LM sampling, batch 1 (chars/s) | {r['chars_per_s']:,.0f} | {t['chars_per_s']:,.0f} "
                         f"| {sa['speedup']:.2f}x | | |")
            o = sa["sides"].get("onnxruntime")
            if ort:
                lines[-1] += (f" {o['chars_per_s']:,.0f} | {sa['speedup_vs_onnxruntime']:.2f}x |" if o else " | |")
    if "memory" in result:
        mem = result["memory"]
        m = next(iter(mem.values()))
        lines += ["", f"Peak memory of one LSTM training step, T={m['T']}, N={m['N']}, H={m['H']}: "
                  + ", ".join(f"{fw} {v['step_peak_mib']:.0f} MiB" for fw, v in mem.items()) + "."]
    ct = result.get("compile_times", {})
    if "first_call_s" in ct:
        cells = [c for c in ("lstm", "gru", "rnn") if c in ct["first_call_s"]]
        lines.append("numba compilation, first call / cached (s): " + ", ".join(
            f"{c} {ct['first_call_s'][c]:.1f} / {ct['cached_call_s'][c]:.2f}" for c in cells) + ".")
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else "rnnkit-bench.json") as f:
        print(markdown(json.load(f)))
