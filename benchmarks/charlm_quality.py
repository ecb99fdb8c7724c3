"""Character-model quality against the clock: rnnkit, or the same model in PyTorch, for the same budget.

Trains a character language model on the first 90% of a text and logs
``(training seconds, validation loss in nats/char)`` on the last 10% every
``--eval-seconds`` of training, so that time-to-loss can be compared side by
side. Validation time is not counted as training time (both sides pause the
clock for it), and both use the same batches, initial weights (copied from
rnnkit's initialisation), Adam, clipping and validation streams.

    python benchmarks/charlm_quality.py --data ../shared/data/tinyshakespeare.txt --max-minutes 10 --cell lstm
    python benchmarks/charlm_quality.py --data ../shared/data/tinyshakespeare.txt --max-minutes 10 --cell lstm --torch
    python benchmarks/charlm_quality.py --compare benchmarks/results/charlm_*.json
    python benchmarks/charlm_quality.py --max-steps 4746 --cell gru --hidden-size 384 --dropout 0.25 --layer-norm --lr-decay cosine

``--max-steps`` counts the budget in training steps instead of minutes (the cosine decay then
follows the steps): on a machine shared with other runs, equal steps are equal work, and each
reading also logs the training CPU time (validation not counted).

Each run writes a JSON result (``--out``, default ``benchmarks/results/charlm_<impl>_<cell>_<minutes>m.json``).
The rnnkit side trains through :func:`rnnkit.train.fit`, exactly as ``rnnkit charlm train`` does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rnnkit.charlm.data import Chunks, Vocab, read_text, split_text, stream_matrix  # noqa: E402
from rnnkit.charlm.model import CharLM  # noqa: E402
from rnnkit.errors import RnnkitError  # noqa: E402
from rnnkit.io.atomic import check_outputs, write_json  # noqa: E402
from rnnkit.charlm.training import evaluate_ids, make_step_fn  # noqa: E402
from rnnkit.optim import Adam, CosineAnnealingLR, TimeCosineLR  # noqa: E402
from rnnkit.train import StopTraining, fit  # noqa: E402


class Clock:
    """Training seconds: wall time minus the time spent validating (and the same for the process's CPU time)."""

    def __init__(self):
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        self.paused = self.cpu_paused = 0.0

    def train_s(self) -> float:
        return time.perf_counter() - self.t0 - self.paused

    def cpu_s(self) -> float:
        """CPU seconds this process spent training: on a machine shared with other runs, a fairer budget
        than the wall clock (it does not count the time the process waited for a core)."""
        return time.process_time() - self.c0 - self.cpu_paused

    def pause(self, fn):
        t, c = time.perf_counter(), time.process_time()
        try:
            return fn()
        finally:
            self.paused += time.perf_counter() - t
            self.cpu_paused += time.process_time() - c


def variant_kw(args) -> dict:
    """The recurrent variants asked for (rnnkit side only; PyTorch has none of them but the projection)."""
    return {k: getattr(args, k) for k in ("proj_size", "variational_dropout", "weight_drop", "zoneout",
                                          "layer_norm", "peephole") if getattr(args, k, 0)}


def lr_now(args, train_s: float) -> float:
    """The learning rate after ``train_s`` training seconds.

    ``--lr-decay none`` keeps ``lr`` constant, so that one run gives honest readings at every
    time on its curve. ``--lr-decay cosine`` anneals it from lr to lr / 20 over the time budget
    (rnnkit's :class:`~rnnkit.optim.TimeCosineLR`, for both libraries), which only suits the
    reading at the end of the budget.
    """
    if args.decay == "none":
        return args.lr
    return TimeCosineLR(args.lr, eta_min=args.lr / 20).lr_at_fraction(train_s / (60.0 * args.minutes))


def lr_at_step(args, step: int) -> float:
    """``lr_now`` with the budget counted in steps (``--max-steps``): cosine from lr to lr / 20 over them."""
    if args.decay == "none":
        return args.lr
    return CosineAnnealingLR(args.lr, T_max=args.max_steps, eta_min=args.lr / 20).lr_at(min(step, args.max_steps))


class ClockSchedule:
    """A fit() schedule that asks the training clock instead of counting steps."""

    def __init__(self, args, clock):
        self.args, self.clock = args, clock

    def lr_at(self, step: int) -> float:
        if self.args.max_steps:
            return lr_at_step(self.args, step)
        return lr_now(self.args, self.clock.train_s())

    def config(self):
        return {"decay": self.args.decay, "lr": self.args.lr, "minutes": self.args.minutes,
                "max_steps": self.args.max_steps}


def run_rnnkit(args, vocab, train_ids, valid_ids, log):
    model = CharLM(vocab, cell=args.cell, hidden_size=args.hidden, num_layers=args.layers,
                   embedding_size=args.embedding, dropout=args.dropout, rng=np.random.default_rng([args.seed, 7]),
                   **variant_kw(args))
    chunks = Chunks(*stream_matrix(train_ids, args.batch), args.seq_len)
    budget = 60.0 * args.minutes
    clock = Clock()
    state = {"next_eval": args.eval_seconds, "chars": 0}
    if args.max_steps:                                   # step budget: validate every eval_steps steps
        state["next_eval"] = args.eval_steps

    def validate():
        return evaluate_ids(model, valid_ids, batch=args.batch, seq_len=args.seq_len)["loss"]

    def on_event(event, info):
        if event != "step":
            return
        state["chars"] += info["units"]
        t = clock.train_s()
        if args.max_steps:
            now, done, every = info["step"], info["step"] >= args.max_steps, args.eval_steps
        else:
            now, done, every = t, t >= budget, args.eval_seconds
        if now >= state["next_eval"] or done:
            log(t, time.perf_counter() - clock.t0, info["step"], state["chars"], clock.pause(validate), clock.cpu_s())
            state["next_eval"] = now + every
        if done:
            raise StopTraining

    log(0.0, 0.0, 0, 0, clock.pause(validate), 0.0)
    clock = Clock()
    fit(model, Adam(model.parameters(), lr=args.lr), make_step_fn(model), lambda e, rng: chunks, seed=args.seed,
        max_steps=10 ** 9, clip_norm=args.clip_norm, callbacks=[on_event], progress=False,  # on_event stops it
        unit="char", schedule=ClockSchedule(args, clock))
    return model


def run_torch(args, vocab, train_ids, valid_ids, log):
    import torch

    ref = CharLM(vocab, cell=args.cell, hidden_size=args.hidden, num_layers=args.layers,
                 embedding_size=args.embedding, dropout=args.dropout, rng=np.random.default_rng([args.seed, 7]))
    V, E, H = len(vocab), args.embedding, args.hidden
    if not E:
        raise SystemExit("--torch needs --embedding > 0")
    torch.manual_seed(args.seed)
    rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[args.cell]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, E)
            self.rnn = rnn_cls(E, H, num_layers=args.layers, dropout=args.dropout if args.layers > 1 else 0.0)
            self.drop = torch.nn.Dropout(args.dropout)
            self.head = torch.nn.Linear(H, V)

        def forward(self, x, state):
            h, state = self.rnn(self.embed(x), state)
            return self.head(self.drop(h)), state

    net = Net()
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ref.state_dict().items()})  # same init
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    x_all, y_all = (torch.from_numpy(a.astype(np.int64)) for a in stream_matrix(train_ids, args.batch))
    xv, yv = (torch.from_numpy(a.astype(np.int64)) for a in stream_matrix(valid_ids, args.batch))
    detach = lambda s: tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach()

    def validate():
        net.eval()
        total, state = 0.0, None
        with torch.no_grad():
            for s in range(0, xv.shape[0], args.seq_len):
                logits, state = net(xv[s: s + args.seq_len], state)
                total += torch.nn.functional.cross_entropy(logits.reshape(-1, V), yv[s: s + args.seq_len].reshape(-1),
                                                           reduction="sum").item()
        net.train()
        return total / yv.numel()

    budget = 60.0 * args.minutes
    log(0.0, 0.0, 0, 0, validate(), 0.0)
    clock, step, chars, next_eval = Clock(), 0, 0, args.eval_seconds
    while True:
        state = None                                         # each epoch restarts the streams
        for s in range(0, x_all.shape[0], args.seq_len):
            x, y = x_all[s: s + args.seq_len], y_all[s: s + args.seq_len]
            logits, state = net(x, state)
            state = detach(state)                           # truncated BPTT
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
            for group in opt.param_groups:
                group["lr"] = lr_now(args, clock.train_s())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), args.clip_norm)
            opt.step()
            step, chars = step + 1, chars + x.numel()
            t = clock.train_s()
            if t >= next_eval or t >= budget:
                log(t, time.perf_counter() - clock.t0, step, chars, clock.pause(validate), clock.cpu_s())
                next_eval = t + args.eval_seconds
            if t >= budget:
                return net


