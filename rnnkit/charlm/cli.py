"""``rnnkit charlm train|sample|eval``: a thin shell over :mod:`rnnkit.charlm.api`.

Every flag is the keyword argument of the same name (``--seq-len`` -> ``seq_len``).
"""

from __future__ import annotations

import argparse
import sys

from ..cli.formatting import DefaultsHelpFormatter
from . import api

__all__ = ["register"]


def _train(args) -> int:
    run = api.train(args.textfile, out=args.out, cell=args.cell, hidden=args.hidden, layers=args.layers,
                    embedding=args.embedding, dropout=args.dropout, seq_len=args.seq_len, batch=args.batch,
                    lr=args.lr, lr_decay=args.lr_decay, clip_norm=args.clip_norm, epochs=args.epochs, max_steps=args.max_steps,
                    max_minutes=args.max_minutes, valid_fraction=args.valid_fraction,
                    test_fraction=args.test_fraction, validate_every=args.validate_every,
                    checkpoint_every=args.checkpoint_every, resume=args.resume, seed=args.seed,
                    encoding=args.encoding, sample_length=args.sample_length, temperature=args.temperature,
                    progress=args.progress, plot=args.plot)
    h = run.history
    print(f"trained {h.steps} steps in {h.elapsed_s:.0f} s (stopped: {h.stop_reason})")
    for name, m in (("validation", run.valid), ("test", run.test)):
        if m:
            print(f"{name}: {m['loss']:.4f} nats/char, {m['bits_per_char']:.4f} bits/char, "
                  f"perplexity {m['perplexity']:.3f}")
    print(f"model: {run.model_path}  (checkpoint: {run.checkpoint_path}"
          + (f", loss curve: {run.plot_path})" if run.plot_path else ")"))
    if run.sample:
        print(f"sample (temperature {args.temperature}):\n{run.sample}")
    return 0


def _sample(args) -> int:
    out = sys.stdout
    if args.beam:
        text = api.sample(args.model, prime=args.prime, length=args.length, beam=args.beam)
        out.write(args.prime + text + "\n")
        return 0
    chars = api.sample_stream(args.model, prime=args.prime, length=args.length, temperature=args.temperature,
                              top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    out.write(args.prime)
    for ch in chars:
        out.write(ch)
        if ch == "\n":
            out.flush()
    out.write("\n")
    out.flush()
    return 0


def _eval(args) -> int:
    m = api.evaluate(args.model, args.textfile, batch=args.batch, seq_len=args.seq_len, encoding=args.encoding)
    print(f"{args.textfile}: {m['chars']:,} characters predicted\n"
          f"loss {m['loss']:.4f} nats/char  {m['bits_per_char']:.4f} bits/char  perplexity {m['perplexity']:.3f}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("charlm", help="character-level language model: train, sample, eval",
                              description="Character-level language model (char-rnn): train on a text file, "
                                          "sample from it, evaluate it.")
    sub = p.add_subparsers(dest="charlm_command", metavar="ACTION")
    sub.required = True

    t = sub.add_parser("train", help="train on a text file (default: the Python docs shipped with Python)",
                       formatter_class=DefaultsHelpFormatter)
    t.add_argument("textfile", nargs="?", default=None,
                   help="UTF-8 text to learn (default: pydoc_data.topics, ~465k characters, trained "
                        f"for {api.QUICK_DEFAULTS['max_minutes']} minutes)")
    t.add_argument("--out", default="charlm.npz", help="model file; the checkpoint and loss curve go beside it")
    t.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    t.add_argument("--hidden", type=int, default=256, help="units per recurrent layer")
    t.add_argument("--layers", type=int, default=None,
                   help=f"stacked recurrent layers (default: {api.DEFAULTS['layers']}; "
                        f"{api.QUICK_DEFAULTS['layers']} without TEXTFILE)")
    t.add_argument("--embedding", type=int, default=64, help="character embedding size (0 = one-hot)")
    t.add_argument("--dropout", type=float, default=0.0)
    t.add_argument("--seq-len", type=int, default=100, help="characters per truncated-BPTT chunk")
    t.add_argument("--batch", type=int, default=32, help="parallel streams through the text")
    t.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate (default: {api.DEFAULTS['lr']}; {api.QUICK_DEFAULTS['lr']} without TEXTFILE)")
    t.add_argument("--lr-decay", choices=["none", "cosine"], default="none",
                   help="cosine: anneal the learning rate to lr/20 over the run (needs --epochs or --max-steps)")
    t.add_argument("--clip-norm", type=float, default=5.0, help="clip the global gradient norm")
    t.add_argument("--epochs", type=int, default=None,
                   help=f"default {api.DEFAULTS['epochs']} when no stopping flag is given (with TEXTFILE)")
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--max-minutes", type=float, default=None,
                   help=f"time budget (default {api.QUICK_DEFAULTS['max_minutes']} without TEXTFILE)")
    t.add_argument("--valid-fraction", type=float, default=0.1, help="held-out end of the text")
    t.add_argument("--test-fraction", type=float, default=0.0, help="held-out very end of the text")
    t.add_argument("--validate-every", type=int, default=None,
                   help="steps between validations and samples (besides every epoch's end)")
    t.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint beside --out")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--encoding", default="utf-8", help="text encoding of TEXTFILE")
    t.add_argument("--sample-length", type=int, default=200, help="characters sampled at each validation")
    t.add_argument("--temperature", type=float, default=0.8, help="temperature of those samples")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar or samples")
    t.add_argument("--no-plot", dest="plot", action="store_false", help="no loss-curve PNG")
    t.set_defaults(func=_train)

    s = sub.add_parser("sample", help="generate text from a trained model",
                       formatter_class=DefaultsHelpFormatter)
    s.add_argument("model", help="model file (or a training checkpoint)")
    s.add_argument("--prime", default="", help="text to start from (printed before the continuation)")
    s.add_argument("--length", type=int, default=500, help="characters to generate")
    s.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    s.add_argument("--top-k", type=int, default=0, help="sample among the k most likely (0 = off)")
    s.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    s.add_argument("--seed", type=int, default=None, help="same seed, same text")
    s.add_argument("--beam", type=int, default=0, help="beam search with this many beams (0 = sample)")
    s.set_defaults(func=_sample)

    e = sub.add_parser("eval", help="loss, bits/char and perplexity on a text file",
                       formatter_class=DefaultsHelpFormatter)
    e.add_argument("model", help="model file")
    e.add_argument("textfile", help="text to evaluate")
    e.add_argument("--batch", type=int, default=1, help="parallel streams (1 = exact single pass)")
    e.add_argument("--seq-len", type=int, default=100, help="characters per chunk (does not change the result)")
    e.add_argument("--encoding", default="utf-8")
    e.set_defaults(func=_eval)
