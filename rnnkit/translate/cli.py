"""``rnnkit translate``: train, translate and evaluate; a thin shell over :mod:`rnnkit.translate.api`.

Three forms share the command, told apart by the first word after it::

    rnnkit translate train [PAIRS.tsv] [--out MODEL] [options]
    rnnkit translate eval MODEL TEST.tsv [options]
    rnnkit translate MODEL ["sentence" ...] [options]      (no sentence: one per line from stdin)

argparse cannot put a free positional (MODEL) beside sub-commands, so the
``translate`` parser puts the hidden sub-command name ``:model`` in front of
anything that is not "train" or "eval" (a model file named "train" or "eval"
is reached as ./train). All three are leaf commands of the shared builder
(:mod:`rnnkit.cli.builder`): options may stand before, between or after the
positionals (``rnnkit translate MODEL --beam 2 "sentence"``), and the training
flags are generated from :class:`~rnnkit.translate.translator.Translator`.
MODEL may be a model file or a training checkpoint.
"""

from __future__ import annotations

import difflib
import os
import sys

from ..cli.builder import RnnkitParser, add_estimator_flags, add_output_flags, command, estimator_kwargs, subcommands
from ..cli.formatting import DefaultsHelpFormatter
from ..errors import PathError
from ..train.averaging import describe_averaging
from ..train.history import trained_line
from .default_task import DEFAULT_RANGE
from .translator import Translator

__all__ = ["register", "MODEL_FORM"]

MODEL_FORM = ":model"        # the hidden sub-command of `rnnkit translate MODEL ...`
USAGE = ("rnnkit translate MODEL [TEXT ...] [--beam B] [--n-best K] [--attention-plot PNG]\n"
         "       rnnkit translate train [PAIRS.tsv] [--out MODEL] [options]\n"
         "       rnnkit translate eval MODEL TEST.tsv [--beam B]")


