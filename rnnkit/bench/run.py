"""``run_bench``: time the cases of a suite against PyTorch and collect everything in one JSON-able dict.

For each case both sides run interleaved (see :mod:`rnnkit.bench.timing`) on
the same thread count; the result has, per side, the median and spread of
ms/iteration, tokens/s, GFLOP/s and that as a fraction of the sgemm peak
(measured at the start and again at the end, to show how much the machine
drifted; fractions use the higher of the two). ``speedup`` is torch's median time over rnnkit's: above 1, rnnkit
is faster. Before timing, each case checks that both sides compute the same
thing (largest difference of the outputs, or of the input gradients).
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from ..checks import check_count, check_real, check_seed
from ..io.atomic import check_outputs, write_json
from ..threads import auto_threads, parse_threads
from . import cases as cases_mod
from . import charlm_case, isolated, timing

__all__ = ["run_bench", "format_table"]


def _import_torch(use_torch: bool):
    if not use_torch:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def _max_diff(a, b) -> Optional[float]:
    try:
        a = np.asarray(a.detach().numpy() if hasattr(a, "detach") else a, dtype=np.float64)
        b = np.asarray(b.detach().numpy() if hasattr(b, "detach") else b, dtype=np.float64)
        return float(np.abs(a - b).max())
    except (TypeError, ValueError):
        return None


def _sides(samples: Dict[str, List[float]], tokens: int, flops: float, peak: float) -> Dict[str, dict]:
    out = {}
    for side, secs in samples.items():
        s = timing.summarize(secs)
        sec = s["median_ms"] / 1e3
        s["tokens_per_s"] = tokens / sec
        s["gflops"] = flops / sec / 1e9
        s["peak_fraction"] = s["gflops"] / peak if peak else None
        out[side] = s
    return out


def _speedup(sides: Dict[str, dict], other: str = "torch") -> Optional[float]:
    if other not in sides:
        return None
    return sides[other]["median_ms"] / sides["rnnkit"]["median_ms"]


def run_bench(suite: str = "standard", cells: Sequence[str] = ("lstm", "gru", "rnn"),
              configs: Optional[Sequence[str]] = None, modes: Sequence[str] = ("inference", "train"),
              threads: Union[int, str, None] = "auto", target_seconds: Optional[float] = None,
              use_torch: bool = True, backend: Optional[str] = None, charlm: Optional[bool] = None,
              memory: Optional[bool] = None, compile_times: Optional[bool] = None, dtype: str = "float32",
              random_state: Optional[int] = 0, out=None,
              progress: Optional[Callable[[str], None]] = None, use_onnx: bool = True,
              calls_per_turn: Optional[int] = None) -> dict:
    """Run a suite (see :func:`rnnkit.bench.cases.suite`); returns the JSON-able results.

    ``threads`` (an integer, or "auto"/None: :func:`rnnkit.threads.auto_threads`)
    is used by both sides: NumPy's BLAS, numba and torch. ``charlm``, ``memory``
    and ``compile_times`` (None: on for the standard and full suites, off for
    quick) add the end-to-end character-LM case, the peak memory of a T=1000
    training step and numba's first-call/cached-call times. ``dtype`` ("float32"
    or "float64") applies to the layer cases; those extras run in float32.
    ``random_state`` seeds the weights and inputs (None: fresh entropy). ``calls_per_turn``:
    calls of each side in a row, the first untimed (None: :data:`rnnkit.bench.timing.CALLS_PER_TURN`, 1 with quick). ``out``
    names a file for the results: it is checked before any timing (so a bad path
    costs nothing) and written atomically at the end. ``use_onnx`` adds an
    onnxruntime side to the float32 inference cases (the layer exported to ONNX,
    when the ``onnx`` extra is installed); ``speedup_vs_onnxruntime`` is its
    median time over rnnkit's.
    """
    if out is not None:
        check_outputs({"--out": out}, examples={"--out": "rnnkit-bench.json"}, owns={"--out": (b'{\n  "suite": ',)})
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype (--dtype): expected 'float32' or 'float64', got {dtype!r}")
    threads = parse_threads(threads)
    seed = check_seed("random_state (--random-state)", random_state)
    if seed is None or not isinstance(seed, int):
        seed = int(np.random.default_rng(seed).integers(2 ** 31 - 1))
    if target_seconds is not None:
        target_seconds = check_real("target_seconds (--target-seconds)", target_seconds, low_open=True)
    for name, chosen in (("cells", cells), ("modes", modes), ("configs", configs)):
        if chosen is not None and len(chosen) == 0:
            raise ValueError(f"{name} (--{name}): the list is empty; name at least one, or leave the flag out")
    if calls_per_turn is not None:
        calls_per_turn = check_count("calls_per_turn (--calls-per-turn)", calls_per_turn, low=1)
    quick = suite == "quick"
    target = target_seconds if target_seconds is not None else (0.05 if quick else 1.0)
    turn = calls_per_turn if calls_per_turn is not None else (1 if quick else timing.CALLS_PER_TURN)
    reps = dict(target_s=target, min_reps=3 if quick else 5, calls_per_turn=turn)
    peak_size = dict(n=256 if quick else 2048, reps=2 if quick else 5)
    say = progress or (lambda msg: None)
    case_list = cases_mod.suite(suite, cells, configs, modes)
    torch = _import_torch(use_torch)
    threads = threads or auto_threads()
    from .onnx_side import available as onnx_available
    onnx_threads = None
    t_start = time.time()
    result = {"suite": suite, "dtype": dtype, "threads": timing.set_threads(threads, torch), "target_seconds": target,
              "calls_per_turn": turn, "random_state": seed, "environment": timing.environment(torch),
              "load_average_start": timing.load_average()}
    if use_onnx and onnx_available():
        onnx_threads = result["threads"]["threads"]
        import onnxruntime
        result["environment"]["onnxruntime"] = onnxruntime.__version__
    say(f"sgemm peak ({threads} threads) ...")
    result["sgemm_peak_gflops_start"] = timing.sgemm_peak(torch_module=torch, **peak_size)

    timed = []                                           # (case, check, samples): summarised once the peak is known
    for i, case in enumerate(case_list):
        say(f"[{i + 1}/{len(case_list)}] {case.name}")
        fns = cases_mod.build(case, torch, backend=backend, dtype=np.dtype(dtype), seed=seed,
                              onnx_threads=onnx_threads)
        reference = fns["rnnkit"]()
        check = {side: _max_diff(reference, fns[side]()) for side in ("torch", "onnxruntime") if side in fns}
        timed.append((case, check, timing.interleaved(fns, **reps)))
    lm = None
    if (not quick) if charlm is None else charlm:
        lm = charlm_case.CharLMCase(T=8, N=4, hidden=32, embedding=16, sample_chars=20) if quick else \
            charlm_case.CharLMCase()
        say("char-LM training step ...")
        fns = charlm_case.build_training(lm, torch, seed=seed)
        first_loss = {k: f() for k, f in fns.items()}    # both start from the same weights: the same first loss
        lm_train = timing.interleaved(fns, **reps)
        say("char-LM sampling ...")
        lm_sample = timing.interleaved(charlm_case.build_sampling(lm, torch, seed=seed, onnx_threads=onnx_threads),
                                       **reps)
    if (not quick) if memory is None else memory:
        say("peak memory of a T=1000 LSTM training step (subprocesses) ...")
        result["memory"] = isolated.peak_memory(T=50 if quick else 1000, threads=threads,
                                                frameworks=("rnnkit", "torch") if torch else ("rnnkit",))
    if (not quick) if compile_times is None else compile_times:
        say("numba compile times: empty cache, then cached (subprocesses) ...")
        try:
            result["compile_times"] = isolated.compile_times()
        except RuntimeError as exc:
            result["compile_times"] = {"error": str(exc)}
    result["sgemm_peak_gflops_end"] = timing.sgemm_peak(torch_module=torch, **peak_size)

    # GFLOP/s as a fraction of the higher of the two peak measurements: on a busy machine the lower one
    # mostly measures the other load, and dividing by it would flatter the kernels.
    peak = max(result["sgemm_peak_gflops_start"]["numpy"], result["sgemm_peak_gflops_end"]["numpy"])
    result["peak_gflops_used"] = peak
    result["cases"] = []
    for case, check, samples in timed:
        sides = _sides(samples, case.tokens, case.flops(), peak)
        result["cases"].append({"case": case.as_dict(), "max_abs_diff_vs_torch": check.get("torch"),
                                "max_abs_diff_vs_onnxruntime": check.get("onnxruntime"), "sides": sides,
                                "speedup": _speedup(sides),
                                "speedup_vs_onnxruntime": _speedup(sides, "onnxruntime")})
    if lm is not None:
        sides = _sides(lm_train, lm.T * lm.N, lm.flops(), peak)
        sampling = {side: dict(timing.summarize(secs)) for side, secs in lm_sample.items()}
        for s in sampling.values():
            s["chars_per_s"] = lm.sample_chars / (s["median_ms"] / 1e3)
        result["charlm"] = {
            "train_step": {"config": lm.as_dict(), "first_loss": first_loss, "sides": sides,
                           "speedup": _speedup(sides)},
            "sampling": {"sides": sampling, "speedup": _speedup(sampling),
                         "speedup_vs_onnxruntime": _speedup(sampling, "onnxruntime")}}
    result["load_average_end"] = timing.load_average()
    result["wall_seconds"] = time.time() - t_start
    if out is not None:
        write_json(out, result, what="--out")
    return result


def _fmt_ms(s: dict) -> str:
    return f"{s['median_ms']:9.3f} ±{s['spread_pct']:3.0f}%"


def format_table(result: dict) -> str:
    """The results as a plain-text table (medians; ± is half the interquartile range)."""
    peak = result["sgemm_peak_gflops_start"]
    th = result["threads"]
    threads = (", ".join(f"{k} {v}" for k, v in th.items() if k != "threads" and v is not None)
               if isinstance(th, dict) else th)
    threads = f"{th['threads']} ({threads})" if isinstance(th, dict) and "threads" in th else threads
    lines = [f"rnnkit bench ({result['suite']}, {result['dtype']}): threads {threads}, "
             f"sgemm peak {result['peak_gflops_used']:.0f} GFLOP/s (NumPy; start {peak['numpy']:.0f}"
             + (f", torch {peak['torch']:.0f}" if "torch" in peak else "")
             + f"); load average {result['load_average_start']}",
             f"{'case':34s} {'rnnkit ms':>15s} {'torch ms':>15s} {'speedup':>8s} {'tokens/s':>10s} "
             f"{'GFLOP/s':>8s} {'%peak':>6s} {'torch %peak':>11s} {'onnxrt ms':>15s} {'vs ort':>7s}"]
    for row in result["cases"]:
        r, t = row["sides"]["rnnkit"], row["sides"].get("torch")
        speedup = f"{row['speedup']:.2f}x" if row["speedup"] else "-"
        torch_ms = _fmt_ms(t) if t else "-"
        torch_peak = f"{100 * t['peak_fraction']:.0f}%" if t else "-"
        o = row["sides"].get("onnxruntime")
        vs_ort = f"{row['speedup_vs_onnxruntime']:.2f}x" if row.get("speedup_vs_onnxruntime") else "-"
        lines.append(f"{row['case']['name']:34s} {_fmt_ms(r):>15s} {torch_ms:>15s} {speedup:>8s} "
                     f"{r['tokens_per_s']:10.0f} {r['gflops']:8.1f} {100 * r['peak_fraction']:5.0f}% "
                     f"{torch_peak:>11s} {(_fmt_ms(o) if o else '-'):>15s} {vs_ort:>7s}")
    if "charlm" in result:
        tr, sa = result["charlm"]["train_step"], result["charlm"]["sampling"]
        r, t = tr["sides"]["rnnkit"], tr["sides"].get("torch")
        lines.append(f"{'char-LM training step':34s} {_fmt_ms(r):>15s} {(_fmt_ms(t) if t else '-'):>15s} "
                     f"{(format(tr['speedup'], '.2f') + 'x' if tr['speedup'] else '-'):>8s} "
                     f"{r['tokens_per_s']:10.0f} {r['gflops']:8.1f} {100 * r['peak_fraction']:5.0f}%")
        r, t = sa["sides"]["rnnkit"], sa["sides"].get("torch")
        o = sa["sides"].get("onnxruntime")
        lines.append(f"{'char-LM sampling (chars/s, N=1)':34s} {r['chars_per_s']:15.0f} "
                     f"{(format(t['chars_per_s'], '.0f') if t else '-'):>15s} "
                     f"{(format(sa['speedup'], '.2f') + 'x' if sa['speedup'] else '-'):>8s}"
                     + (f"{'':48s} {o['chars_per_s']:15.0f} {sa['speedup_vs_onnxruntime']:6.2f}x" if o else ""))
    if "memory" in result:
        for fw, m in result["memory"].items():
            lines.append(f"peak memory, LSTM training step T={m['T']} N={m['N']} H={m['H']}: {fw} "
                         f"{m['step_peak_mib']:.0f} MiB" + (f" (NumPy traced {m['tracemalloc_peak_mib']:.0f} MiB)"
                                                           if m.get("tracemalloc_peak_mib") is not None else ""))
    if "compile_times" in result and "error" not in result["compile_times"]:
        ct = result["compile_times"]
        cells = [k for k in ct["first_call_s"] if k in ("lstm", "gru", "rnn")]
        lines.append("numba first call / cached call (s): " + ", ".join(
            f"{k} {ct['first_call_s'][k]:.2f} / {ct['cached_call_s'][k]:.3f}" for k in cells)
            + f"; import+resolve {ct['first_call_s']['import_and_resolve']:.2f} / "
              f"{ct['cached_call_s']['import_and_resolve']:.2f}")
    lines.append(f"sgemm peak at the end: {result['sgemm_peak_gflops_end']['numpy']:.0f} GFLOP/s (%peak uses the "
                 f"higher of start and end); "
                 f"load average {result['load_average_end']}; {result['wall_seconds']:.0f} s")
    return "\n".join(lines)

