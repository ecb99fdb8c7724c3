"""``rnnkit translate``: train, translate and evaluate; a thin shell over :mod:`rnnkit.translate.api`.

Three forms share the command, told apart by the first word after it::

    rnnkit translate train [PAIRS.tsv] [options] --out MODEL
    rnnkit translate eval MODEL TEST.tsv [options]
    rnnkit translate MODEL ["sentence" ...] [options]      (no sentence: one per line from stdin)

argparse cannot put a free positional (MODEL) beside sub-commands, so the
``translate`` parser dispatches on the first word itself: "train" and "eval"
go to their own parsers, anything else is a model path. (A model file named
"train" or "eval" is reached as ./train.)
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]

USAGE = ("rnnkit translate MODEL [TEXT ...] [--beam B] [--n-best K] [--attention-plot PNG]\n"
         "       rnnkit translate train [PAIRS.tsv] --out MODEL [options]\n"
         "       rnnkit translate eval MODEL TEST.tsv [--beam B]")


def _none_or(type_):
    def convert(s):
        return None if s.lower() == "none" else type_(s)
    convert.__name__ = type_.__name__
    return convert


def _bool(s):
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def _decode_flags(p, max_length=None):
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy decoding)")
    p.add_argument("--length-penalty", type=float, default=0.0,
                   help="alpha of Wu et al. (2016)'s length penalty for the beam (0: plain log probability)")
    p.add_argument("--max-length", type=int, default=max_length,
                   help="longest translation in tokens" + (" (default: the model's)" if max_length is None else ""))


def _train_parser():
    p = argparse.ArgumentParser(prog="rnnkit translate train",
                                description="Train a translator with attention and save it as a model file.")
    p.add_argument("pairs", nargs="?", default=None, metavar="PAIRS.tsv",
                   help="tab-separated sentence pairs (Tatoeba/Anki format); omitted: the built-in task, "
                        "numbers in English words -> French words (needs num2words)")
    p.add_argument("--out", required=True, help="model file to write (.npz)")
    d = p.add_argument_group("data")
    d.add_argument("--src-col", type=int, default=0, help="source column, counted from 0")
    d.add_argument("--tgt-col", type=int, default=1, help="target column, counted from 0")
    d.add_argument("--max-words", type=int, default=None, help="keep pairs whose sides have fewer words")
    d.add_argument("--prefix-filter", choices=["source", "target"], default=None,
                   help="keep pairs whose English side (source or target) starts with 'i am', 'he is', ... "
                        "(the PyTorch tutorial's filter)")
    d.add_argument("--numbers", default="0-999", help="range LOW-HIGH of the built-in task")
    d.add_argument("--valid", type=float, default=0.1, help="validation fraction")
    d.add_argument("--test", type=float, default=0.1, help="test fraction")
    d.add_argument("--split-seed", type=int, default=0)
    d.add_argument("--tokens", choices=["word", "char"], default="word")
    d.add_argument("--normalize", choices=["nfkc", "nfc", "ascii", "none"], default="nfkc")
    d.add_argument("--lowercase", type=_bool, default=True, metavar="BOOL")
    d.add_argument("--split-punctuation", type=_bool, default=True, metavar="BOOL")
    d.add_argument("--min-freq", type=int, default=1)
    d.add_argument("--max-vocab", type=_none_or(int), default=None)
    m = p.add_argument_group("model")
    m.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    m.add_argument("--attention", choices=["bahdanau", "dot", "general"], default="bahdanau")
    m.add_argument("--embedding-size", type=int, default=128)
    m.add_argument("--hidden-size", type=int, default=256)
    m.add_argument("--num-layers", type=int, default=1)
    m.add_argument("--bidirectional", type=_bool, default=True, metavar="BOOL")
    m.add_argument("--input-feeding", action="store_true", help="Luong's input feeding (dot/general)")
    m.add_argument("--attention-size", type=_none_or(int), default=None)
    m.add_argument("--bridge", choices=["linear", "zero"], default="linear")
    m.add_argument("--dropout", type=float, default=0.1)
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=_none_or(int), default=10)
    t.add_argument("--max-steps", type=_none_or(int), default=None)
    t.add_argument("--max-minutes", type=_none_or(float), default=None)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--clip-norm", type=_none_or(float), default=5.0)
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--teacher-forcing", type=float, default=1.0, help="teacher-forcing ratio, decided per batch")
    t.add_argument("--scheduled-sampling", choices=["none", "linear", "exponential", "inverse_sigmoid"],
                   default="none", help="decay of the teacher-forcing probability, decided per token")
    t.add_argument("--ss-k", type=_none_or(float), default=None)
    t.add_argument("--ss-c", type=float, default=1e-4)
    t.add_argument("--ss-floor", type=float, default=0.0)
    t.add_argument("--sampling", choices=["sample", "argmax"], default="sample")
    t.add_argument("--validate-every", type=_none_or(int), default=None)
    t.add_argument("--early-stopping-patience", type=_none_or(int), default=None)
    t.add_argument("--bleu-sentences", type=int, default=300)
    t.add_argument("--random-state", type=int, default=0)
    t.add_argument("--checkpoint-path", default=None)
    t.add_argument("--checkpoint-every", type=_none_or(int), default=None)
    t.add_argument("--resume", action="store_true")
    t.add_argument("--progress", type=_bool, default=True, metavar="BOOL")
    _decode_flags(p, max_length=50)
    p.set_defaults(func=_run_train)
    return p


def _eval_parser():
    p = argparse.ArgumentParser(prog="rnnkit translate eval", description="BLEU and chrF on a test file.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("test", metavar="TEST.tsv")
    p.add_argument("--src-col", type=int, default=None, help="default: the column the model was trained on")
    p.add_argument("--tgt-col", type=int, default=None)
    _decode_flags(p)
    p.set_defaults(func=_run_eval)
    return p


def _translate_parser():
    p = argparse.ArgumentParser(prog="rnnkit translate", usage=USAGE,
                                description="Translate sentences with a trained model (from stdin without TEXT).")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("text", nargs="*", metavar="TEXT")
    p.add_argument("--n-best", type=int, default=1, help="print the K best translations (needs --beam >= K)")
    p.add_argument("--attention-plot", default=None, metavar="PNG",
                   help="write the first sentence's attention heatmap to this PNG")
    _decode_flags(p)
    p.set_defaults(func=_run_translate)
    return p


class _DispatchParser(argparse.ArgumentParser):
    """The ``translate`` parser: hands its arguments to the train, eval or translate parser by the first word."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if not args or args[0] in ("-h", "--help"):
            self.print_help()
            self.exit(0 if args else 2)
        parser = {"train": _train_parser, "eval": _eval_parser}.get(args[0])
        if parser is not None:
            return parser().parse_args(args[1:], namespace), []
        return _translate_parser().parse_args(args, namespace), []

    def format_help(self):
        return (f"usage: {USAGE}\n\nTranslation with attention (sequence to sequence).\n\n"
                "  rnnkit translate train -h    training options\n"
                "  rnnkit translate eval -h     evaluation options\n"
                "  rnnkit translate MODEL -h    translation options\n")


