"""``rnnkit charlm train|sample|eval``: a thin shell over :mod:`rnnkit.charlm.api`.

The training flags are generated from :class:`~rnnkit.charlm.estimator.CharModel`'s
keywords and docstring (:mod:`rnnkit.cli.builder`): every flag is the keyword
of the same name (``--hidden-size`` -> ``hidden_size``).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import List

from ..cli.builder import (UNSET_BUDGET, add_estimator_flags, add_output_flags, command, estimator_kwargs,
                           subcommands)
from ..train.averaging import describe_averaging
from ..train.history import trained_line
from . import api
from .estimator import CharModel
from .generate import MAX_BEAM, MAX_LENGTH

__all__ = ["register"]


def _train(args, names: List[str]) -> int:
    run = api.train(args.textfile, out=args.out, resume=args.resume, plot=args.plot, encoding=args.encoding,
                    progress=args.progress, **estimator_kwargs(args, names))
    h = run.history
    print(trained_line(h.steps, h.elapsed_s, h.stop_reason))
    if run.model.meta_.get("averaging"):
        print(describe_averaging(run.model.meta_["averaging"]))
    for name, m in (("validation", run.valid), ("test", run.test)):
        if m:
            print(f"{name}: {m['loss']:.4f} nats/char, {m['bits_per_char']:.4f} bits/char, "
                  f"perplexity {_perplexity(m['perplexity'])}")
    print(f"model: {run.model_path}  (checkpoint: {run.checkpoint_path}"
          + (f", loss curve: {run.plot_path})" if run.plot_path else ")"))
    if run.sample:
        print(f"sample (temperature {run.model.temperature}):\n{run.sample}")
    return 0


def _sample(args) -> int:
    out = sys.stdout
    if args.beam is not None:
        text = api.sample(args.model, prime=args.prime, length=args.length, beam=args.beam,
                          temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          random_state=args.random_state)
        out.write(args.prime + text + "\n")
        return 0
    chars = api.sample_stream(args.model, prime=args.prime, length=args.length, temperature=args.temperature,
                              top_k=args.top_k, top_p=args.top_p, random_state=args.random_state)
    out.write(args.prime)
    for ch in chars:
        out.write(ch)
        if ch == "\n":
            out.flush()
    out.write("\n")
    out.flush()
    return 0


def _perplexity(p: float) -> str:
    """exp(loss): three decimals, or three significant digits once it is large (a diverged run's is ~1e300)."""
    return f"{p:.3f}" if p < 1e5 else f"{p:.3g}"


def _eval(args) -> int:
    m = api.evaluate(args.model, args.textfile, batch_size=args.batch_size, seq_len=args.seq_len,
                     encoding=args.encoding)
    left = m["predictable"] - m["chars"]
    print(f"{args.textfile}: {m['chars']:,} characters predicted"
          + (f" of {m['predictable']:,} (the last {'character does' if left == 1 else f'{left:,} do'} not fill "
             f"the {args.batch_size:,} streams of --batch-size: a smaller --batch-size scores more of the text)"
             if left else "") + "\n"
          f"loss {m['loss']:.4f} nats/char  {m['bits_per_char']:.4f} bits/char  "
          f"perplexity {_perplexity(m['perplexity'])}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("charlm", help="character-level language model: train, sample, eval",
                              description="Character-level language model (char-rnn): train on a text file, "
                                          "sample from it, evaluate it.")
    sub = subcommands(p, "charlm_command")

    t = command(sub, "train", help="train on a text file (default: the Python docs shipped with Python)")
    t.add_argument("textfile", nargs="?", default=None, metavar="TEXTFILE",
                   help="text to learn (default: pydoc_data.topics, ~465k characters, trained for "
                        f"{api.QUICK_DEFAULTS['max_minutes']} minutes)")
    add_output_flags(t, out="charlm.npz", out_help="the model file; the checkpoint (NAME.ckpt.npz) and the loss "
                                                  "curve (NAME.loss.png) go beside it",
                     resume=True, progress=True)
    t.add_argument("--plot", default=True, metavar="PNG",
                   help="where to draw the loss curve (default: beside --out, NAME.loss.png)")
    t.add_argument("--no-plot", dest="plot", action="store_const", const=False, help="no loss curve")
    t.add_argument("--encoding", default="utf-8", help="text encoding of TEXTFILE")
    d, q = api.DEFAULTS, api.QUICK_DEFAULTS
    names = add_estimator_flags(
        t, CharModel, exclude=("progress",), title="model and training",
        defaults={"num_layers": None, "learning_rate": None, **UNSET_BUDGET},
        helps={"num_layers": f"stacked recurrent layers (default: {d['num_layers']}; {q['num_layers']} without "
                             "TEXTFILE)",
               "learning_rate": f"learning rate of Adam (AdamW with --weight-decay; default: {d['learning_rate']}; {q['learning_rate']} without "
                                "TEXTFILE)",
               "epochs": f"stop after this many passes over the training text (default: {d['epochs']} with "
                         "TEXTFILE when no other stopping flag is given)",
               "max_minutes": "stop after this many minutes of training (default: "
                              f"{q['max_minutes']} without TEXTFILE when no other stopping flag is given)"})
    t.set_defaults(func=partial(_train, names=names))

    s = command(sub, "sample", help="generate text from a trained model (or a training checkpoint)", func=_sample)
    s.add_argument("model", metavar="MODEL", help="model file, or the checkpoint of a training run")
    s.add_argument("--prime", default="", help="text to start from (printed before the continuation)")
    s.add_argument("--length", type=int, default=500, help=f"characters to generate (at most {MAX_LENGTH:,})")
    s.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    s.add_argument("--top-k", type=int, default=0, help="sample among the k most likely (0 = off)")
    s.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    # the same --random-state as every train command (`none` = fresh entropy), but fresh by default here
    add_estimator_flags(s, CharModel, ["random_state"], defaults={"random_state": None},
                        helps={"random_state": "seed of the sample: the same seed, the same text (default: none "
                                               "= fresh entropy)"})
    s.add_argument("--beam", type=int, default=None, metavar="N",
                   help=f"beam search with N beams, as in `rnnkit translate` (1 = greedy; at most {MAX_BEAM:,}); "
                        "default: none = sample with --temperature, --top-k, --top-p")

    e = command(sub, "eval", help="loss, bits/char and perplexity on a text file", func=_eval)
    e.add_argument("model", metavar="MODEL", help="model file, or the checkpoint of a training run")
    e.add_argument("textfile", metavar="TEXTFILE", help="text to evaluate")
    e.add_argument("--batch-size", type=int, default=1,
                   help="parallel streams, each from a zero state (1 = one exact pass over the whole text; N "
                        "streams of equal length leave up to N-1 characters at the end unscored)")
    e.add_argument("--seq-len", type=int, default=100, help="characters per chunk (does not change the result)")
    e.add_argument("--encoding", default="utf-8", help="text encoding of TEXTFILE")
    for parser in (t, s, e):
        # no abbreviations: rnnkit 0.1's --hidden, --batch, --lr would otherwise pass as --hidden-size, ...
        parser.allow_abbrev = False

