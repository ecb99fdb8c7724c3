"""A/B timing of two source trees of rnnkit on the NumPy path: is "after" slower than "before"?

Each side runs in its own long-lived worker process that imports rnnkit from its
own tree (``PYTHONPATH=<tree>``). By default "before" is a ``git archive`` export
of ``--before`` (a revision) into a temporary directory and "after" is the tree
this script sits in. For every case both workers build the same layer, input and
upstream gradient (seed 0; :func:`rnnkit.bench.cases.build`), warm up (numba
compiles on the first call), and then take turns: a block of calls on A, a block
on B, then B before A, and so on for several rounds. Load from other processes
on a shared machine then falls on both sides alike; each side's time is the
median of all its calls, and the ratio after/before is the ratio of those medians.
The quartiles of the per-round ratios say how noisy that ratio is.

Cases (float32, 1 thread): the training step (forward + backward down to the
input) and inference (forward, eval) of LSTM, GRU and RNN-tanh at configs A-D
of :data:`rnnkit.bench.cases.CONFIGS`, one unidirectional layer; a 2-layer
bidirectional variable-length LSTM at A; and the char-LM training step of
:mod:`rnnkit.bench.charlm_case` (embedding, 2-layer LSTM, head, cross-entropy,
Adam), each under ``RNNKIT_BACKEND=numba`` and ``numpy``.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/numpy_path_ab.py --before 8016c94 \\
        --after HEAD --out benchmarks/results/numpy_path_ab.json --md benchmarks/results/numpy_path_ab.md

(``--after REV`` exports that revision too, so the checkout may change during the run; without it
"after" is this checkout as it is.)

``--smoke`` times a tiny shape for a fraction of a second per case (a test of the
machinery, not a measurement); ``--only REGEX`` repeats chosen cases.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SMOKE_SHAPE = (8, 4, 8, 16)                                  # (T, N, I, H)
SMOKE_CHARLM = dict(vocab=11, embedding=8, hidden=16, layers=2, T=8, N=4)


# -- the worker: one per (tree, backend), driven by JSON lines on stdin ----------------------------------

def _build(spec: dict):
    import numpy as np

    if spec["kind"] == "charlm":
        from rnnkit.bench.charlm_case import CharLMCase, build_training
        return build_training(CharLMCase(**spec["params"]), None, seed=0)["rnnkit"]
    from rnnkit.bench.cases import Case, build
    T, N, I, H = spec["shape"]
    case = Case(spec["cell"], spec["config"], T, N, I, H, spec["mode"], spec["layers"], spec["bi"], spec["varlen"])
    return build(case, None, dtype=np.float32, seed=0)["rnnkit"]


def worker() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1)             # the protocol's channel; stray prints go to stderr
    os.dup2(2, 1)
    import rnnkit
    from rnnkit.kernels import get_backend
    from rnnkit.threads import set_threads

    threads = set_threads(1)
    out.write(json.dumps({"rnnkit_file": rnnkit.__file__, "backend": get_backend(), "threads": threads}) + "\n")
    fn = None
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["op"] == "prep":
            fn = None
            fn = _build(msg["spec"])
            calls = []
            for _ in range(msg["warmup"]):
                t0 = time.perf_counter()
                fn()
                calls.append(time.perf_counter() - t0)
            out.write(json.dumps({"warmup_s": calls}) + "\n")
        elif msg["op"] == "time":
            s = []
            for _ in range(msg["n"]):
                t0 = time.perf_counter()
                fn()
                s.append(time.perf_counter() - t0)
            out.write(json.dumps({"s": s}) + "\n")
    return 0


class Worker:
    def __init__(self, tree: str, backend: str):
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        env.update(PYTHONPATH=tree, RNNKIT_BACKEND=backend, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"], cwd=tree, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = self._read()
        want = os.path.realpath(os.path.join(tree, "rnnkit"))
        if not os.path.realpath(self.hello["rnnkit_file"]).startswith(want + os.sep):
            self.close()
            raise RuntimeError(f"worker for {tree} imported {self.hello['rnnkit_file']}, not its own tree")

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited (code {self.proc.wait()}); see its stderr above")
        return json.loads(line)

    def ask(self, **msg) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# -- the cases and the interleaved schedule ---------------------------------------------------------------

def cases(smoke: bool):
    from rnnkit.bench.cases import CONFIGS

    shapes = {"Q": SMOKE_SHAPE} if smoke else dict(CONFIGS)
    out = []
    for config, shape in shapes.items():
        for cell in ("lstm", "gru", "rnn"):
            for mode in ("train", "inference"):
                out.append(dict(kind="layer", cell=cell, config=config, shape=list(shape), mode=mode, layers=1,
                                bi=False, varlen=False))
    first = next(iter(shapes))
    for mode in ("train", "inference"):
        out.append(dict(kind="layer", cell="lstm", config=first, shape=list(shapes[first]), mode=mode, layers=2,
                        bi=True, varlen=True))
    out.append(dict(kind="charlm", params=SMOKE_CHARLM if smoke else {}))
    return out


def case_name(spec: dict) -> str:
    if spec["kind"] == "charlm":
        p = spec["params"]
        return "charlm train" + (" (tiny)" if p else " (V65 E64 H256 L2 T64 N32)")
    return (f"{spec['config']} {spec['cell']} {spec['mode']} L{spec['layers']} {'bi' if spec['bi'] else 'uni'}"
            f"{' varlen' if spec['varlen'] else ''}")


def measure(a: Worker, b: Worker, spec: dict, *, case_s: float, block_s: float, warmup: int,
            min_rounds: int, max_rounds: int) -> dict:
    """Warm both sides up, then alternate blocks of calls (A B, B A, ...) for about ``case_s`` seconds."""
    warm = {"before": a.ask(op="prep", spec=spec, warmup=warmup)["warmup_s"],
            "after": b.ask(op="prep", spec=spec, warmup=warmup)["warmup_s"]}
    per_call = max(min(w[-1], statistics.median(w)) for w in warm.values())
    n = max(1, int(block_s / max(per_call, 1e-9)))
    rounds = int(min(max_rounds, max(min_rounds, case_s / (2 * n * max(per_call, 1e-9)))))
    samples = {"before": [], "after": []}
    round_ratio = []
    for r in range(rounds):
        order = (("before", a), ("after", b)) if r % 2 == 0 else (("after", b), ("before", a))
        block = {}
        for side, w in order:
            block[side] = w.ask(op="time", n=n)["s"]
            samples[side] += block[side]
        round_ratio.append(statistics.median(block["after"]) / statistics.median(block["before"]))
    med = {k: 1e3 * statistics.median(v) for k, v in samples.items()}
    low = {k: 1e3 * _quantile(v, 0.2) for k, v in samples.items()}
    q = statistics.quantiles(round_ratio, n=4) if len(round_ratio) >= 2 else [round_ratio[0]] * 3
    return {"before_ms": med["before"], "after_ms": med["after"], "ratio": med["after"] / med["before"],
            "before_q20_ms": low["before"], "after_q20_ms": low["after"], "ratio_q20": low["after"] / low["before"],
            "round_ratio_q1": q[0], "round_ratio_q3": q[2], "rounds": rounds, "calls_per_block": n,
            "first_call_s": {k: v[0] for k, v in warm.items()}}


def _quantile(values, q: float) -> float:
    """The ``q`` quantile (linear interpolation). Calls of a millisecond or two that the scheduler preempts on a
    busy machine take 10+ ms: when that hits a third to a half of them the median jumps between the two modes,
    while the 20th percentile stays on the undisturbed calls."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    i = int(pos)
    return v[i] if i + 1 >= len(v) else v[i] + (pos - i) * (v[i + 1] - v[i])