def register(subparsers) -> None:
    p = subparsers.add_parser("translate", help="sequence-to-sequence translation with attention",
                              add_help=False, usage=USAGE)
    # argparse builds sub-parsers with its own class; switching this one to the dispatching subclass
    # (same layout, one method overridden) is what lets MODEL stand where "train"/"eval" could.
    p.__class__ = _DispatchParser


# -- commands -----------------------------------------------------------------
def _kwargs(args, drop=("func", "command")):
    return {k: v for k, v in vars(args).items() if k not in drop}


def _run_train(args) -> int:
    from .api import train
    kw = _kwargs(args)
    summary = train(kw.pop("pairs"), **kw)
    d = summary["data"]
    print(f"data: {d['source']}: {d['read']} pairs read, {d['kept']} kept; "
          f"train {d['train']}, valid {d['valid']}, test {d['test']}")
    print(f"vocabulary: source {summary['vocab']['source']}, target {summary['vocab']['target']} tokens")
    best = summary["best_val_loss"]
    print(f"trained {summary['steps']} steps in {summary['train_seconds']} s (stopped: {summary['stop_reason']})"
          + (f", best validation loss {best:.4f}" if best is not None else ""))
    if "test" in summary:
        t = summary["test"]
        print(f"test ({t['n']} pairs, beam {t['beam']}): BLEU {t['bleu']:.2f}  chrF {t['chrf']:.2f}  "
              f"exact {t['exact']:.1f}%  loss {t['loss']:.4f}")
    print(f"saved {summary['out']}")
    return 0


def _run_eval(args) -> int:
    from .api import evaluate
    r = evaluate(args.model, args.test, src_col=args.src_col, tgt_col=args.tgt_col, beam=args.beam,
                 length_penalty=args.length_penalty, max_length=args.max_length)
    print(f"{r['n']} pairs, beam {r['beam']}: BLEU {r['bleu']:.2f}  chrF {r['chrf']:.2f}  "
          f"exact {r['exact']:.1f}%  loss {r['loss']:.4f}")
    return 0


def _run_translate(args) -> int:
    from .api import load, translate
    from ..errors import DataError
    model = load(args.model)
    if args.text:
        lines = [" ".join(args.text)]
    else:
        lines = [line.rstrip("\r\n") for line in sys.stdin]
    todo = [i for i, s in enumerate(lines) if s.strip()]
    if not todo:
        raise DataError("nothing to translate: give a sentence, or lines on stdin")
    results = translate(model, [lines[i] for i in todo], beam=args.beam, n_best=args.n_best,
                        length_penalty=args.length_penalty, max_length=args.max_length,
                        attention_plot=args.attention_plot)
    by_line = dict(zip(todo, results))
    unknown = []
    for i, line in enumerate(lines):
        if i not in by_line:
            print()                                    # keep the output aligned with the input lines
            continue
        hyps = by_line[i]
        unknown += [w for w in hyps[0].unknown if w not in unknown]
        if args.n_best == 1:
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
