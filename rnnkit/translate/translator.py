"""Translator: the user-facing estimator (scikit-learn contract) around Seq2Seq.

``Translator(**hyperparameters).fit(train_pairs, valid_pairs)`` preprocesses the
text, builds the vocabularies, trains through :func:`rnnkit.train.fit` (Adam,
gradient clipping, teacher forcing or scheduled sampling, validation loss and
BLEU, early stopping, checkpoints and resume) and keeps the learned state in
attributes ending in ``_``. ``translate`` decodes greedily or with a beam;
``evaluate`` reports BLEU, chrF and the exact-match rate; ``save``/``load`` use
one model file of kind "translator" holding the weights, configuration,
vocabularies and training history.
"""

from __future__ import annotations

import inspect
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError, NotFittedError
from ..io.jsonable import plain
from ..io.modelfile import load_model_file, save_model_file
from ..optim import Adam
from ..optim.checks import check_count, check_real
from ..train import History, fit as fit_loop
from ..train.checkpoint import load_checkpoint
from .data import (PAD, SPECIALS, TextOptions, Vocab, bucket_batches, detokenize, make_batch, tokenize)
from .decode import beam_search, check_decoding, greedy
from .metrics import scores
from .model import Seq2Seq
from .sampling import TeacherForcing

__all__ = ["Translator", "Translation", "KIND"]

KIND = "translator"
Pair = Tuple[str, str]


class Translation(NamedTuple):
    text: str                  # the translation, detokenised
    tokens: List[str]
    log_prob: float            # log P(translation | source) under the model
    score: float               # what the beam ranks by (log_prob / length penalty)
    weights: np.ndarray        # (output tokens incl. <eos>, source tokens) attention
    source_tokens: List[str]
    unknown: List[str]         # source tokens outside the vocabulary (read as <unk>)


