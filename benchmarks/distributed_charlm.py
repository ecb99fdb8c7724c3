r"""Data-parallel character-model training on K = 1 and K = 2 processes, and a projection to K = 4..64.

Trains the character LM (char-rnn's 2x256 LSTM, embedding 64, 100-character chunks, Adam) on the
embedded Python documentation for a fixed number of steps under ``mpiexec -n K`` with one thread per
process, through :func:`rnnkit.train.fit` exactly as ``rnnkit charlm train --distributed`` does, and
reports per K:

- throughput: characters per second of the whole job (steps x seq_len x global batch / seconds);
- the time per step inside the gradient all-reduce (``World.stats``; it includes waiting for the
  slower rank) and a clean all-reduce of the same buffer timed alone after a barrier;
- the bytes each rank contributes to the all-reduce per step (the flat gradient buffer).

Two scalings are measured: *weak* (every process keeps ``--batch-size`` streams, the global batch
grows with K: the usual way to use more machines) and *strong* (the global batch stays
``--batch-size``, split over the K processes).

The projection (printed, and in the README) uses the ring all-reduce cost

.. math::
    t_{ar}(K) = 2\,(K-1)\,\alpha + 2\,\frac{K-1}{K}\,\frac{S}{\beta},

with S the bytes per step, an assumed latency :math:`\alpha` and bandwidth :math:`\beta`
per link, and the measured one-process compute time per step :math:`t_c`:
weak scaling speed-up :math:`K\,t_c/(t_c + t_{ar}(K))`, strong scaling
:math:`t_c/(t_c/K + t_{ar}(K))` (perfect division of the compute, no overlap).

    python benchmarks/distributed_charlm.py --steps 30            # runs the K=1 and K=2 jobs itself
    python benchmarks/distributed_charlm.py --out benchmarks/results/distributed_charlm.json

This is a benchmark, not a test: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

# assumed networks for the projection: (name, latency alpha in s, bandwidth beta in bytes/s)
NETWORKS = [("100 Gb/s InfiniBand (alpha 2 us, beta 10 GB/s)", 2e-6, 10e9),
            ("10 Gb/s Ethernet (alpha 30 us, beta 1.1 GB/s)", 30e-6, 1.1e9)]


def worker(args) -> None:
    """One rank of the job: train, then time a bare all-reduce of the same size; rank 0 writes JSON."""
    from mpi4py import MPI
    from rnnkit import distributed
    from rnnkit.charlm.corpus import default_corpus
    from rnnkit.charlm.data import Vocab
    from rnnkit.charlm.model import CharLM
    from rnnkit.charlm.training import make_batches, make_step_fn
    from rnnkit.optim import Adam
    from rnnkit.train import fit

    w = distributed.init("distributed_charlm.py")
    text = default_corpus()
    vocab = Vocab.from_text(text)
    batch = args.batch_size * (w.size if args.scaling == "weak" else 1)       # the global batch
    model = CharLM(vocab, cell="lstm", hidden_size=args.hidden_size, num_layers=args.num_layers,
                   embedding_size=64, rng=np.random.default_rng([0, 7]))
    opt = Adam(model.parameters(), lr=2e-3)
    stamps = []
    fit(model, opt, make_step_fn(model), make_batches(vocab.encode(text), batch, args.seq_len), seed=0,
        max_steps=args.steps, clip_norm=5.0, progress=False,
        callbacks=[lambda event, info: stamps.append(time.perf_counter()) if event == "step" else None])
    warm = args.warmup
    seconds = stamps[-1] - stamps[warm - 1]                    # steps warm+1 .. steps
    steps = len(stamps) - warm
    reduce_s = w.stats["seconds"] / max(w.stats["calls"], 1)
    bytes_per_step = w.stats["bytes"] / max(w.stats["calls"], 1)
    # a clean all-reduce of the same buffer: communication alone, no waiting for a slower rank
    buf = np.zeros(int(bytes_per_step) // 4, dtype=np.float32)
    clean = []
    for _ in range(20 if w.size > 1 else 0):
        w.comm.Barrier()
        t0 = time.perf_counter()
        w.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        clean.append(time.perf_counter() - t0)
    if w.is_root:
        result = {"K": w.size, "scaling": args.scaling, "global_batch": batch, "seq_len": args.seq_len,
                  "parameters": int(model.num_parameters()), "steps_timed": steps,
                  "seconds_per_step": seconds / steps,
                  "chars_per_s": steps * args.seq_len * batch / seconds,
                  "allreduce_s_per_step": reduce_s if w.size > 1 else 0.0,
                  "clean_allreduce_s": float(np.median(clean)) if clean else 0.0,
                  "bytes_per_step": bytes_per_step if w.size > 1 else 4.0 * (model.num_parameters() + 5)}
        with open(args.worker, "w") as f:
            json.dump(result, f)


def launch(k: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=ROOT)
        cmd = ["mpiexec", "-n", str(k), sys.executable, "-m", "mpi4py", os.path.abspath(__file__), "--worker", out,
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
               "--seq-len", str(args.seq_len), "--hidden-size", str(args.hidden_size),
               "--num-layers", str(args.num_layers), "--scaling", args.scaling]
        subprocess.run(cmd, check=True, env=env)
        with open(out) as f:
            return json.load(f)


def ring_allreduce(k: int, nbytes: float, alpha: float, beta: float) -> float:
    return 2 * (k - 1) * alpha + 2 * (k - 1) / k * nbytes / beta


def project(t_c: float, nbytes: float, batch: int) -> list:
    """Speed-ups at K = 4..64; strong scaling only where the global ``batch`` still gives every rank a stream
    (and it is an upper bound: a small per-rank batch uses the BLAS less well than t_c / K assumes)."""
    rows = []
    for name, alpha, beta in NETWORKS:
        for k in (4, 8, 16, 32, 64):
            t_ar = ring_allreduce(k, nbytes, alpha, beta)
            rows.append({"network": name, "K": k, "allreduce_ms": 1e3 * t_ar,
                         "weak_speedup": k * t_c / (t_c + t_ar),
                         "strong_speedup": t_c / (t_c / k + t_ar) if k <= batch else None})
    return rows


def print_projection(results: list) -> list:
    one = next(r for r in results if r["K"] == 1 and r["scaling"] == results[0]["scaling"])
    t_c, nbytes = one["seconds_per_step"], one["bytes_per_step"]
    rows = project(t_c, nbytes, one["global_batch"])
    print(f"\nprojection from t_c = {t_c:.3f} s/step (K=1, batch {one['global_batch']}), S = {nbytes / 1e6:.2f} MB:")
    for r in rows:
        strong = "  n/a" if r["strong_speedup"] is None else f"{r['strong_speedup']:5.1f}"
        print(f"  {r['network']:48s} K={r['K']:2d}: all-reduce {r['allreduce_ms']:7.2f} ms, "
              f"speed-up weak {r['weak_speedup']:5.1f}, strong {strong}")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3, help="first steps left out of the timing")
    p.add_argument("--batch-size", type=int, default=32, help="streams per process (weak) or in all (strong)")
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--scaling", choices=["weak", "strong", "both"], default="both")
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    p.add_argument("--project", default=None, metavar="JSON", help="only print the projection of a saved --out")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    if args.project:
        with open(args.project) as f:
            print_projection(json.load(f)["results"])
        return
    results = []
    for scaling in (["weak", "strong"] if args.scaling == "both" else [args.scaling]):
        args.scaling = scaling
        for k in (1, 2):
            r = launch(k, args)
            results.append(r)
            print(f"{scaling:6s} K={k}: global batch {r['global_batch']:3d}, {r['seconds_per_step']:.3f} s/step, "
                  f"{r['chars_per_s']:,.0f} chars/s, all-reduce {1e3 * r['allreduce_s_per_step']:.2f} ms/step "
                  f"(alone: {1e3 * r['clean_allreduce_s']:.2f} ms), {r['bytes_per_step'] / 1e6:.2f} MB/step",
                  flush=True)
    rows = print_projection(results)
    if args.out:
        from rnnkit.io.atomic import write_json
        write_json(args.out, {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
                              "cores": os.cpu_count(), "threads_per_process": 1, "results": results,
                              "projection": rows}, what="--out")


if __name__ == "__main__":
    main()
