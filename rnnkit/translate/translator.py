"""Translator: the translation application's estimator (the shared contract of :mod:`rnnkit.estimator`).

``Translator(**hyperparameters).fit(train_pairs, valid_pairs)`` preprocesses the
text, builds the vocabularies, trains through :meth:`Estimator._fit_loop`
(Adam, gradient clipping, teacher forcing or scheduled sampling, validation loss
and BLEU, early stopping, checkpoints and a checked resume) and keeps the learned
state in attributes ending in ``_``. ``translate`` decodes greedily or with a
beam; ``evaluate`` reports BLEU, chrF and the exact-match rate. ``save`` and
``Translator.load`` / :func:`rnnkit.load` (model file or checkpoint) come from the base.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..checks import (check_choice, check_count, check_flag, check_optional_count, check_optional_real,
                      check_probability, check_real)
from ..distributed import world
from ..errors import DataError, HyperparameterError
from ..estimator import Estimator, available_memory, fingerprint, flag_of
from ..runs import format_bytes
from ..train.averaging import CheckpointAverager, keep_better_average
from .data import (SPECIALS, TextOptions, Vocab, batches_per_epoch, bucket_batches, detokenize, make_batch,
                   tokenize)
from .decode import MAX_LENGTH, beam_search, check_decoding, decoding_bytes, greedy
from .metrics import scores
from .model import Seq2Seq
from ..nn.shapes import CELL_MODES, GATES
from .sampling import DECAYS, TeacherForcing
from .shapes import feeds, seq2seq_shapes

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


def _checked_pairs(pairs, what: str) -> List[Tuple[str, str]]:
    """``pairs`` as a list of (source, target) strings; anything else is one line naming the first bad item.

    A pandas DataFrame iterates over its column names: give ``df.itertuples(index=False)`` or a list of pairs.
    """
    if isinstance(pairs, (str, bytes)) or type(pairs).__name__ == "DataFrame":
        raise DataError(f"{what}: expected a list of (source, target) pairs of strings, got a "
                        f"{type(pairs).__name__}" + (" (pass list(df.itertuples(index=False)))"
                                                     if type(pairs).__name__ == "DataFrame" else ""))
    out = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2 \
                or not all(isinstance(x, str) for x in pair):
            raise DataError(f"{what}[{i}]: expected a (source, target) pair of strings, got {pair!r:.80}")
        out.append((pair[0], pair[1]))
    return out


class Translator(Estimator):
    """Sequence-to-sequence translator with attention (encoder, bridge, attentional decoder).

    The defaults are the recipe measured best on Tatoeba French-to-English (README, issue 15): Luong's
    general attention over a bidirectional LSTM encoder, the decoder's output layer tied to its target
    embedding, dropout 0.3, label smoothing 0.1, per-token scheduled sampling (inverse sigmoid), Adam 2e-3
    annealed by a cosine over 30 epochs, and the kept model the one with the best validation BLEU, or the
    average of the 5 best validations when that validates better.

    Parameters
    ----------
    cell : recurrent cell of the encoder and the decoder: lstm or gru.
    attention : bahdanau (additive, before the recurrent step), dot or general (Luong, after it).
    embedding_size : width of the source and target token embeddings.
    hidden_size : units of each encoder direction and of the decoder.
    num_layers : stacked recurrent layers in the encoder and in the decoder.
    bidirectional : read the source in both directions (dot attention needs --no-bidirectional).
    input_feeding : Luong's input feeding: the previous attentional vector joins the decoder's input (dot and
        general attention only; none: on for dot and general, off for bahdanau).
    attention_size : Bahdanau's attention width (none: hidden_size).
    bridge : decoder start state: linear (tanh of a map of the encoder's final state) or zero.
    dropout : dropout probability on embeddings, between layers and before the output layer.
    layer_norm : layer-normalised LSTM/GRU cells (Ba et al. 2016) in the encoder and the decoder.
    peephole : LSTM only: peephole connections from the cell state to the gates, encoder and decoder.
    variational_dropout : the encoder's variational recurrent dropout (one mask per sentence on each layer's
        input and on h(t-1)); the decoder, stepped token by token, has none.
    weight_drop : the encoder's DropConnect on its recurrent weights W_hh (one mask per step).
    zoneout : the encoder's zoneout probability (each unit keeps its previous value).
    tie_embeddings : weight tying (Press and Wolf 2017): the decoder's output layer is its target embedding
        matrix, after a linear map to the embedding size when the output vector is wider.
    tokens : word or char tokens.
    normalize : Unicode normalisation: nfkc, nfc, ascii (strip accents) or none.
    lowercase : fold the text to lower case.
    split_punctuation : make each punctuation mark a token of its own.
    min_freq : keep tokens seen at least this often in the training pairs (others read as <unk>).
    max_vocab : at most this many tokens per vocabulary, specials included (none: no limit).
    epochs : passes over the training pairs (none: until another limit stops).
    max_steps : stop after this many optimiser steps in all (none: no limit).
    max_minutes : stop after this many minutes of training (none: no limit).
    batch_size : sentence pairs per step.
    learning_rate : step size of Adam (of AdamW with weight_decay).
    lr_decay : none, or cosine: anneal the learning rate to learning_rate/20 over the --epochs or
        --max-steps budget (counted in steps, so a resumed run continues it exactly), or over the
        --max-minutes with --epochs none and no --max-steps.
    weight_decay : decoupled weight decay (AdamW, Loshchilov and Hutter 2019) of the weight matrices and
        embeddings, not the biases and gains: each step multiplies them by 1 - lr * weight_decay (0: Adam).
    clip_norm : rescale the gradients to at most this global L2 norm (none: no clipping).
    label_smoothing : weight of the uniform distribution mixed into the targets.
    teacher_forcing : probability that a batch is decoded from the reference tokens.
    scheduled_sampling : per-token decay of the teacher-forcing probability: none, linear,
        exponential or inverse_sigmoid.
    ss_k : the decay's k (inverse_sigmoid: k >= 1; exponential: 0 < k <= 1).
    ss_c : the linear decay's slope c per step.
    ss_floor : the lowest teacher-forcing probability the decay reaches.
    sampling : the model's own token when not teacher forced: sample (from its softmax) or argmax.
    validate_every : steps between validations (besides every epoch's end; none: at epoch ends only).
    early_stopping_patience : stop after this many validations without improvement (none: never).
    select_by : the validation metric that picks the kept model and drives early stopping: bleu
        (the highest validation BLEU, of equal ones the lowest loss; with --bleu-sentences 0 there is
        none and the loss decides)
        or loss (the lowest validation loss).
    average_checkpoints : checkpoint averaging: at the end, average the parameters of this many best
        validations (by --select-by) and keep the average only if it validates better than the best
        single one (0 or 1: off; needs validation pairs).
    bleu_sentences : validation sentences translated for BLEU at each validation (0: none).
    max_length : longest translation in tokens when decoding.
    checkpoint_every : also checkpoint every this many steps (none: at each validation and on interrupt).
    random_state : seed of the initialisation, the batch order and the sampling (none: fresh entropy).
    progress : progress bar and notes while training.
    """

    kind = KIND
    _choices = {"cell": ("lstm", "gru"), "attention": ("bahdanau", "dot", "general"), "bridge": ("linear", "zero"),
                "tokens": ("word", "char"), "normalize": ("nfkc", "nfc", "ascii", "none"),
                "scheduled_sampling": ("none",) + tuple(d for d in DECAYS if d != "constant"),
                "sampling": ("sample", "argmax"), "lr_decay": ("none", "cosine"), "select_by": ("bleu", "loss")}
    # files written before these settings existed were trained without them (they became defaults on 2026-12-02)
    _absent_params = {"tie_embeddings": False, "average_checkpoints": 0}
    # settings that shape the weights or the vocabularies: a checkpoint made with others cannot continue
    _size_flags = ("--hidden-size", "--num-layers", "--embedding-size", "--batch-size")
    _resume_fixed = ("cell", "attention", "embedding_size", "hidden_size", "num_layers", "bidirectional",
                     "input_feeding", "attention_size", "bridge", "tokens", "normalize", "lowercase",
                     "split_punctuation", "min_freq", "max_vocab", "batch_size",   # batches are rebuilt on resume
                     "layer_norm", "peephole", "variational_dropout", "weight_drop", "zoneout", "tie_embeddings",
                     "lr_decay", "select_by")      # the schedule and the best-model rule carry over a resume

    def __init__(self, *, cell: str = "lstm", attention: str = "general", embedding_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 1, bidirectional: bool = True,
                 input_feeding: Optional[bool] = None, attention_size: Optional[int] = None, bridge: str = "linear",
                 dropout: float = 0.3, layer_norm: bool = False, peephole: bool = False,
                 variational_dropout: float = 0.0, weight_drop: float = 0.0, zoneout: float = 0.0,
                 tie_embeddings: bool = True, tokens: str = "word", normalize: str = "nfkc", lowercase: bool = True,
                 split_punctuation: bool = True, min_freq: int = 1, max_vocab: Optional[int] = None,
                 epochs: Optional[int] = 30, max_steps: Optional[int] = None, max_minutes: Optional[float] = None,
                 batch_size: int = 64, learning_rate: float = 2e-3, lr_decay: str = "cosine",
                 weight_decay: float = 0.0, clip_norm: Optional[float] = 5.0,
                 label_smoothing: float = 0.1, teacher_forcing: float = 1.0,
                 scheduled_sampling: str = "inverse_sigmoid",
                 ss_k: Optional[float] = None, ss_c: float = 1e-4, ss_floor: float = 0.0, sampling: str = "sample",
                 validate_every: Optional[int] = None, early_stopping_patience: Optional[int] = None,
                 select_by: str = "bleu", average_checkpoints: int = 5, bleu_sentences: int = 600,
                 max_length: int = 50,
                 checkpoint_every: Optional[int] = None,
                 random_state: Optional[int] = 0, progress: bool = False):
        # stored verbatim (scikit-learn contract); checked in fit
        params = dict(locals())
        del params["self"]
        for name, value in params.items():
            setattr(self, name, value)

    def _check_params(self) -> None:
        """Refuse hyperparameters that would train nothing or fail late, naming the flag."""
        for name, choices in self._choices.items():
            check_choice(flag_of(name), getattr(self, name), choices)
        if self.input_feeding is not None:
            check_flag(flag_of("input_feeding"), self.input_feeding)
        for name in ("bidirectional", "lowercase", "split_punctuation", "progress", "layer_norm",
                     "peephole", "tie_embeddings"):
            check_flag(flag_of(name), getattr(self, name))
        for name in ("embedding_size", "hidden_size", "num_layers", "batch_size", "min_freq"):
            check_count(flag_of(name), getattr(self, name), 1)
        check_count(flag_of("bleu_sentences"), self.bleu_sentences, 0)
        check_count(flag_of("average_checkpoints"), self.average_checkpoints, 0)
        if check_count(flag_of("max_length"), self.max_length, 1) > MAX_LENGTH:
            raise HyperparameterError(f"{flag_of('max_length')} must be <= {MAX_LENGTH} tokens, got {self.max_length}")
        check_optional_count(flag_of("attention_size"), self.attention_size, 1)
        check_optional_count(flag_of("max_vocab"), self.max_vocab, len(SPECIALS) + 1)  # room for one real token
        for name in ("epochs", "max_steps", "validate_every", "early_stopping_patience", "checkpoint_every"):
            check_optional_count(flag_of(name), getattr(self, name), 1)
        check_optional_real(flag_of("max_minutes"), self.max_minutes, low_open=True)
        check_real(flag_of("learning_rate"), self.learning_rate, low_open=True)
        self._check_weight_decay()
        check_optional_real(flag_of("clip_norm"), self.clip_norm, low_open=True)
        check_probability(flag_of("dropout"), self.dropout)
        for name in ("variational_dropout", "weight_drop", "zoneout"):
            check_probability(flag_of(name), getattr(self, name))
        if self.peephole and (self.cell != "lstm" or self.layer_norm):
            raise HyperparameterError(f"{flag_of('peephole')} applies to --cell lstm without --layer-norm, got --cell "
                                      f"{self.cell}{' with --layer-norm' if self.layer_norm else ''}")
        check_probability(flag_of("label_smoothing"), self.label_smoothing, high_open=False)
        check_probability(flag_of("teacher_forcing"), self.teacher_forcing, high_open=False)
        check_probability(flag_of("ss_floor"), self.ss_floor, high_open=False)
        check_optional_real(flag_of("ss_k"), self.ss_k, low_open=True)
        if self.ss_k is not None and self.scheduled_sampling == "inverse_sigmoid" and self.ss_k < 1:
            raise HyperparameterError(f"{flag_of('ss_k')} must be >= 1 for --scheduled-sampling inverse_sigmoid "
                                      f"(the teacher-forcing probability k / (k + exp(step / k)) starts below 1/2 "
                                      f"otherwise), got {self.ss_k}")
        if self.ss_k is not None and self.scheduled_sampling == "exponential" and self.ss_k > 1:
            raise HyperparameterError(f"{flag_of('ss_k')} must be in (0, 1] for --scheduled-sampling exponential "
                                      f"(the probability k ** step), got {self.ss_k}")
        check_real(flag_of("ss_c"), self.ss_c)
        if self.attention == "dot" and self.bidirectional:
            raise HyperparameterError(f"{flag_of('attention')} dot compares the decoder state with the memory, "
                                      "which a bidirectional encoder makes twice as wide; add --no-bidirectional "
                                      "or use --attention general")
        if self.input_feeding and self.attention == "bahdanau":
            raise HyperparameterError(f"{flag_of('input_feeding')} applies to --attention dot or general; "
                                      "Bahdanau attention already feeds the context into the recurrent input")
        self._check_lr_decay()
        if self.epochs is None and self.max_steps is None and self.max_minutes is None:
            raise HyperparameterError("epochs (--epochs), max_steps (--max-steps) and max_minutes (--max-minutes) "
                                      "are all none: set at least one, or training never ends")

    # -- the contract's hooks ------------------------------------------------
    def _fitted_config(self) -> Dict[str, Any]:
        fitted = {"text": self.text_options_.to_dict(), "src_vocab": list(self.src_vocab_.itos),
                  "tgt_vocab": list(self.tgt_vocab_.itos)}
        if getattr(self, "averaging_", None) is not None:
            fitted["averaging"] = self.averaging_
        return fitted

    def _parameter_shapes(self, fitted: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
        """Every Seq2Seq array by name, from the parameters and the vocabulary sizes (nothing allocated)."""
        self._check_params()
        return seq2seq_shapes(self, len(fitted["src_vocab"]), len(fitted["tgt_vocab"]))

    def _restore(self, fitted: Dict[str, Any], arrays: Dict[str, np.ndarray], meta: Dict[str, Any]) -> None:
        self.text_options_ = TextOptions(**fitted["text"])
        self.src_vocab_, self.tgt_vocab_ = Vocab(fitted["src_vocab"]), Vocab(fitted["tgt_vocab"])
        self.averaging_ = fitted.get("averaging")
        if self.tie_embeddings and not np.array_equal(arrays["decoder.out.weight"], arrays["decoder.embedding.weight"]):
            # the tie is rebuilt from the settings; a file whose two copies differ was edited or damaged
            raise ValueError("tie_embeddings is set but decoder.out.weight differs from decoder.embedding.weight")
        self.model_ = self._build(dtype=np.asarray(arrays["decoder.out.weight"]).dtype, rng=0)
        self.model_.load_state_dict(arrays)
        self.model_.eval()

    def _network_state(self) -> Dict[str, np.ndarray]:
        return self.model_.state_dict()

    def _build(self, dtype=np.float32, rng=None) -> Seq2Seq:
        return Seq2Seq(len(self.src_vocab_), len(self.tgt_vocab_), cell=self.cell, embedding_size=self.embedding_size,
                       hidden_size=self.hidden_size, num_layers=self.num_layers, bidirectional=self.bidirectional,
                       attention=self.attention, attention_size=self.attention_size,
                       input_feeding=feeds(self), bridge=self.bridge, dropout=self.dropout,
                       layer_norm=self.layer_norm, peephole=self.peephole,
                       variational_dropout=self.variational_dropout, weight_drop=self.weight_drop,
                       zoneout=self.zoneout, tie_embeddings=self.tie_embeddings, dtype=dtype, rng=rng)

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
    _FITTED = ("text_options_", "src_vocab_", "tgt_vocab_", "model_", "history_", "averaging_", "unkept_state_")

    def fit(self, train_pairs: Sequence[Pair], valid_pairs: Optional[Sequence[Pair]] = None, *,
            checkpoint_path=None, resume: bool = False, callbacks=()) -> "Translator":
        """Train on ``train_pairs`` [(source, target) strings], validating on ``valid_pairs``; returns self.

        With ``checkpoint_path`` training writes atomic checkpoints (every
        ``checkpoint_every`` steps, at each validation and when interrupted);
        ``resume=True`` continues from it bit for bit after checking it was made
        with the same model settings and data. A fit that fails or is
        interrupted leaves the translator exactly as it was (fitted or not).
        """
        train_pairs = _checked_pairs(train_pairs, "train_pairs")
        valid_pairs = _checked_pairs(valid_pairs or [], "valid_pairs")
        if not train_pairs:
            raise DataError("no training pairs")
        self._check_params()
        previous = {name: self.__dict__[name] for name in self._FITTED if name in self.__dict__}
        try:
            self._fit(train_pairs, valid_pairs, checkpoint_path, resume, callbacks)
        except BaseException:
            # validation and the checkpoints' config read the new state from self: put the old one back
            for name in self._FITTED:
                self.__dict__.pop(name, None)
            self.__dict__.update(previous)
            raise
        return self

    def _fit(self, train_pairs, valid_pairs, checkpoint_path, resume, callbacks) -> None:
        seed = self._seed()
        teacher = self._teacher()
        opts = self._text_options()
        tok = [(tokenize(s, opts), tokenize(t, opts)) for s, t in train_pairs]
        src_vocab = Vocab.build((s for s, _ in tok), min_freq=self.min_freq, max_size=self.max_vocab)
        tgt_vocab = Vocab.build((t for _, t in tok), min_freq=self.min_freq, max_size=self.max_vocab)
        for name in ("history_", "averaging_", "unkept_state_"):   # not fitted until training succeeds
            self.__dict__.pop(name, None)
        self.text_options_, self.src_vocab_, self.tgt_vocab_ = opts, src_vocab, tgt_vocab
        src, tgt = self._encode_pairs(train_pairs)
        shapes = seq2seq_shapes(self, len(src_vocab), len(tgt_vocab))
        self._check_memory(shapes, np.float32, extra_bytes=self._activation_bytes(src, tgt))
        self.model_ = model = self._build(rng=seed)
        optimizer = self._optimizer(model)
        batch_size, label_smoothing, sampling = self.batch_size, self.label_smoothing, self.sampling

        def batches(epoch, rng):
            w = world()   # data-parallel: this rank's share of every batch (rnnkit.distributed)
            return bucket_batches(src, tgt, batch_size, rng, shard=w.shard if w.size > 1 else None)

        schedule = self._lr_schedule(self.epochs, lambda: batches_per_epoch(len(src), batch_size), self.max_steps,
                                     self.max_minutes)

        def step_fn(batch, ctx):
            mask = teacher.mask(ctx.step, batch.tgt_in.shape, ctx.rng)
            return model.loss(batch, teacher=mask, label_smoothing=label_smoothing, rng=ctx.rng, sampling=sampling)

        validate, bleu_pairs = None, []
        if valid_pairs:
            v_src, v_tgt = self._encode_pairs(valid_pairs)
            v_batches = [make_batch(v_src, v_tgt, idx) for idx in _length_sorted_chunks(v_src, 128)]
            bleu_pairs = valid_pairs[:min(self.bleu_sentences, len(valid_pairs))]

            def validate(m):
                out = {"loss": _mean_loss(m, v_batches)}
                if bleu_pairs:
                    out["bleu"] = self._evaluate(bleu_pairs, with_loss=False)["bleu"]
                return out

        monitor = "bleu" if self.select_by == "bleu" and bleu_pairs else "loss"
        averager = None
        if self.average_checkpoints > 1 and validate is not None:
            # a callback: it copies parameters at validations and touches no random stream
            averager = CheckpointAverager(self.average_checkpoints, monitor=monitor, maximize=monitor == "bleu")
            callbacks = list(callbacks) + [averager]
        data = fingerprint("\x1e".join(f"{s}\x1f{t}" for s, t in train_pairs),
                           "\x1e".join(f"{s}\x1f{t}" for s, t in valid_pairs))
        history = self._fit_loop(
            model, optimizer, step_fn, batches, seed=seed, checkpoint_path=checkpoint_path, resume=resume,
            data_fingerprint=data, checkpoint_every=self.checkpoint_every, epochs=self.epochs,
            max_steps=self.max_steps, max_minutes=self.max_minutes, clip_norm=self.clip_norm, schedule=schedule,
            validate=validate, validate_every=self.validate_every,
            early_stopping_patience=self.early_stopping_patience,
            monitor=monitor, maximize=monitor == "bleu",
            callbacks=callbacks, progress=self.progress)
        model.eval()
        if averager is not None and len(averager.snapshots) > 1 and history.best_step is not None:
            self.averaging_ = self._average(model, averager, validate, history)
        self.history_ = history

    def _average(self, model, averager: CheckpointAverager, validate, history) -> Dict[str, Any]:
        """Validate the average of the kept snapshots; keep it in ``model`` only if it beats the best single one.

        ``model`` holds the best validation's parameters (``restore_best``). The other candidate is kept in
        ``unkept_state_`` (not saved) so a benchmark can score both.
        """
        best = next(m for s, m in reversed(history.val) if s == history.best_step)
        info, self.unkept_state_ = keep_better_average(model, averager, validate, best)
        return info

    def _activation_bytes(self, src, tgt) -> int:
        """A rough size of one batch's activations: the logits and their gradient, and the gates of every step."""
        S, T = max(map(len, src)) + 1, max(map(len, tgt)) + 1
        N, H, L = self.batch_size, self.hidden_size, self.num_layers
        K = 2 if self.bidirectional else 1
        G = GATES[CELL_MODES[self.cell]]
        return 4 * N * (3 * T * len(self.tgt_vocab_) + 3 * (S * K + T) * L * (G + 2) * H)

    # -- translation ---------------------------------------------------------
    def translate(self, sentences: Sequence[str], *, beam: int = 1, n_best: int = 1, length_penalty: float = 0.0,
                  max_length: Optional[int] = None, batch_size: int = 64) -> List[List[Translation]]:
        """The ``n_best`` translations of each sentence (beam search when ``beam`` > 1), best first.

        ``sentences``: a list of strings, or one string (one sentence, as :func:`rnnkit.translate.translate`
        takes it: a string is not read as its characters); one list of translations per sentence.
        """
        self._check_fitted()
        check_decoding(beam=beam, n_best=n_best, length_penalty=length_penalty, max_length=max_length)
        check_count(flag_of("batch_size"), batch_size, 1)
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        for i, s in enumerate(sentences):
            if not isinstance(s, str):
                raise DataError(f"sentence {i + 1} is a {type(s).__name__}, not a str: pass the sentences as text")
        if not sentences:
            return []
        return self._translate(sentences, beam, n_best, length_penalty, max_length, batch_size)

    def _translate(self, sentences, beam=1, n_best=1, length_penalty=0.0, max_length=None, batch_size=64):
        max_length = self.max_length if max_length is None else max_length
        opts = self.text_options_
        src_tokens = [tokenize(s, opts) for s in sentences]
        for i, t in enumerate(src_tokens):
            if not t:
                raise DataError(f"sentence {i + 1} is empty: nothing to translate")
        encoded = [self.src_vocab_.encode(t) for t in src_tokens]
        ids = [e[0] for e in encoded]
        results: List[Optional[List[Translation]]] = [None] * len(sentences)
        # N sentences run as N*beam rows: keep a batch's rows near batch_size
        chunks = _length_sorted_chunks(ids, max(1, batch_size // beam))
        self._check_decoding_memory(ids, chunks, beam, max_length)
        for idx in chunks:
            b = make_batch(ids, None, idx)
            if beam == 1:
                hyps = [[h] for h in greedy(self.model_, b.src, b.src_len, max_length)]
            else:
                hyps = beam_search(self.model_, b.src, b.src_len, beam, n_best, length_penalty, max_length)
            for i, hs in zip(idx, hyps):
                results[i] = [self._translation(h, src_tokens[i], encoded[i][1]) for h in hs]
        return results

    def _check_decoding_memory(self, ids, chunks, beam: int, max_length: int) -> None:
        """Refuse, before decoding, a search whose kept arrays (see :func:`decoding_bytes`) exceed the memory."""
        K = 2 if self.bidirectional else 1
        need = max(decoding_bytes(len(idx), beam, max_length, max(len(ids[i]) for i in idx), self.hidden_size,
                                  K, int(self.attention_size or self.hidden_size), self.num_layers,
                                  len(self.tgt_vocab_)) for idx in chunks)
        have = available_memory()
        if have is not None and need > have:
            raise HyperparameterError(
                f"decoding with {flag_of('beam')} {beam} and {flag_of('max_length')} {max_length} needs about "
                f"{format_bytes(need)} of memory, but {format_bytes(have)} is available; choose a smaller --beam or --max-length")

    def _translation(self, h, src_tokens, unknown) -> Translation:
        tokens = self.tgt_vocab_.decode(h.tokens)
        return Translation(detokenize(tokens, self.text_options_), tokens, h.log_prob, h.score, h.weights,
                           src_tokens, unknown)

    def evaluate(self, pairs: Sequence[Pair], *, beam: int = 1, length_penalty: float = 0.0,
                 max_length: Optional[int] = None, with_loss: bool = True) -> Dict[str, float]:
        """BLEU, chrF, exact-match rate (%) and, with ``with_loss``, the teacher-forced loss on ``pairs``."""
        self._check_fitted()
        check_decoding(beam=beam, length_penalty=length_penalty, max_length=max_length)
        return self._evaluate(_checked_pairs(pairs, "pairs"), beam=beam, length_penalty=length_penalty,
                              max_length=max_length, with_loss=with_loss)

    def _evaluate(self, pairs, *, beam=1, length_penalty=0.0, max_length=None, with_loss=True):
        if not pairs:
            raise DataError("no pairs to evaluate")
        hyps = [r[0].text for r in self._translate([s for s, _ in pairs], beam, 1, length_penalty, max_length)]
        refs = [detokenize(tokenize(t, self.text_options_), self.text_options_) for _, t in pairs]
        out = scores(hyps, refs)
        out["n"] = len(pairs)
        if with_loss:
            src, tgt = self._encode_pairs(pairs)
            out["loss"] = _mean_loss(self.model_, [make_batch(src, tgt, i) for i in _length_sorted_chunks(src, 128)])
        return out


def _length_sorted_chunks(ids: Sequence[Sequence[int]], size: int) -> List[np.ndarray]:
    """Index chunks of similar source length (less padding), covering every index once."""
    order = np.argsort([len(s) for s in ids], kind="stable")
    return [order[i:i + size] for i in range(0, len(order), size)]


def _mean_loss(model, batches) -> float:
    """Token-weighted teacher-forced cross-entropy, in eval mode, without gradients."""
    total = n = 0
    with model.eval_mode():
        for b in batches:
            loss, count = model.loss(b, backward=False)
            total += loss * count
            n += count
    return total / max(n, 1)