class Translator:
    """Sequence-to-sequence translator with attention.

    Model: ``cell`` ("lstm"/"gru"), ``attention`` ("bahdanau", "dot", "general"),
    ``embedding_size``, ``hidden_size``, ``num_layers``, ``bidirectional``,
    ``input_feeding`` (Luong), ``attention_size`` (Bahdanau), ``bridge``, ``dropout``.
    Text: ``tokens`` ("word"/"char"), ``normalize``, ``lowercase``, ``split_punctuation``,
    ``min_freq``, ``max_vocab``.
    Training: ``epochs``, ``max_steps``, ``max_minutes``, ``batch_size``, ``lr``, ``clip_norm``,
    ``label_smoothing``, ``teacher_forcing`` (constant ratio, decided per batch),
    ``scheduled_sampling`` ("none", "linear", "exponential", "inverse_sigmoid"; per token)
    with ``ss_k``, ``ss_c``, ``ss_floor`` and ``sampling`` ("sample"/"argmax"),
    ``validate_every`` (steps; default every epoch), ``early_stopping_patience``,
    ``bleu_sentences`` (validation sentences decoded for BLEU; 0 = none),
    ``max_length`` (decoding limit), ``random_state``.
    """

    def __init__(self, *, cell: str = "lstm", attention: str = "bahdanau", embedding_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 1, bidirectional: bool = True,
                 input_feeding: bool = False, attention_size: Optional[int] = None, bridge: str = "linear",
                 dropout: float = 0.1, tokens: str = "word", normalize: str = "nfkc", lowercase: bool = True,
                 split_punctuation: bool = True, min_freq: int = 1, max_vocab: Optional[int] = None,
                 epochs: Optional[int] = 10, max_steps: Optional[int] = None, max_minutes: Optional[float] = None,
                 batch_size: int = 64, lr: float = 1e-3, clip_norm: Optional[float] = 5.0,
                 label_smoothing: float = 0.0, teacher_forcing: float = 1.0, scheduled_sampling: str = "none",
                 ss_k: Optional[float] = None, ss_c: float = 1e-4, ss_floor: float = 0.0, sampling: str = "sample",
                 validate_every: Optional[int] = None, early_stopping_patience: Optional[int] = None,
                 bleu_sentences: int = 300, max_length: int = 50, random_state: int = 0):
        # stored verbatim (scikit-learn contract); checked in fit
        params = dict(locals())
        del params["self"]
        for name, value in params.items():
            setattr(self, name, value)

    @classmethod
    def _param_names(cls) -> List[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self) -> Dict:
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params) -> "Translator":
        for k, v in params.items():
            if k not in self._param_names():
                raise ValueError(f"unknown parameter {k!r} for Translator")
            setattr(self, k, v)
        return self

    def _check_params(self) -> None:
        """Refuse hyperparameters that would train nothing or fail late (the CLI flags share the names)."""
        def flag(name):
            return f"{name} (--{name.replace('_', '-')})"

        check_real(flag("lr"), self.lr, low_open=True)
        for name in ("embedding_size", "hidden_size", "num_layers", "max_length"):
            check_count(flag(name), getattr(self, name), 1)
        if self.attention_size is not None:
            check_count(flag("attention_size"), self.attention_size, 1)
        check_real(flag("dropout"), self.dropout, 0.0, 1.0, high_open=True)
        check_real(flag("teacher_forcing"), self.teacher_forcing, 0.0, 1.0)
        check_real(flag("ss_floor"), self.ss_floor, 0.0, 1.0)
        check_count(flag("min_freq"), self.min_freq, 1)
        if self.max_vocab is not None:
            check_count(flag("max_vocab"), self.max_vocab, len(SPECIALS) + 1)  # room for one real token
        check_count(flag("batch_size"), self.batch_size, 1)
        check_count(flag("bleu_sentences"), self.bleu_sentences, 0)
        check_real(flag("label_smoothing"), self.label_smoothing, 0.0, 1.0)
        if self.ss_k is not None:
            check_real(flag("ss_k"), self.ss_k, low_open=True)
        check_real(flag("ss_c"), self.ss_c)

    # -- preprocessing -------------------------------------------------------
    def _text_options(self) -> TextOptions:
        return TextOptions(normalize=self.normalize, lowercase=self.lowercase,
                           split_punctuation=self.split_punctuation, tokens=self.tokens)

    def _encode_pairs(self, pairs: Sequence[Pair]):
        opts = self.text_options_
        src = [self.src_vocab_.encode(tokenize(s, opts))[0] for s, _ in pairs]
        tgt = [self.tgt_vocab_.encode(tokenize(t, opts))[0] for _, t in pairs]
        empty = [i for i, (s, t) in enumerate(zip(src, tgt)) if not s or not t]
        if empty:
            raise DataError(f"pair {empty[0]} ({pairs[empty[0]]!r}) is empty after preprocessing")
        return src, tgt

    def _teacher(self) -> TeacherForcing:
        decay = "constant" if self.scheduled_sampling in (None, "none") else self.scheduled_sampling
        return TeacherForcing(decay, ratio=self.teacher_forcing, k=self.ss_k, c=self.ss_c, floor=self.ss_floor)

    # -- training ------------------------------------------------------------
    def fit(self, train_pairs: Sequence[Pair], valid_pairs: Optional[Sequence[Pair]] = None, *,
            checkpoint_path=None, checkpoint_every: Optional[int] = None, resume: bool = False,
            progress: bool = True, callbacks=()) -> "Translator":
        """Train on ``train_pairs`` [(source, target) strings]; validate on ``valid_pairs``."""
        if not train_pairs:
            raise DataError("no training pairs")
        self._check_params()
        teacher = self._teacher()
        if self.sampling not in ("sample", "argmax"):
            raise ValueError(f"sampling: expected 'sample' or 'argmax', got {self.sampling!r}")
        self.text_options_ = opts = self._text_options()
        tok = [(tokenize(s, opts), tokenize(t, opts)) for s, t in train_pairs]
        self.src_vocab_ = Vocab.build((s for s, _ in tok), min_freq=self.min_freq, max_size=self.max_vocab)
        self.tgt_vocab_ = Vocab.build((t for _, t in tok), min_freq=self.min_freq, max_size=self.max_vocab)
        src, tgt = self._encode_pairs(train_pairs)
        self.model_ = model = Seq2Seq(
            len(self.src_vocab_), len(self.tgt_vocab_), cell=self.cell, embedding_size=self.embedding_size,
            hidden_size=self.hidden_size, num_layers=self.num_layers, bidirectional=self.bidirectional,
            attention=self.attention, attention_size=self.attention_size, input_feeding=self.input_feeding,
            bridge=self.bridge, dropout=self.dropout, rng=self.random_state)
        optimizer = Adam(model.parameters(), lr=self.lr)
        batch_size, label_smoothing, sampling = self.batch_size, self.label_smoothing, self.sampling

        def batches(epoch, rng):
            return bucket_batches(src, tgt, batch_size, rng)

        def step_fn(batch, ctx):
            mask = teacher.mask(ctx.step, batch.tgt_in.shape, ctx.rng)
            return model.loss(batch, teacher=mask, label_smoothing=label_smoothing, rng=ctx.rng, sampling=sampling)

        validate = None
        if valid_pairs:
            v_src, v_tgt = self._encode_pairs(valid_pairs)
            v_batches = [make_batch(v_src, v_tgt, idx) for idx in _length_sorted_chunks(v_src, 128)]
            n_bleu = min(self.bleu_sentences, len(valid_pairs))
            bleu_pairs = list(valid_pairs)[:n_bleu]

            def validate(m):
                out = {"loss": _mean_loss(m, v_batches)}
                if n_bleu:
                    out["bleu"] = self.evaluate(bleu_pairs, with_loss=False)["bleu"]
                return out

        config = {"model": model.config, "text": opts.to_dict(), "params": plain(self.get_params())}
        meta = {"src_vocab": self.src_vocab_.itos, "tgt_vocab": self.tgt_vocab_.itos}
        if resume and checkpoint_path is not None and os.path.exists(checkpoint_path):
            _check_resume(checkpoint_path, config, meta)    # else fit() starts afresh, as documented there
        self.history_ = fit_loop(
            model, optimizer, step_fn, batches, seed=int(self.random_state), epochs=self.epochs,
            max_steps=self.max_steps, max_minutes=self.max_minutes, clip_norm=self.clip_norm, validate=validate,
            validate_every=self.validate_every, early_stopping_patience=self.early_stopping_patience,
            checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every, resume=resume,
            callbacks=callbacks, progress=progress, config=config, meta=meta)
        model.eval()
        return self

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError("this Translator is not trained yet: call fit() or Translator.load(path)")

    # -- translation ---------------------------------------------------------
    def translate(self, sentences: Sequence[str], *, beam: int = 1, n_best: int = 1, length_penalty: float = 0.0,
                  max_length: Optional[int] = None, batch_size: int = 64) -> List[List[Translation]]:
        """The ``n_best`` translations of each sentence (beam search when ``beam`` > 1), best first."""
        self._check_fitted()
        check_decoding(beam=beam, n_best=n_best, length_penalty=length_penalty)
        max_length = self.max_length if max_length is None else max_length
        opts = self.text_options_
        src_tokens = [tokenize(s, opts) for s in sentences]
        for i, t in enumerate(src_tokens):
            if not t:
                raise DataError(f"sentence {i + 1} is empty: nothing to translate")
        encoded = [self.src_vocab_.encode(t) for t in src_tokens]
        ids = [e[0] for e in encoded]
        results: List[Optional[List[Translation]]] = [None] * len(sentences)
        for idx in _length_sorted_chunks(ids, batch_size):
            b = make_batch(ids, None, idx)
            if beam == 1:
                hyps = [[h] for h in greedy(self.model_, b.src, b.src_len, max_length)]
            else:
                hyps = beam_search(self.model_, b.src, b.src_len, beam, n_best, length_penalty, max_length)
            for i, hs in zip(idx, hyps):
                results[i] = [self._translation(h, src_tokens[i], encoded[i][1]) for h in hs]
        return results

    def _translation(self, h, src_tokens, unknown) -> Translation:
        tokens = self.tgt_vocab_.decode(h.tokens)
        return Translation(detokenize(tokens, self.text_options_), tokens, h.log_prob, h.score, h.weights,
                           src_tokens, unknown)

    def evaluate(self, pairs: Sequence[Pair], *, beam: int = 1, length_penalty: float = 0.0,
                 max_length: Optional[int] = None, with_loss: bool = True) -> Dict[str, float]:
        """BLEU, chrF, exact-match rate (%) and, with ``with_loss``, the teacher-forced loss on ``pairs``."""
        self._check_fitted()
        if not pairs:
            raise DataError("no pairs to evaluate")
        hyps = [r[0].text for r in self.translate([s for s, _ in pairs], beam=beam, length_penalty=length_penalty,
                                                  max_length=max_length)]
        refs = [detokenize(tokenize(t, self.text_options_), self.text_options_) for _, t in pairs]
        out = scores(hyps, refs)
        out["n"] = len(pairs)
        if with_loss:
            src, tgt = self._encode_pairs(pairs)
            out["loss"] = _mean_loss(self.model_, [make_batch(src, tgt, i) for i in _length_sorted_chunks(src, 128)])
        return out

    # -- files ---------------------------------------------------------------
    def save(self, path, meta: Optional[Dict] = None) -> str:
        """Write the model file (kind "translator"); ``meta`` adds JSON-able facts (data, test scores)."""
        self._check_fitted()
        config = {"model": self.model_.config, "text": self.text_options_.to_dict(),
                  "params": plain(self.get_params())}
        info = {"src_vocab": self.src_vocab_.itos, "tgt_vocab": self.tgt_vocab_.itos,
                "history": self.history_.to_dict() if getattr(self, "history_", None) else None}
        info.update(meta or {})
        save_model_file(path, kind=KIND, config=config, arrays=self.model_.state_dict(), meta=info)
        return str(path)

    @classmethod
    def load(cls, path) -> "Translator":
        """A trained Translator from a model file; files of other applications are refused."""
        mf = load_model_file(path, expected_kind=KIND)
        params = {k: v for k, v in mf.config.get("params", {}).items() if k in cls._param_names()}
        self = cls(**params)
        self.text_options_ = TextOptions(**mf.config["text"])
        self.src_vocab_ = Vocab(mf.meta["src_vocab"])
        self.tgt_vocab_ = Vocab(mf.meta["tgt_vocab"])
        self.model_ = Seq2Seq(**mf.config["model"])
        self.model_.load_state_dict(mf.arrays)
        self.model_.eval()
        hist = mf.meta.get("history")
        self.history_ = History.from_dict(hist) if hist else None
        self.file_meta_ = mf.meta
        return self


