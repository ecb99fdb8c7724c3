"""``rnnkit bench``: a thin shell over :func:`rnnkit.bench.run_bench`.

Every flag is the keyword argument of the same name (``--target-seconds`` ->
``target_seconds``, ``--out`` -> ``out``); ``--quick`` is ``--suite quick``
and ``--no-torch`` is ``use_torch=False``. ``--threads`` (added by
:func:`rnnkit.cli.builder.command`) is the thread count of both sides.
"""

from __future__ import annotations

import argparse
import sys

from ..cli.builder import command, none_or
from ..errors import HyperparameterError

__all__ = ["register"]


def _list(text: str):
    return [item.strip() for item in text.split(",") if item.strip()]


def _run(args) -> int:
    from .run import format_table, run_bench

    if args.quick and args.suite not in ("standard", "quick"):        # "standard" is the default: not asked for
        raise HyperparameterError(f"--quick is --suite quick, and --suite {args.suite} asks for another suite; "
                                  "give one of them")
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.progress else None
    result = run_bench(suite="quick" if args.quick else args.suite, cells=args.cells, configs=args.configs,
                       modes=args.modes, threads=args.threads, target_seconds=args.target_seconds,
                       use_torch=args.use_torch, backend=args.backend, charlm=args.charlm, memory=args.memory,
                       compile_times=args.compile_times, dtype=args.dtype, random_state=args.random_state,
                       out=args.out, progress=say, use_onnx=args.use_onnx, calls_per_turn=args.calls_per_turn)
    print(format_table(result))
    if args.out is not None:
        print(f"results: {args.out}")
    return 0


def register(subparsers) -> None:
    p = command(
        subparsers, "bench", help="time rnnkit's RNN/LSTM/GRU against PyTorch on the same work",
        description="Time rnnkit against PyTorch (if installed) on the same shapes, dtype, threads and inputs, "
                    "interleaved; print a table (and with --out write JSON). Configs (T, N, I, H): A=(64,32,64,256), "
                    "B=(100,64,128,512), C=(50,1,65,100), D=(200,16,32,128). --threads is the thread count of "
                    "both sides (NumPy's BLAS, numba and torch).",
        func=_run)
    p.add_argument("--suite", choices=("standard", "full", "quick", "variants"), default="standard",
                   help="standard: every config 1-layer unidirectional, plus 2-layer, bidirectional and "
                        "variable-length variants on A; full: every combination; quick: a tiny smoke test; "
                        "variants: the recurrent variants (projection, peephole, layer norm, variational "
                        "dropout, weight drop, zoneout) against the plain cell on A and D")
    p.add_argument("--quick", action="store_true", help="same as --suite quick (tiny shapes, a few seconds)")
    p.add_argument("--cells", type=_list, default="lstm,gru,rnn", help="comma-separated")
    p.add_argument("--configs", type=_list, default=None, help="comma-separated, default all of A,B,C,D")
    p.add_argument("--modes", type=_list, default="inference,train", help="comma-separated")
    p.add_argument("--target-seconds", type=float, default=None,
                   help="time per case and side (default 1.0; 0.05 with --quick)")
    p.add_argument("--calls-per-turn", type=int, default=None,
                   help="calls of each side in a row, the first untimed, so that the threads the previous side "
                        "leaves spinning (PyTorch's, numba's, onnxruntime's) do not slow the timed ones "
                        "(default 3; 1 with --quick)")
    p.add_argument("--no-torch", dest="use_torch", action="store_false", help="time rnnkit alone")
    p.add_argument("--no-onnx", dest="use_onnx", action="store_false",
                   help="leave out the onnxruntime column (inference cases, the layer exported to ONNX; on by "
                        "default when the onnx extra is installed)")
    p.add_argument("--backend", choices=("auto", "numpy", "numba"), default=None,
                   help="rnnkit backend (default: the global setting / RNNKIT_BACKEND)")
    onoff = dict(action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--charlm", help="end-to-end char-LM training step and sampling (default: on, off with --quick)",
                   **onoff)
    p.add_argument("--memory", help="peak memory of a T=1000 LSTM training step (default: on, off with --quick)",
                   **onoff)
    p.add_argument("--compile-times", help="numba first-call vs cached-call times (default: on, off with --quick)",
                   **onoff)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="dtype of the layer cases")
    p.add_argument("--random-state", type=none_or(int), default=0, metavar="SEED",
                   help="seed of the weights and inputs (none: fresh entropy)")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="also write the results as JSON here (checked before timing, written atomically)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="print each case to stderr as it starts")
