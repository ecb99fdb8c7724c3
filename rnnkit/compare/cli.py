"""``rnnkit compare TASK``: a thin shell over :func:`rnnkit.compare.compare`; flags are its keywords."""

from __future__ import annotations

import argparse

from ..cli.builder import command, none_or

__all__ = ["register"]


def _list(text: str):   # the same kind of value as `rnnkit bench --cells`
    return [c.strip() for c in text.split(",") if c.strip()]


def _run(args) -> int:
    from .run import compare, format_table

    report = compare(args.task, seq_len=args.seq_len, cells=args.cells, params=args.params, seeds=args.seeds,
                     batch_size=args.batch_size, learning_rate=args.learning_rate,
                     weight_decay=args.weight_decay, clip_norm=args.clip_norm,
                     max_steps=args.max_steps, max_minutes=args.max_minutes, eval_every=args.eval_every,
                     test_size=args.test_size, out=args.out, plot=args.plot, grad_plot=args.grad_plot,
                     progress=args.progress)
    print(format_table(report))
    for what, path in (("results", args.out), ("learning curves", args.plot), ("gradient norms", args.grad_plot)):
        if path is not None:
            print(f"{what}: {path}")
    return 0


def register(subparsers) -> None:
    p = command(subparsers, "compare", help="tanh RNN vs GRU vs LSTM on a long-range task, matched parameters",
                description="Train every cell on one synthetic task (adding, copy, temporal_order) with matched "
                            "parameter counts, several seeds and the same budget; print a table (mean and "
                            "min..max over seeds, ms/step, parameters), optionally write JSON, learning curves "
                            "and the gradient-norm / gate-saturation plot.",
                func=_run)
    p.add_argument("task", metavar="TASK", help="adding, copy or temporal_order")
    p.add_argument("--seq-len", type=int, default=100, help="sequence length T (copy: the delay)")
    p.add_argument("--cells", type=_list, default="lstm,gru,rnn", help="comma-separated cells to compare")
    p.add_argument("--params", type=int, default=5000, help="parameter budget each cell's hidden size is matched to")
    p.add_argument("--seeds", type=int, default=3, help="runs per cell (seeds 0..N-1)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per training step")
    p.add_argument("--learning-rate", type=float, default=1e-2,
                   help="learning rate of Adam (AdamW with --weight-decay)")
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="AdamW's decoupled decay of the weight matrices, not the biases (0 = Adam), as in the train "
                        "commands")
    p.add_argument("--clip-norm", type=none_or(float), default=1.0, help="global gradient-norm clip (none = off)")
    p.add_argument("--max-steps", type=none_or(int), default=1000, help="training steps per run (none = no limit)")
    p.add_argument("--max-minutes", type=none_or(float), default=None, help="minutes per run (none = no limit)")
    p.add_argument("--eval-every", type=int, default=50,
                   help="steps between validation points of the curves (the last step is always one)")
    p.add_argument("--test-size", type=int, default=1000, help="held-out test sequences")
    p.add_argument("--out", default=None, metavar="JSON", help="write every number (curves, diagnostics) here")
    p.add_argument("--plot", default=None, metavar="PNG", help="learning curves vs steps and vs seconds")
    p.add_argument("--grad-plot", default=None, metavar="PNG", help="gradient norm vs t and gate saturation")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="one line per run")