def compare(paths):
    """A markdown table: training minutes each run needed to reach a validation loss ("-": never)."""
    runs = [json.load(open(p)) for p in paths]
    best = min(min(r[4] for r in run["log"]) for run in runs)         # down to the best any run reached
    targets = [t for t in (2.0, 1.8, 1.7, 1.6, 1.55, 1.5, 1.48, 1.46, 1.45, 1.44, 1.42, 1.4)
               if t >= best - 1e-9] or [round(best, 3)]
    print("| run | chars/s | best val loss (at) | final val loss | " + " | ".join(f"to {t}" for t in targets) + " |")
    print("|---|---|---|---|" + "---|" * len(targets))
    for path, run in zip(paths, runs):
        cells = []
        for t in targets:
            hit = next((r[0] for r in run["log"] if r[4] <= t), None)
            cells.append("-" if hit is None else f"{hit / 60:.1f} min")
        c = run["config"]
        name = (f"{run['impl']} {c['cell']} {c['layers']}x{c['hidden']} dropout {c['dropout']:g}"
                f"{', cosine' if c.get('decay', 'none') == 'cosine' else ''}, {c['minutes']:g} min")
        low = min(run["log"], key=lambda r: r[4])
        print(f"| {name} | {run['chars_per_s']:,.0f} | {low[4]:.3f} ({low[0] / 60:.0f} min) | "
              f"{run['final_val_loss']:.3f} | " + " | ".join(cells) + " |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.path.join("..", "shared", "data", "tinyshakespeare.txt"))
    p.add_argument("--max-minutes", dest="minutes", type=float, default=10.0, help="training budget (validation not counted)")
    p.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    p.add_argument("--torch", action="store_true", help="train the same model in PyTorch instead")
    p.add_argument("--hidden-size", dest="hidden", type=int, default=256)
    p.add_argument("--num-layers", dest="layers", type=int, default=2)
    p.add_argument("--embedding-size", dest="embedding", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.0)
    for flag in ("--variational-dropout", "--weight-drop", "--zoneout"):   # rnnkit's recurrent variants
        p.add_argument(flag, type=float, default=0.0, help="rnnkit only (see rnnkit.nn.Recurrent)")
    p.add_argument("--proj-size", type=int, default=0, help="rnnkit only: LSTM projection")
    p.add_argument("--layer-norm", action="store_true", help="rnnkit only: layer-normalised cells")
    p.add_argument("--peephole", action="store_true", help="rnnkit only: peephole LSTM")
    p.add_argument("--max-steps", type=int, default=0, help="a budget of training steps instead of minutes "
                   "(the cosine decay then follows the steps; rnnkit only)")
    p.add_argument("--eval-steps", type=int, default=None, help="steps between validations with --max-steps "
                   "(default: max-steps / 15)")
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--batch-size", dest="batch", type=int, default=32)
    p.add_argument("--learning-rate", dest="lr", type=float, default=2e-3)
    p.add_argument("--lr-decay", dest="decay", choices=["none", "cosine"], default="none",
                   help="learning-rate decay over the time budget (see lr_now)")
    p.add_argument("--clip-norm", type=float, default=5.0)
    p.add_argument("--random-state", dest="seed", type=int, default=0)
    p.add_argument("--eval-seconds", type=float, default=None, help="training seconds between validations "
                   "(default: budget / 20)")
    p.add_argument("--out", dest="json", default=None, help="where to write the result")
    p.add_argument("--compare", nargs="+", metavar="JSON", help="print a time-to-loss table of earlier results")
    args = p.parse_args(argv)
    if args.compare:
        compare(args.compare)
        return 0
    if args.eval_seconds is None:
        args.eval_seconds = max(60.0 * args.minutes / 20, 5.0)
    if args.eval_steps is None:
        args.eval_steps = max(args.max_steps // 15, 1)
    impl = "torch" if args.torch else "rnnkit"
    if args.torch and (variant_kw(args) or args.max_steps):
        sys.exit("charlm_quality: --variational-dropout, --weight-drop, --zoneout, --proj-size, --layer-norm, "
                 "--peephole and --max-steps are rnnkit's; drop them with --torch")
    out = args.json or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                    f"charlm_{impl}_{args.cell}_{args.minutes:g}m.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    try:                                          # before a training of up to an hour, not after it
        check_outputs({"--out": out}, inputs={"--data": args.data}, examples={"--out": "charlm.json"})
    except RnnkitError as e:
        p.error(str(e))

    text = read_text(args.data)
    train_text, valid_text, _ = split_text(text, 0.1)
    vocab = Vocab.from_text(text)
    train_ids, valid_ids = vocab.encode(train_text), vocab.encode(valid_text)
    rows = []

    def log(train_s, wall_s, step, chars, val, cpu_s):
        rows.append([round(train_s, 2), round(wall_s, 2), step, chars, val, round(cpu_s, 2)])
        print(f"{impl:6s} t={train_s:7.1f}s  cpu={cpu_s:7.1f}s  step {step:6d}  val {val:.4f} nats/char "
              f"({val / math.log(2):.3f} bits/char)", flush=True)

    print(f"{impl}: {args.cell} {args.layers}x{args.hidden}, emb {args.embedding}, seq_len {args.seq_len}, "
          f"batch {args.batch}, {f'{args.max_steps} steps' if args.max_steps else f'{args.minutes:g} min'} on {args.data} ({len(train_text):,} train / "
          f"{len(valid_text):,} validation chars, {len(vocab)} distinct)", flush=True)
    (run_torch if args.torch else run_rnnkit)(args, vocab, train_ids, valid_ids, log)
    last = rows[-1]
    info = {"impl": impl, "config": {k: v for k, v in vars(args).items() if k not in ("json", "compare")},
            "data_chars": {"train": len(train_text), "valid": len(valid_text), "vocab": len(vocab)},
            "log_columns": ["train_s", "wall_s", "step", "chars", "val_loss_nats", "train_cpu_s"], "log": rows,
            "final_val_loss": last[4], "final_bits_per_char": last[4] / math.log(2),
            "chars_per_s": last[3] / max(last[0], 1e-9), "steps": last[2], "train_cpu_minutes": last[5] / 60,
            "machine": {"python": platform.python_version(), "numpy": np.__version__, "cpu": platform.processor()
                        or platform.machine(), "cores": os.cpu_count()}}
    if args.torch:
        import torch
        info["machine"].update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    write_json(out, info, what="--out")          # atomic, like every rnnkit output
    print(f"{impl}: {last[2]} steps, {info['chars_per_s']:,.0f} chars/s, final validation {last[4]:.4f} "
          f"nats/char -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
