"""The translation application's functions; their keyword names are the CLI's flags.

- :func:`train`: read a pairs file (or the built-in numbers task), filter, split,
  train a :class:`~rnnkit.translate.translator.Translator`, score the test split
  and save the model file.
- :func:`translate`: translate sentences with a saved model (greedy or beam,
  n-best lists, an attention heatmap).
- :func:`evaluate`: BLEU, chrF and exact-match rate on a pairs file.
- :func:`load`: a saved Translator.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..checks import check_count, check_probability
from ..errors import DataError, HyperparameterError, ModelFileError
from ..estimator import flag_of, prepare_run
from ..io.atomic import check_outputs
from ..io.inputs import check_input, max_input_bytes
from ..train.progress import say
from .data import TextOptions, filter_pairs, read_pairs, sentence_groups, split_indices, tokenize
from .default_task import DEFAULT_RANGE, check_range, number_pairs
from .decode import check_decoding
from .translator import Translation, Translator

__all__ = ["train", "translate", "translate_lines", "stdin_lines", "evaluate", "load", "prepare_pairs"]

MAX_LINE_BYTES = 1 << 20      # one sentence: far beyond any real one

ModelLike = Union[str, Translator]


def load(path: str) -> Translator:
    """A fitted Translator from a model file or a training checkpoint (the best validated weights)."""
    return Translator.load(path)


def _model(model: ModelLike, ensemble: Sequence[ModelLike] = ()):
    """The Translator, or with ``ensemble`` (other models or files) an :class:`Ensemble` of them all."""
    from .ensemble import Ensemble
    if isinstance(model, Ensemble):
        return model
    tr = model if isinstance(model, Translator) else Translator.load(model)
    if not ensemble:
        return tr
    members = [tr] + [m if isinstance(m, Translator) else Translator.load(m) for m in ensemble]
    names = [_model_path(m) or f"model {i + 1}" for i, m in enumerate([model] + list(ensemble))]
    return Ensemble(members, names=names)


def _model_path(model: ModelLike) -> Optional[str]:
    return os.fspath(model) if isinstance(model, (str, os.PathLike)) else None


def _number_range(numbers) -> Tuple[int, int]:
    if isinstance(numbers, str):
        try:
            low, high = (int(v) for v in numbers.split("-"))
        except ValueError:
            raise DataError(f"numbers: expected a range LOW-HIGH such as 0-999, got {numbers!r}") from None
    else:
        low, high = (int(v) for v in numbers)
    return check_range(low, high)


def prepare_pairs(pairs: Optional[str] = None, *, src_col: int = 0, tgt_col: int = 1,
                  max_words: Optional[int] = None, prefix_filter: Optional[str] = None,
                  numbers=DEFAULT_RANGE, text_options: TextOptions = TextOptions()):
    """The (source, target) strings that pass the filters, and a description of where they came from."""
    if pairs is None:
        low, high = _number_range(numbers)
        raw = number_pairs(low, high)
        source = f"built-in task: numbers {low}-{high}, English words -> French words (num2words)"
    else:
        raw = read_pairs(pairs, src_col=src_col, tgt_col=tgt_col, what="PAIRS")
        source = f"{pairs} (source column {src_col}, target column {tgt_col})"
    tok = [(tokenize(s, text_options), tokenize(t, text_options)) for s, t in raw]
    keep = filter_pairs(tok, max_words=max_words, prefix_filter=prefix_filter, opts=text_options)
    keep = [i for i in keep if tok[i][0] and tok[i][1]]
    if not keep:
        raise DataError(f"no sentence pairs left after filtering ({len(raw)} read; max_words={max_words}, "
                        f"prefix_filter={prefix_filter}): relax the filters or check the columns")
    return [raw[i] for i in keep], {"source": source, "read": len(raw), "kept": len(keep)}


def train(pairs: Optional[str] = None, *, out: str = "translator.npz", resume: bool = False, src_col: int = 0, tgt_col: int = 1,
          max_words: Optional[int] = None, prefix_filter: Optional[str] = None, numbers=None,
          validation_fraction: float = 0.05, test_fraction: float = 0.1, split_seed: int = 0, beam: int = 1,
          length_penalty: float = 0.0, callbacks: Sequence[Callable] = (), **params) -> Dict:
    """Train a translator and save it to ``out``; returns a summary (data, time, validation, test scores).

    ``pairs``: a tab-separated file (columns ``src_col``, ``tgt_col``, counted from 0); None: the
    built-in numbers task over the range ``numbers`` (default 0-999; refused with a file). Filters:
    ``max_words``, ``prefix_filter``.
    Split: fractions ``validation_fraction`` and ``test_fraction`` drawn with ``split_seed``; the
    test split is translated with ``beam`` and ``length_penalty``. ``params``: Translator
    hyperparameters. Training checkpoints go beside ``out`` (:func:`rnnkit.estimator.checkpoint_beside`);
    ``resume=True`` continues from that checkpoint, which must exist. Every output is checked
    before the data is read.
    """
    unknown = sorted(set(params) - set(Translator._param_names()))
    if unknown:
        raise HyperparameterError(f"unknown training option(s) {unknown}; see `rnnkit translate train --help`")
    ckpt = prepare_run(out, resume=resume, kind=Translator.kind, inputs={"PAIRS": pairs},
                       examples={"--out": "translator.npz"})
    if pairs is not None:
        check_input(pairs, "PAIRS")
        if numbers is not None:       # silently ignored before: the file's pairs were trained on
            raise HyperparameterError("numbers (--numbers) sets the range of the built-in task, which runs "
                                      "without a PAIRS file; drop --numbers or the PAIRS file")
    else:
        numbers = _number_range(DEFAULT_RANGE if numbers is None else numbers)   # checked before any work
    check_decoding(beam=beam, length_penalty=length_penalty)
    check_probability(flag_of("validation_fraction"), validation_fraction)
    check_probability(flag_of("test_fraction"), test_fraction)
    if validation_fraction + test_fraction >= 1:
        raise HyperparameterError(f"{flag_of('validation_fraction')} + {flag_of('test_fraction')} must be < 1, "
                                  f"got {validation_fraction} + {test_fraction}: nothing would be left to train on")
    check_count(flag_of("split_seed"), split_seed, 0)
    if max_words is not None:
        check_count("max_words (--max-words)", max_words, 1)
    tr = Translator(**params)
    tr._check_params()
    data, info = prepare_pairs(pairs, src_col=src_col, tgt_col=tgt_col, max_words=max_words,
                               prefix_filter=prefix_filter, numbers=numbers, text_options=tr._text_options())
    # held out means unseen: pairs sharing a source or target sentence stay on one side of the split
    groups = sentence_groups(data, tr._text_options())
    i_train, i_valid, i_test = split_indices(len(data), valid=validation_fraction, test=test_fraction,
                                             seed=split_seed, groups=groups)
    if len(i_train) == 0:
        n_groups_all = len(np.unique(groups))
        if n_groups_all < 3:            # the pairs share sentences: the split deals whole groups
            raise DataError(f"the {len(data)} pairs form only {n_groups_all} sentence group(s) (pairs sharing a "
                            "source or target sentence stay on one side of the split), so nothing is left to train "
                            "on; check --src-col and --tgt-col: is one of them a column with the same text on every "
                            "line?")
        raise DataError(f"only {len(data)} pairs: nothing left to train on after the validation and test split "
                        "(--validation-fraction, --test-fraction)")
    pick = lambda idx: [data[i] for i in idx]
    n_groups = lambda idx: len(np.unique(groups[idx]))
    if tr.progress:
        say(f"translate: {len(data)} pairs in {len(np.unique(groups))} sentence groups (pairs sharing a source or "
            f"target sentence); train {len(i_train)} pairs in {n_groups(i_train)} groups, validation "
            f"{len(i_valid)} in {n_groups(i_valid)}, test {len(i_test)} in {n_groups(i_test)}")
    t0 = time.perf_counter()
    tr.fit(pick(i_train), pick(i_valid) or None, checkpoint_path=ckpt, resume=resume, callbacks=callbacks)
    seconds = time.perf_counter() - t0
    summary = {"data": dict(info, train=len(i_train), valid=len(i_valid), test=len(i_test),
                            groups={"train": n_groups(i_train), "valid": n_groups(i_valid),
                                    "test": n_groups(i_test)}),
               "vocab": {"source": len(tr.src_vocab_), "target": len(tr.tgt_vocab_)},
               "train_seconds": round(seconds, 1), "steps": tr.history_.steps,
               "stop_reason": tr.history_.stop_reason, "best_val_loss": tr.history_.best_val_loss,
               "best_step": tr.history_.best_step, "averaging": getattr(tr, "averaging_", None),
               "columns": {"src_col": src_col, "tgt_col": tgt_col}}
    if len(i_test):
        summary["test"] = dict(tr.evaluate(pick(i_test), beam=beam, length_penalty=length_penalty), beam=beam)
    tr.save(out, meta={"training": summary, "split": {"validation_fraction": validation_fraction,
                                                      "test_fraction": test_fraction, "split_seed": split_seed}})
    summary["out"] = out
    summary["checkpoint"] = ckpt
    return summary


def translate(model: ModelLike, text: Union[str, Sequence[str]], *, beam: int = 1, n_best: int = 1,
              length_penalty: float = 0.0, max_length: Optional[int] = None,
              attention_plot: Optional[str] = None, ensemble: Sequence[ModelLike] = ()) -> List[List[Translation]]:
    """Translations of ``text`` (one sentence or a list), ``n_best`` each, best first.

    With ``attention_plot``, the best translation of the first sentence is drawn as a heatmap PNG.
    With ``ensemble`` (more models or files), the models decode together (:mod:`rnnkit.translate.ensemble`).
    """
    check_decoding(beam=beam, n_best=n_best, length_penalty=length_penalty, max_length=max_length)
    if attention_plot is not None:
        check_outputs({"--attention-plot": attention_plot}, inputs={"MODEL": _model_path(model)},
                      examples={"--attention-plot": "attention.png"})
    sentences = [text] if isinstance(text, str) else list(text)
    if not sentences:
        raise DataError("nothing to translate")
    tr = _model(model, ensemble)
    results = tr.translate(sentences, beam=beam, n_best=n_best, length_penalty=length_penalty,
                           max_length=max_length)
    if attention_plot:
        from .plots import save_attention_plot
        best = results[0][0]
        save_attention_plot(attention_plot, best.source_tokens, best.tokens, best.weights,
                            title=f"{sentences[0]}\n-> {best.text}")
    return results


def _training_columns(tr, model, src_col, tgt_col) -> Tuple[int, int]:
    """The columns ``tr`` was trained on (its file's meta), where the caller gives none (else 0 and 1)."""
    if src_col is not None and tgt_col is not None:
        return src_col, tgt_col
    training = (getattr(tr, "meta_", None) or {}).get("training") or {}
    cols = training.get("columns", {}) if isinstance(training, dict) else None
    # type() is int: a bool is an int to isinstance
    if not isinstance(cols, dict) or not all(type(cols.get(k, 0)) is int and cols.get(k, 0) >= 0
                                             for k in ("src_col", "tgt_col")):
        where = _model_path(model) or "the model"
        raise ModelFileError(f"{where}: the recorded training columns are malformed; the file was edited or "
                             "damaged: re-create it, or give --src-col and --tgt-col")
    return (cols.get("src_col", 0) if src_col is None else src_col,
            cols.get("tgt_col", 1) if tgt_col is None else tgt_col)


def evaluate(model: ModelLike, test: str, *, src_col: Optional[int] = None, tgt_col: Optional[int] = None,
             beam: int = 1, length_penalty: float = 0.0, max_length: Optional[int] = None,
             ensemble: Sequence[ModelLike] = ()) -> Dict[str, float]:
    """BLEU, chrF, exact-match rate and loss of ``model`` on the pairs file ``test``.

    The columns default to those the model was trained with (else 0 and 1). With ``ensemble`` (more
    models or files) the models decode together, and there is no loss.
    """
    check_decoding(beam=beam, length_penalty=length_penalty, max_length=max_length)
    check_input(test, "TEST")
    tr = _model(model, ensemble)
    src_col, tgt_col = _training_columns(tr, model, src_col, tgt_col)
    pairs = read_pairs(test, src_col=src_col, tgt_col=tgt_col, what="TEST")
    extra = {"with_loss": False} if ensemble else {}
    return dict(tr.evaluate(pairs, beam=beam, length_penalty=length_penalty, max_length=max_length, **extra),
                beam=beam, models=1 + len(ensemble))


def stdin_lines(stream=None, *, max_bytes: Optional[int] = None, max_line: int = MAX_LINE_BYTES) -> Iterable[str]:
    """The lines of ``stream`` (default: stdin), read one at a time within the input limit.

    Refused with one line naming stdin: more than ``max_bytes`` in all (default
    :func:`rnnkit.io.inputs.max_input_bytes`, RNNKIT_MAX_INPUT_BYTES) or a line
    longer than ``max_line`` bytes (``/dev/zero`` is one endless line).
    """
    import sys
    stream = sys.stdin if stream is None else stream
    limit, total = max_input_bytes(max_bytes), 0
    raw = getattr(stream, "buffer", None)
    encoding = getattr(stream, "encoding", None) or "utf-8"
    while True:
        if raw is not None:
            line = raw.readline(max_line + 1)
            size = len(line)
        else:
            line = stream.readline(max_line + 1)
            size = len(line.encode("utf-8", "surrogatepass"))
        if not line:
            return
        total += size
        if total > limit:
            raise DataError(f"stdin: more than {limit:,} bytes (RNNKIT_MAX_INPUT_BYTES); translate a shorter "
                            "input, or raise RNNKIT_MAX_INPUT_BYTES")
        if size > max_line and not (line.endswith(b"\n") if raw is not None else line.endswith("\n")):
            raise DataError(f"stdin: a line longer than {max_line:,} bytes (RNNKIT_MAX_INPUT_BYTES limits the "
                            "whole input); give one sentence per line")
        if raw is not None:
            try:
                line = line.decode(encoding)
            except UnicodeDecodeError as e:
                raise DataError(f"stdin: bytes that are not {encoding} ({e.reason}); give text") from None
        yield line


def translate_lines(model: ModelLike, lines: Iterable[str], *, beam: int = 1, n_best: int = 1,
                    length_penalty: float = 0.0, max_length: Optional[int] = None,
                    attention_plot: Optional[str] = None,
                    ensemble: Sequence[ModelLike] = ()) -> Tuple[List[List[Translation]], List[str]]:
    """What ``rnnkit translate MODEL`` prints: the translations of each line ([] for a blank one) and
    the unknown source words, in order of first appearance.

    ``lines`` may be a stream (stdin): it is read after the settings, the outputs and the model
    have been checked.
    """
    check_decoding(beam=beam, n_best=n_best, length_penalty=length_penalty, max_length=max_length)
    if attention_plot is not None:
        check_outputs({"--attention-plot": attention_plot}, inputs={"MODEL": _model_path(model)},
                      examples={"--attention-plot": "attention.png"})
    tr = _model(model, ensemble)
    lines = [line.rstrip("\r\n") for line in lines]
    todo = [i for i, s in enumerate(lines) if s.strip()]
    if not todo:
        raise DataError("nothing to translate: give a sentence, or lines on stdin")
    results = translate(tr, [lines[i] for i in todo], beam=beam, n_best=n_best, length_penalty=length_penalty,
                        max_length=max_length, attention_plot=attention_plot)
    rows: List[List[Translation]] = [[] for _ in lines]
    unknown: List[str] = []
    for i, hyps in zip(todo, results):
        rows[i] = hyps
        unknown += [w for w in hyps[0].unknown if w not in unknown]
    return rows, unknown