class _TranslateParser(RnnkitParser):
    """The ``translate`` parser: a MODEL in the first place is routed to the hidden ``:model`` command."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if args and args[0] not in ("train", "eval", MODEL_FORM, "-h", "--help"):
            near = difflib.get_close_matches(args[0], ("train", "eval"), n=1, cutoff=0.6)
            if near and not os.path.exists(args[0]):     # a mistyped action, not a missing model file
                self.error(f"{args[0]}: not an action and no such model file; did you mean "
                           f"'rnnkit translate {near[0]}'?")
            args = [MODEL_FORM] + args
        return super().parse_known_args(args, namespace)

    def format_help(self):
        return (f"usage: {USAGE}\n\nTranslation with attention (sequence to sequence).\n\n"
                "  rnnkit translate train -h    training options\n"
                "  rnnkit translate eval -h     evaluation options\n"
                "  rnnkit translate MODEL -h    translation options\n"
                "MODEL is a model file or a training checkpoint.\n")


def _decode_flags(p, max_length: bool = True) -> None:
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy decoding; at most 1000)")
    p.add_argument("--length-penalty", type=float, default=0.0,
                   help="alpha of Wu et al. (2016)'s length penalty for the beam (0: plain log probability)")
    if max_length:
        p.add_argument("--max-length", type=int, default=None,
                       help="longest translation in tokens (default: the model's; at most 10000)")


def _ensemble_flag(p) -> None:
    p.add_argument("--ensemble", nargs="+", action="extend", default=[], metavar="OTHER.npz",
                   help="decode with MODEL and these models together (the mean of their log-probabilities at "
                        "each step); they must share MODEL's vocabularies")


def _columns(p, default) -> None:
    p.add_argument("--src-col", type=int, default=default, help="source column, counted from 0"
                   + ("" if default is not None else " (default: the column the model was trained on)"))
    p.add_argument("--tgt-col", type=int, default=None if default is None else 1, help="target column, counted from 0"
                   + ("" if default is not None else " (default: the column the model was trained on)"))


_TRAIN_ONLY = ("pairs", "out", "resume", "src_col", "tgt_col", "max_words", "prefix_filter", "numbers",
               "validation_fraction", "test_fraction", "split_seed", "beam", "length_penalty")


def register(subparsers) -> None:
    p = subparsers.add_parser("translate", help="sequence-to-sequence translation with attention",
                              formatter_class=DefaultsHelpFormatter)
    # argparse builds sub-parsers with its own class; the subclass (same layout, one method more) is
    # what lets MODEL stand where "train"/"eval" could
    p.__class__ = _TranslateParser
    sub = subcommands(p, "action")
    p.usage = USAGE                     # after add_subparsers, which builds the sub-commands' prog from it

    t = command(sub, "train", help="train a translator with attention and save it as a model file",
                func=_run_train)
    t.add_argument("pairs", nargs="?", default=None, metavar="PAIRS.tsv",
                   help="tab-separated sentence pairs (Tatoeba/Anki format); omitted: the built-in task, "
                        "numbers in English words -> French words (needs num2words)")
    add_output_flags(t, out="translator.npz", resume=True,
                     out_help="model file to write (.npz); the training checkpoint goes beside it (NAME.ckpt.npz)")
    d = t.add_argument_group("data")
    _columns(d, 0)
    d.add_argument("--max-words", type=int, default=None, help="keep pairs whose sides have fewer words")
    d.add_argument("--prefix-filter", choices=["source", "target"], default=None,
                   help="keep pairs whose English side (source or target) starts with 'i am', 'he is', ... "
                        "(the PyTorch tutorial's filter)")
    d.add_argument("--numbers", default=None,
                   help=f"range LOW-HIGH of the built-in task (without PAIRS; default "
                        f"{DEFAULT_RANGE[0]}-{DEFAULT_RANGE[1]})")
    d.add_argument("--validation-fraction", type=float, default=0.05, help="fraction of the pairs held out "
                   "for validation (loss, BLEU, early stopping)")
    d.add_argument("--test-fraction", type=float, default=0.1, help="fraction of the pairs held out for the "
                   "final test scores")
    d.add_argument("--split-seed", type=int, default=0, help="seed of the validation/test split")
    add_estimator_flags(t, Translator, title="model and training", defaults={"progress": True})
    _decode_flags(t, max_length=False)

    e = command(sub, "eval", help="BLEU, chrF and exact-match rate of a model on a test file", func=_run_eval)
    e.add_argument("model", metavar="MODEL", help="model file or training checkpoint")
    e.add_argument("test", metavar="TEST.tsv", help="tab-separated sentence pairs")
    _columns(e, None)
    _decode_flags(e)
    _ensemble_flag(e)

    m = command(sub, MODEL_FORM, help="translate sentences with a trained model (from stdin without TEXT)",
                func=_run_translate)
    m.prog = "rnnkit translate"
    m.add_argument("model", metavar="MODEL", help="model file or training checkpoint")
    m.add_argument("text", nargs="*", metavar="TEXT", help="the sentence (words may be separate arguments)")
    m.add_argument("--n-best", type=int, default=1, help="print the K best translations (needs --beam >= K)")
    m.add_argument("--attention-plot", default=None, metavar="PNG",
                   help="write the first sentence's attention heatmap to this PNG")
    _decode_flags(m)
    _ensemble_flag(m)
    for leaf in (t, e, m):
        leaf.allow_abbrev = False       # `--hidden` must not pass for --hidden-size: one spelling per setting


# -- commands -----------------------------------------------------------------
def _run_train(args) -> int:
    from .api import train
    params = estimator_kwargs(args, Translator._param_names())
    summary = train(args.pairs, **{k: getattr(args, k) for k in _TRAIN_ONLY if k != "pairs"}, **params)
    d = summary["data"]
    g = d["groups"]
    print(f"data: {d['source']}: {d['read']} pairs read, {d['kept']} kept; split by sentence groups (no sentence on "
          f"two sides): train {d['train']} pairs in {g['train']} groups, valid {d['valid']} in {g['valid']}, "
          f"test {d['test']} in {g['test']}")
    print(f"vocabulary: source {summary['vocab']['source']}, target {summary['vocab']['target']} tokens")
    best = summary["best_val_loss"]
    by = "bleu" if args.select_by == "bleu" and args.bleu_sentences else "loss"
    print(trained_line(summary["steps"], summary["train_seconds"], summary["stop_reason"])
          + (f"; kept the model of step {summary['best_step']} (best validation {by}; its validation "
             f"loss {best:.4f})" if best is not None else ""))
    av = summary.get("averaging")
    if av:
        print(describe_averaging(av))
    if "test" in summary:
        t = summary["test"]
        print(f"test ({t['n']} pairs, beam {t['beam']}): BLEU {t['bleu']:.2f}  chrF {t['chrf']:.2f}  "
              f"exact {t['exact']:.1f}%  loss {t['loss']:.4f}")
    print(f"saved {summary['out']}")
    return 0


def _run_eval(args) -> int:
    from .api import evaluate
    r = evaluate(args.model, args.test, src_col=args.src_col, tgt_col=args.tgt_col, beam=args.beam,
                 length_penalty=args.length_penalty, max_length=args.max_length, ensemble=args.ensemble)
    models = f", an ensemble of {r['models']} models" if r["models"] > 1 else ""
    loss = f"  loss {r['loss']:.4f}" if "loss" in r else ""
    print(f"{r['n']} pairs, beam {r['beam']}{models}: BLEU {r['bleu']:.2f}  chrF {r['chrf']:.2f}  "
          f"exact {r['exact']:.1f}%{loss}")
    return 0


def _run_translate(args) -> int:
    from .api import stdin_lines, translate_lines
    if not args.text and args.ensemble and not os.path.exists(args.ensemble[-1]):
        # --ensemble takes every word after it: a sentence written after it lands there, not in TEXT
        raise PathError(f"--ensemble {args.ensemble[-1]}: no such model file; if that is the sentence, write it "
                        f"before --ensemble (rnnkit translate MODEL \"...\" --ensemble OTHER.npz) or end the "
                        f"model list with --")
    # stdin is read (line by line, within the input limit) after the model is loaded
    lines = [" ".join(args.text)] if args.text else stdin_lines()
    rows, unknown = translate_lines(args.model, lines, beam=args.beam, n_best=args.n_best,
                                    length_penalty=args.length_penalty, max_length=args.max_length,
                                    attention_plot=args.attention_plot, ensemble=args.ensemble)
    for hyps in rows:
        if not hyps:
            print()                                    # keep the output aligned with the input lines
        elif args.n_best == 1:
            print(hyps[0].text)
        else:
            for rank, h in enumerate(hyps, 1):
                print(f"{rank}\t{h.score:.4f}\t{h.text}")
    if unknown:
        print(f"rnnkit: note: {len(unknown)} unknown word(s) read as <unk>: "
              + ", ".join(repr(w) for w in unknown[:20]), file=sys.stderr)
    if args.attention_plot:
        print(f"rnnkit: attention plot written to {args.attention_plot}", file=sys.stderr)
    return 0