def export(repo: str, rev: str, into: str) -> str:
    sha = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", rev + "^{commit}"], check=True,
                         capture_output=True, text=True).stdout.strip()
    archive = subprocess.Popen(["git", "-C", repo, "archive", sha], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", into], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {rev} failed")
    return sha


def _git_head(tree: str) -> str:
    done = subprocess.run(["git", "-C", tree, "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", tree, "status", "--porcelain", "--untracked-files=no", "rnnkit"],
                           capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip() or "not a git tree") + (" + uncommitted changes" if dirty else "")


def markdown(rows, summary) -> str:
    lines = ["| case | backend | before ms | after ms | after/before | round ratio q1-q3 | after/before of 20th pct |",
             "|---|---|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['backend']} | {r['before_ms']:.3f} | {r['after_ms']:.3f} | "
                     f"{r['ratio']:.3f} | {r['round_ratio_q1']:.2f}-{r['round_ratio_q3']:.2f} | "
                     f"{r['ratio_q20']:.3f} |")
    lines.append("")
    lines.append(f"median after/before over {summary['cases']} cases: {summary['median_ratio']:.3f}; "
                 f"worst: {summary['worst_case']} ({summary['worst_ratio']:.3f}); "
                 f"best: {summary['best_case']} ({summary['best_ratio']:.3f}); "
                 f"of the 20th percentiles: median {summary['median_ratio_q20']:.3f}, "
                 f"worst {summary['worst_case_q20']} ({summary['worst_ratio_q20']:.3f})")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--before", default="8016c94", help="revision exported as the 'before' tree (git archive)")
    p.add_argument("--before-tree", default=None, help="a directory holding rnnkit/ to use as 'before' instead")
    p.add_argument("--after-tree", default=REPO, help="the 'after' tree (default: this checkout)")
    p.add_argument("--after", default=None, help="a revision exported as the 'after' tree instead (git archive)")
    p.add_argument("--backends", default="numba,numpy")
    p.add_argument("--only", default=None, help="regular expression on the case names: time only those")
    p.add_argument("--case-seconds", type=float, default=6.0, help="timed seconds per case, both sides together")
    p.add_argument("--smoke", action="store_true", help="tiny shapes, a fraction of a second per case")
    p.add_argument("--out", default=None, help="JSON results")
    p.add_argument("--md", default=None, help="the markdown table")
    args = p.parse_args(argv)
    if args.worker:
        return worker()
    sys.path.insert(0, REPO)
    from rnnkit.io.atomic import check_outputs, write_json, write_text

    check_outputs({"--out": args.out, "--md": args.md})
    sched = (dict(case_s=0.05, block_s=0.005, warmup=1, min_rounds=2, max_rounds=4) if args.smoke else
             dict(case_s=args.case_seconds, block_s=0.25, warmup=3, min_rounds=4, max_rounds=40))
    specs = [s for s in cases(args.smoke) if args.only is None or re.search(args.only, case_name(s))]
    started, load0 = time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rnnkit-ab-") as tmp:
        if args.before_tree:
            before_tree, before_id = os.path.abspath(args.before_tree), _git_head(args.before_tree)
        else:
            before_tree = os.path.join(tmp, "before")
            os.mkdir(before_tree)
            before_id = export(REPO, args.before, before_tree)
        if args.after:
            after_tree = os.path.join(tmp, "after")
            os.mkdir(after_tree)
            after_id = export(REPO, args.after, after_tree)
        else:
            after_tree, after_id = os.path.abspath(args.after_tree), _git_head(args.after_tree)
        rows = []
        for backend in args.backends.split(","):
            a, b = Worker(before_tree, backend), Worker(after_tree, backend)
            try:
                for spec in specs:
                    r = dict(case=case_name(spec), backend=backend, spec=spec, **measure(a, b, spec, **sched))
                    rows.append(r)
                    print(f"{r['case']:34s} {backend:5s} before {r['before_ms']:9.3f} ms  after {r['after_ms']:9.3f}"
                          f" ms  {r['ratio']:.3f}  (rounds {r['round_ratio_q1']:.2f}-{r['round_ratio_q3']:.2f})",
                          flush=True)
            finally:
                a.close()
                b.close()
    ratios = [r["ratio"] for r in rows]
    worst, best = max(rows, key=lambda r: r["ratio"]), min(rows, key=lambda r: r["ratio"])
    summary = {"cases": len(rows), "median_ratio": statistics.median(ratios),
               "worst_case": f"{worst['case']} {worst['backend']}", "worst_ratio": worst["ratio"],
               "best_case": f"{best['case']} {best['backend']}", "best_ratio": best["ratio"]}
    worst20 = max(rows, key=lambda r: r["ratio_q20"])
    summary.update(median_ratio_q20=statistics.median(r["ratio_q20"] for r in rows),
                   worst_case_q20=f"{worst20['case']} {worst20['backend']}", worst_ratio_q20=worst20["ratio_q20"])
    table = markdown(rows, summary)
    print(table)
    result = {"before": {"tree": "git archive " + args.before if not args.before_tree else before_tree,
                         "commit": before_id},
              "after": {"tree": "git archive " + args.after if args.after else after_tree, "commit": after_id},
              "smoke": args.smoke, "schedule": sched, "threads": 1, "dtype": "float32",
              "env_unset": ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"],
              "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
              "wall_s": time.time() - started, "load_average_start": list(load0),
              "load_average_end": list(os.getloadavg()), "summary": summary, "rows": rows}
    if args.out:
        write_json(args.out, result, what="--out")
    if args.md:
        write_text(args.md, table, what="--md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