def _length_sorted_chunks(ids: Sequence[Sequence[int]], size: int) -> List[np.ndarray]:
    """Index chunks of similar source length (less padding), covering every index once."""
    order = np.argsort([len(s) for s in ids], kind="stable")
    return [order[i:i + size] for i in range(0, len(order), size)]


def _mean_loss(model, batches) -> float:
    """Token-weighted teacher-forced cross-entropy, in eval mode, without gradients."""
    was = model.training
    model.eval()
    try:
        total = n = 0
        for b in batches:
            loss, count = model.loss(b, backward=False)
            total += loss * count
            n += count
    finally:
        model.train(was)
    return total / max(n, 1)


# Hyperparameters that shape the weights or the vocabularies: a checkpoint made with other
# values cannot continue. The rest (epochs, budgets, validation) may change on resume.
_SHAPING = ("cell", "attention", "embedding_size", "hidden_size", "num_layers", "bidirectional", "input_feeding",
            "attention_size", "bridge", "tokens", "normalize", "lowercase", "split_punctuation", "min_freq",
            "max_vocab")


def _check_resume(checkpoint_path, config: Dict, meta: Dict) -> None:
    """Refuse, in one line, to resume from a checkpoint made with another model or other data."""
    ck = load_checkpoint(checkpoint_path)
    old = (ck.config or {}).get("params", {})
    diff = [k for k in _SHAPING if old.get(k) != config["params"].get(k)]
    if diff:
        was = ", ".join(f"--{k.replace('_', '-')} {old.get(k)}" for k in diff)
        raise DataError(f"{checkpoint_path}: this checkpoint was trained with {was}; resume with the same "
                        "settings, or start afresh without --resume")
    for side in ("src_vocab", "tgt_vocab"):
        if ck.meta.get(side) != meta[side]:
            raise DataError(f"{checkpoint_path}: this checkpoint was trained on other sentence pairs (its "
                            f"{'source' if side == 'src_vocab' else 'target'} vocabulary differs); resume with "
                            "the same PAIRS file, filters and split, or start afresh without --resume")
