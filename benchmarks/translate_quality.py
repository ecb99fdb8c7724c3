"""Translation quality on Tatoeba French -> English (the PyTorch seq2seq tutorial's subset).

Data: ``../shared/data/fra-eng.txt`` (English<TAB>French), French as the source,
pairs under 10 words whose English side starts with "i am", "he is", "she is",
"you are", "we are", "they are" or their contractions (about 11,850 pairs).
The split is leak-free: whole sentence groups (pairs sharing a normalised
source or target sentence, directly or through other pairs) go to one side;
10% of the pairs are the test side (seed 0), 5% validate (the kept model,
validation BLEU), the rest trains.

Configurations: ``recipe`` (the Translator's defaults, what ``rnnkit translate
train`` runs) and the older grid, attention {Bahdanau, Luong general} x
{teacher forcing, scheduled sampling (inverse sigmoid, per token)}. Each trained
model is scored on the test side with greedy decoding and with beam search
(sacrebleu corpus BLEU and chrF on lowercased, punctuation-split text).
Training time is wall-clock and CPU time, with one BLAS thread.

    python benchmarks/translate_quality.py --select-decoding    # the recipe, ~10 min of one core
    python benchmarks/translate_quality.py --smoke              # a 1-minute check that everything runs
    python benchmarks/translate_quality.py --select-decoding --set tie_embeddings=false --set average_checkpoints=5 \
        --save-dir runs/tr --out benchmarks/results/translate_averaging.json    # averaging on the untied recipe
    python benchmarks/translate_quality.py --select-decoding --configs tied --max-minutes 90 \
        --save-dir runs/tr --out benchmarks/results/translate_tied.json     # weight tying (now the recipe itself)
    python benchmarks/translate_quality.py --select-decoding --ensemble runs/tr/fra-eng-recipe.npz \
        runs/tr/fra-eng-tied.npz --out benchmarks/results/translate_ensemble.json   # their ensemble
    python benchmarks/translate_quality.py --configs bahdanau,luong+ss --max-minutes 8 --epochs 30 \
        --dropout 0.2 --early-stopping-patience 4 --bleu-sentences 200 \
        --set lr_decay=none --set label_smoothing=0 --set select_by=loss \
        --set tie_embeddings=false --set average_checkpoints=0              # the older grid
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rnnkit.errors import PathError  # noqa: E402
from rnnkit.io.atomic import check_outputs, write_json  # noqa: E402
from rnnkit.translate.api import prepare_pairs  # noqa: E402
from rnnkit.translate.data import TextOptions, disjoint_from, sentence_groups, split_indices  # noqa: E402
from rnnkit.translate.translator import Translator  # noqa: E402

CONFIGS = {
    # the Translator's defaults (rnnkit translate train): Luong general attention, scheduled sampling,
    # dropout 0.3, label smoothing 0.1, a cosine over 30 epochs, weight tying (since 2026-12-02), the
    # best-validation-BLEU model kept, or the average of the 5 best when it validates better
    "recipe": dict(),
    "tied": dict(tie_embeddings=True, input_feeding=False),   # the recipe of the morning of 2026-12-02
    "feed": dict(input_feeding=True),           # Luong's input feeding: the default recipe since 2026-12-02
    "bahdanau": dict(attention="bahdanau", scheduled_sampling="none"),
    "bahdanau+ss": dict(attention="bahdanau", scheduled_sampling="inverse_sigmoid"),
    "luong": dict(attention="general", scheduled_sampling="none"),
    "luong+ss": dict(attention="general", scheduled_sampling="inverse_sigmoid"),
    "luong-feed": dict(attention="general", scheduled_sampling="none", input_feeding=True),
}
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "fra-eng.txt")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--configs", default="recipe",
                   help=f"comma-separated, from {sorted(CONFIGS)}")
    p.add_argument("--max-minutes", dest="minutes", type=float, default=30.0,
                   help="training budget per configuration (a cap: the recipe's 30 epochs take about 14 minutes of "
                        "one core)")
    p.add_argument("--epochs", type=int, default=30, help="epoch budget per configuration")
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--embedding-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", dest="lr", type=float, default=2e-3)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--ss-k", type=float, default=500.0,
                   help="inverse-sigmoid k: the teacher-forcing probability is 0.5 at step k ln k")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--length-penalty", type=float, default=0.6)
    p.add_argument("--early-stopping-patience", dest="patience", type=int, default=None,
                   help="early stopping: validations without improvement (default: none)")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads")
    p.add_argument("--random-state", dest="seed", type=int, default=0)
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                   help="any other Translator setting, e.g. --set label_smoothing=0.1 --set lr_decay=cosine "
                        "(values read as JSON where they parse, else as text); repeatable")
    p.add_argument("--bleu-sentences", type=int, default=600, help="validation sentences translated for BLEU")
    p.add_argument("--select-decoding", action="store_true",
                   help="choose the beam size and length penalty on the validation pairs (beam 5 and 10, "
                        "alpha 0, 0.6, 1.0) and report the test scores with that choice too")
    p.add_argument("--extra-pairs", action="store_true",
                   help="also train on the file's other pairs under 10 words (outside the six English prefixes), "
                        "minus every pair sharing a normalised sentence with the validation or test side: "
                        "the same test side, about 10x the training data")
    p.add_argument("--oversample", type=int, default=1, metavar="K",
                   help="with --extra-pairs: the prefix subset's training pairs K times in each epoch, so the "
                        "in-domain pairs are not drowned by the 10x larger general set")
    p.add_argument("--smoke", action="store_true", help="600 pairs, tiny model, seconds per configuration")
    p.add_argument("--out", dest="json", default=None, help="write the results here")
    p.add_argument("--save-dir", default=None, help="save each trained model here")
    p.add_argument("--ensemble", nargs="+", default=None, metavar="MODEL.npz",
                   help="train nothing: score these saved models (trained on this split) decoding together, "
                        "greedy and beam, with --select-decoding as for one model")
    args = p.parse_args(argv)
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {unknown}; choose from {sorted(CONFIGS)}")
    if not os.path.exists(args.data):
        p.error(f"{args.data} not found: pass --data PATH to fra-eng.txt (English<TAB>French)")
    # every output checked before the first step of work (a model saved after 14 minutes must not fail then)
    if args.save_dir:
        os.makedirs(args.save_dir, exist_ok=True)
    models = {f"--save-dir ({n})": os.path.join(args.save_dir, f"fra-eng-{n}.npz") for n in names} \
        if args.save_dir and not args.ensemble else {}
    try:
        check_outputs({"--out": args.json, **models},
                      inputs={"--data": args.data, **{f"--ensemble {m}": m for m in args.ensemble or []}})
    except PathError as e:
        p.error(str(e))

    data, info = prepare_pairs(args.data, src_col=1, tgt_col=0, max_words=10, prefix_filter="target")
    # held out means unseen: pairs sharing a normalised source or target sentence stay on one side (issue 15);
    # a pair-by-pair split put 57% of the test references into training
    groups = sentence_groups(data, TextOptions())
    i_train, i_valid, i_test = split_indices(len(data), valid=0.05, test=0.1, seed=args.seed, groups=groups)
    if args.smoke:
        i_train, i_valid, i_test = i_train[:500], i_valid[:50], i_test[:50]
        args.minutes, args.epochs, args.hidden_size, args.embedding_size = 0.25, 2, 32, 16
    pick = lambda idx: [data[i] for i in idx]
    train, valid, test = pick(i_train), pick(i_valid), pick(i_test)
    if args.extra_pairs:
        everything, _ = prepare_pairs(args.data, src_col=1, tgt_col=0, max_words=10, prefix_filter=None)
        subset = set(data)
        others = [pr for pr in everything if pr not in subset]
        extra = disjoint_from(others, valid + test, TextOptions())
        print(f"--extra-pairs: {len(others)} pairs outside the prefix subset, {len(extra)} kept after dropping "
              f"those sharing a sentence with the validation or test side", flush=True)
        if args.smoke:
            extra = extra[:500]
        train = train * args.oversample + extra
    print(f"{info['source']}: {info['read']} pairs read, {info['kept']} kept by the filters; "
          f"train {len(train)}, valid {len(valid)}, test {len(test)} "
          f"(split by {len(set(groups.tolist()))} sentence groups: no sentence on two sides)", flush=True)

    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(args.threads)
    except ImportError:  # pragma: no cover
        limit = None
        print("threadpoolctl is missing: set OMP_NUM_THREADS=1 for comparable timings", flush=True)

    if args.ensemble:
        return _run_ensemble(args, info, train, valid, test, limit)
    extra = dict(_setting(s) for s in args.settings)
    results = []
    for name in names:
        settings = dict(cell="lstm", embedding_size=args.embedding_size, hidden_size=args.hidden_size,
                        bidirectional=True, dropout=args.dropout, batch_size=args.batch_size, learning_rate=args.lr,
                        clip_norm=5.0, epochs=args.epochs, max_minutes=args.minutes,
                        early_stopping_patience=args.patience, validate_every=None,
                        bleu_sentences=args.bleu_sentences, ss_k=args.ss_k, random_state=args.seed, progress=False)
        settings.update(CONFIGS[name])
        settings.update(extra)
        tr = Translator(**settings)
        print(f"\n== {name}: {CONFIGS[name]}", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        tr.fit(train, valid)
        train_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        h = tr.history_
        row = {"config": name, "settings": settings, "train_seconds": round(train_s, 1),
               "train_cpu_seconds": round(cpu_s, 1), "steps": h.steps,
               "epochs": len(h.epochs), "stop_reason": h.stop_reason, "best_val_loss": h.best_val_loss,
               "val_bleu": [m.get("bleu") for _, m in h.val]}
        row.update(_scores(tr, valid, test, args))
        if getattr(tr, "averaging_", None) is not None:
            # checkpoint averaging: score the candidate that was not kept too (both are saved)
            row["averaging"] = tr.averaging_
            kept = tr.model_.state_dict()
            tr.model_.load_state_dict(tr.unkept_state_)
            row["unkept"] = dict(_scores(tr, valid, test, args), model=(
                "best" if tr.averaging_["kept"] == "averaged" else "averaged"))
            if args.save_dir:
                os.makedirs(args.save_dir, exist_ok=True)
                tr.save(os.path.join(args.save_dir, f"fra-eng-{name}-{row['unkept']['model']}.npz"),
                        meta={"benchmark": {"config": name, **row["unkept"]}})
            tr.model_.load_state_dict(kept)
        print(json.dumps(row), flush=True)
        results.append(row)
        if args.save_dir:
            os.makedirs(args.save_dir, exist_ok=True)
            tr.save(os.path.join(args.save_dir, f"fra-eng-{name}.npz"), meta={"benchmark": row})
    if limit is not None:
        limit.unregister()

    beam_label = f"beam{args.beam}"
    print(f"\n| configuration | test BLEU greedy | test BLEU beam {args.beam} (alpha {args.length_penalty}) "
          f"| chrF greedy / beam | steps (epochs) | training time (CPU) | stopped by |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['config']} | {r['greedy']['bleu']:.1f} | {r[beam_label]['bleu']:.1f} | "
              f"{r['greedy']['chrf']:.1f} / {r[beam_label]['chrf']:.1f} | {r['steps']} ({r['epochs']}) | "
              f"{r['train_seconds'] / 60:.1f} min ({r['train_cpu_seconds'] / 60:.1f}) | {r['stop_reason']} |")
    if args.json:
        write_json(args.json, {"data": dict(info, train=len(train), valid=len(valid), test=len(test),
                                            extra_pairs=args.extra_pairs, oversample=args.oversample),
                               "args": vars(args), "results": results}, what="--out")
    return 0


def _scores(tr, valid, test, args) -> dict:
    """Greedy and beam test scores of ``tr`` (and, with --select-decoding, the decoding chosen on validation)."""
    row = {}
    for label, beam in (("greedy", 1), (f"beam{args.beam}", args.beam)):
        t0 = time.perf_counter()
        r = tr.evaluate(test, beam=beam, length_penalty=args.length_penalty if beam > 1 else 0.0,
                        with_loss=(beam == 1 and isinstance(tr, Translator)))
        row[label] = {k: round(v, 2) for k, v in r.items() if k in ("bleu", "chrf", "exact", "loss")}
        row[label]["decode_seconds"] = round(time.perf_counter() - t0, 1)
    if args.select_decoding:
        row["decoding"] = _select_decoding(tr, valid, test)
    return row


def _run_ensemble(args, info, train, valid, test, limit) -> int:
    """Score the ensemble of ``args.ensemble`` on the test side; the cost is the members' training times."""
    from rnnkit.translate.ensemble import Ensemble
    members = [Translator.load(f) for f in args.ensemble]
    ens = Ensemble(members, names=args.ensemble)
    costs = [((m.meta_ or {}).get("benchmark") or {}) for m in members]
    row = {"config": "ensemble", "models": args.ensemble,
           "train_seconds": round(sum(c.get("train_seconds", 0.0) for c in costs), 1),
           "train_cpu_seconds": round(sum(c.get("train_cpu_seconds", 0.0) for c in costs), 1)}
    t0 = time.perf_counter()
    row.update(_scores(ens, valid, test, args))
    row["score_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(row), flush=True)
    if limit is not None:
        limit.unregister()
    if args.json:
        write_json(args.json, {"data": dict(info, train=len(train), valid=len(valid), test=len(test)),
                               "args": vars(args), "results": [row]}, what="--out")
    return 0


def _setting(text: str):
    """``"name=value"`` -> (name, value), the value read as JSON where it parses (numbers, true, null)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"--set expects NAME=VALUE, got {text!r}")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def _select_decoding(tr, valid, test):
    """The beam size and length penalty with the best validation BLEU, and the test scores they give."""
    grid = [(b, a) for b in (5, 10) for a in (0.0, 0.6, 1.0)]
    val = {(b, a): tr.evaluate(valid, beam=b, length_penalty=a, with_loss=False)["bleu"] for b, a in grid}
    beam, alpha = max(grid, key=lambda k: val[k])
    r = tr.evaluate(test, beam=beam, length_penalty=alpha, with_loss=False)
    return {"validation_bleu": {f"beam{b}_alpha{a}": round(v, 2) for (b, a), v in val.items()},
            "beam": beam, "length_penalty": alpha,
            "test": {k: round(v, 2) for k, v in r.items() if k in ("bleu", "chrf", "exact")}}


if __name__ == "__main__":
    sys.exit(main())
