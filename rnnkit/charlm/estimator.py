r"""``CharModel``: the character language model with the shared estimator contract.

``CharModel(...).fit(text)`` learns :math:`p(c_{t+1} \mid c_{\le t})` over the
characters of one string with stateful truncated BPTT (see :mod:`.data` and
:mod:`.training`), ``sample`` / ``sample_stream`` generate text, ``score``
reports

.. math::
    \text{loss} = -\frac{1}{M}\sum_{i=1}^{M} \log p(c_i \mid c_{<i}),\quad
    \text{bits/char} = \text{loss} / \ln 2,\quad \text{perplexity} = e^{\text{loss}}

and ``save`` / ``CharModel.load`` / ``rnnkit.load`` keep it in a model file of
kind "charlm" (config: the parameters, the vocabulary; arrays: ``embed.weight``,
``rnn.*``, ``head.*``). :func:`rnnkit.charlm.train` and the ``rnnkit charlm``
commands are thin wrappers over this class::

    from rnnkit.charlm import CharModel
    lm = CharModel(hidden_size=128, num_layers=1, max_minutes=5, progress=True).fit(text)
    print(lm.sample(prime="The ", length=200, random_state=1))
    print(lm.score(other_text))        # {"loss": ..., "bits_per_char": ..., "perplexity": ..., "chars": ...}

``CharModel(device="cuda")`` trains on a GPU through CuPy (the ``gpu`` extra): the
network is initialised on the host from the seed, as on the CPU, then moved;
model files always hold host arrays, and a loaded model is on the host
(``lm.to("cuda")`` moves it).
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np

from ..checks import (check_choice, check_count, check_flag, check_optional_count, check_optional_real, check_real,
                      check_seed)
from ..distributed import on_every_rank
from ..errors import DataError, HyperparameterError
from ..estimator import Estimator, fingerprint, flag_of
from ..nn.shapes import GATES, MAX_LAYERS, embedding_shapes, linear_shapes, recurrent_shapes
from ..nn.xp import DeviceError, device_namespace, host_copy
from ..train.averaging import CheckpointAverager, keep_better_average
from ..train.progress import say
from .data import Vocab, split_text
from .generate import MAX_LENGTH, beam_search, check_sampling, stream
from .model import CELLS, MODES, CharLM
from .training import evaluate_ids, make_batches, make_step_fn

__all__ = ["CharModel", "DEFAULT_EPOCHS", "check_score_args"]

DEFAULT_EPOCHS = 10        # when epochs, max_steps and max_minutes are all None
_DTYPES = ("float32", "float64")


def check_score_args(batch_size: int, seq_len: int) -> None:
    """The streams and chunk length of an evaluation (``rnnkit charlm eval --batch-size --seq-len``)."""
    check_count(flag_of("batch_size"), batch_size, 1)
    check_count(flag_of("seq_len"), seq_len, 1)


class CharModel(Estimator):
    """Character-level language model: embedding, stacked LSTM/GRU/RNN, dropout, linear (char-rnn).

    ``fit(text)`` holds out the text's *end*, contiguously: the last
    ``test_fraction`` is the test split, the ``validation_fraction`` before it
    the validation split, the rest (the beginning) is trained on. Training
    streams ``batch_size`` parallel positions through the text in chunks of
    ``seq_len`` characters, carrying the state from chunk to chunk; it validates
    (with a printed sample when ``progress``) at every epoch's end and every
    ``validate_every`` steps, and keeps the best validated parameters unless the
    final ones score lower on the validation text, or the mean of the
    ``average_checkpoints`` best validations' parameters lower still.

    Parameters
    ----------
    cell : recurrent cell: lstm, gru or rnn (tanh)
    hidden_size : units per recurrent layer (H)
    num_layers : stacked recurrent layers (L)
    embedding_size : size of the learned character embedding (0 = one-hot inputs)
    dropout : dropout probability between recurrent layers and before the output layer
    proj_size : LSTM only: project h to this many units (0 = none), as PyTorch's nn.LSTM(proj_size)
    peephole : LSTM only: peephole connections from the cell state to the input, forget and output gates
    layer_norm : layer-normalised LSTM or GRU cells (Ba et al. 2016): both products and LSTM's cell state
    variational_dropout : probability of variational recurrent dropout (Gal and Ghahramani 2016): one
        mask per sequence on each recurrent layer's input and on h(t-1), the same at every step
    weight_drop : probability of DropConnect on the recurrent weights W_hh (AWD-LSTM's weight drop),
        one mask per training step
    zoneout : probability that a recurrent unit keeps its previous value at a training step (Krueger
        et al. 2017; the expectation at evaluation)
    seq_len : characters per truncated-BPTT chunk (T); the state is carried across chunks
    batch_size : parallel streams through the text (N)
    learning_rate : learning rate of Adam (of AdamW with weight_decay)
    lr_decay : none, or cosine: anneal the learning rate to learning_rate/20 over the run's steps
        (--epochs or --max-steps, the fewer steps), or with --max-minutes alone over those minutes
    weight_decay : decoupled weight decay (AdamW, Loshchilov and Hutter 2019) of the weight matrices and
        embeddings, not the biases and gains: each step multiplies them by 1 - lr * weight_decay (0: Adam)
    clip_norm : clip the global gradient norm to this (none = no clipping)
    epochs : stop after this many passes over the training text (10 when epochs, max-steps
        and max-minutes are all unset)
    max_steps : stop after this many optimiser steps (counted across resumes)
    max_minutes : stop after this many minutes of training
    validation_fraction : share of the text before the test split held out for validation
    test_fraction : share at the very end of the text held out as a test split (0 = none)
    validate_every : steps between validations and samples (besides every epoch's end)
    average_checkpoints : checkpoint averaging: at the end, average the parameters of this many best
        validations (the final parameters' validation among them) and keep the average only if its
        validation loss is lower than the kept single model's (0 or 1: off; needs a validation split)
    checkpoint_every : steps between checkpoints of a run with a checkpoint (every ``train``, beside
        --out); none = only at each epoch's end. One is also written when training stops and on Ctrl-C
        or SIGTERM
    sample_length : characters sampled at each validation and at the end (0 = none)
    temperature : temperature of those samples (0 = greedy)
    random_state : seed of the initialisation, dropout and samples (none = fresh entropy)
    dtype : float32 or float64: the network's number type (float64: exact comparisons, such as a
        data-parallel run against one process; twice the memory and slower)
    progress : progress bar, notes and samples on stderr while training
    device : where fit trains the network: cpu, cuda or cuda:K (an NVIDIA GPU through CuPy, the gpu
        extra: pip install 'rnnkit[gpu]'); model files always hold host arrays and load on the cpu

    Attributes (after fit or load)
    ------------------------------
    model_ : the :class:`~rnnkit.charlm.model.CharLM` network. vocab_ : its
    :class:`~rnnkit.charlm.data.Vocab`. history_ : the training
    :class:`~rnnkit.train.History`. meta_ : facts about the run (``valid``,
    ``test`` and ``final_valid`` metrics, ``saved_step``: the step of the kept parameters, or none when
    they are a checkpoint average; ``averaging``: the average's steps and validation against the single
    model's, and which was kept; ``data_chars``).
    """

    kind = "charlm"
    # the carried TBPTT state is (L, batch_size, H) and the chunks follow seq_len: a resumed
    # run must keep them, and the split fractions, to continue the same run
    _size_flags = ("--hidden-size", "--num-layers", "--embedding-size", "--batch-size", "--seq-len")
    # files written before checkpoint averaging existed were trained without it (a default since 2026-12-02)
    _absent_params = {"average_checkpoints": 0}
    _resume_fixed = ("cell", "hidden_size", "num_layers", "embedding_size", "dropout", "seq_len", "batch_size",
                     "validation_fraction", "test_fraction", "dtype", "proj_size", "peephole", "layer_norm",
                     "variational_dropout", "weight_drop", "zoneout")
    _choices = {"cell": CELLS, "lr_decay": ("none", "cosine"), "dtype": _DTYPES}

    def __init__(self, *, cell: str = "lstm", hidden_size: int = 256, num_layers: int = 2,
                 embedding_size: int = 64, dropout: float = 0.0, proj_size: int = 0, peephole: bool = False,
                 layer_norm: bool = False,
                 variational_dropout: float = 0.0, weight_drop: float = 0.0, zoneout: float = 0.0,
                 seq_len: int = 100, batch_size: int = 32,
                 learning_rate: float = 2e-3, lr_decay: str = "none", weight_decay: float = 0.0,
                 clip_norm: Optional[float] = 5.0,
                 epochs: Optional[int] = None, max_steps: Optional[int] = None,
                 max_minutes: Optional[float] = None, validation_fraction: float = 0.1,
                 test_fraction: float = 0.0, validate_every: Optional[int] = None,
                 average_checkpoints: int = 5, checkpoint_every: Optional[int] = 100, sample_length: int = 200,
                 temperature: float = 0.8,
                 random_state: Optional[int] = 0, dtype: str = "float32", progress: bool = False,
                 device: str = "cpu"):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.embedding_size = embedding_size
        self.dropout = dropout
        self.proj_size = proj_size
        self.peephole = peephole
        self.layer_norm = layer_norm
        self.variational_dropout = variational_dropout
        self.weight_drop = weight_drop
        self.zoneout = zoneout
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.epochs = epochs
        self.max_steps = max_steps
        self.max_minutes = max_minutes
        self.validation_fraction = validation_fraction
        self.test_fraction = test_fraction
        self.validate_every = validate_every
        self.average_checkpoints = average_checkpoints
        self.checkpoint_every = checkpoint_every
        self.sample_length = sample_length
        self.temperature = temperature
        self.random_state = random_state
        self.dtype = dtype
        self.progress = progress
        self.device = device

    # -- checks -------------------------------------------------------------------
    def _check_params(self) -> None:
        """Every hyperparameter, with its flag in the message (before any data is touched)."""
        check_choice(flag_of("cell"), self.cell, CELLS)
        check_count(flag_of("hidden_size"), self.hidden_size, 1)
        if check_count(flag_of("num_layers"), self.num_layers, 1) > MAX_LAYERS:
            raise HyperparameterError(f"{flag_of('num_layers')} must be <= {MAX_LAYERS}, got {self.num_layers!r}")
        check_count(flag_of("embedding_size"), self.embedding_size, 0)
        check_real(flag_of("dropout"), self.dropout, 0.0, 1.0, high_open=True)
        if check_flag(flag_of("peephole"), self.peephole) and self.cell != "lstm":
            raise HyperparameterError(f"{flag_of('peephole')} applies to --cell lstm only, got --cell {self.cell}")
        if check_flag(flag_of("layer_norm"), self.layer_norm) and self.cell == "rnn":
            raise HyperparameterError(f"{flag_of('layer_norm')} applies to --cell lstm or gru, got --cell rnn")
        if self.layer_norm and self.peephole:
            raise HyperparameterError(f"{flag_of('layer_norm')} and {flag_of('peephole')} together are not supported")
        for name in ("variational_dropout", "weight_drop", "zoneout"):
            check_real(flag_of(name), getattr(self, name), 0.0, 1.0, high_open=True)
        if check_count(flag_of("proj_size"), self.proj_size, 0):
            if self.cell != "lstm":
                raise HyperparameterError(f"{flag_of('proj_size')} applies to --cell lstm only, got --cell {self.cell}")
            if self.proj_size >= self.hidden_size:
                raise HyperparameterError(f"{flag_of('proj_size')} must be smaller than --hidden-size "
                                          f"({self.hidden_size}), got {self.proj_size}")
        check_count(flag_of("seq_len"), self.seq_len, 1)
        check_count(flag_of("batch_size"), self.batch_size, 1)
        check_real(flag_of("learning_rate"), self.learning_rate, low_open=True)
        check_choice(flag_of("lr_decay"), self.lr_decay, self._choices["lr_decay"])
        self._check_weight_decay()
        check_optional_real(flag_of("clip_norm"), self.clip_norm, low_open=True)
        for name in ("epochs", "max_steps", "validate_every", "checkpoint_every"):
            check_optional_count(flag_of(name), getattr(self, name), 1)
        check_count(flag_of("average_checkpoints"), self.average_checkpoints, 0)
        check_optional_real(flag_of("max_minutes"), self.max_minutes, low_open=True)
        split_text("", self.validation_fraction, self.test_fraction)      # checks both fractions
        if self.validate_every is not None and self.validation_fraction == 0:
            raise HyperparameterError(f"{flag_of('validate_every')} {self.validate_every} has nothing to validate: "
                                      f"{flag_of('validation_fraction')} is 0; give a fraction, or leave "
                                      "--validate-every out")
        if check_count(flag_of("sample_length"), self.sample_length, 0) > MAX_LENGTH:
            raise HyperparameterError(f"{flag_of('sample_length')} must be <= {MAX_LENGTH:,}, "
                                      f"got {self.sample_length!r}")
        check_real(flag_of("temperature"), self.temperature, 0.0)
        check_choice(flag_of("dtype"), self.dtype, _DTYPES)
        check_flag(flag_of("progress"), self.progress)
        check_seed(flag_of("random_state"), self.random_state)
        self._device()
        self._check_lr_decay()

    def _device(self):
        """``(xp, device)`` of the ``device`` setting; a missing CuPy or GPU is one line naming the flag and the fix."""
        try:
            xp, dev = device_namespace(self.device)
        except DeviceError as e:
            raise DeviceError(f"{flag_of('device')}: {e}") from None
        if hasattr(dev, "use"):         # CuPy: make GPU K current, so new arrays and kernels go there, not to GPU 0
            dev.use()
        return xp, dev

    def to(self, device) -> "CharModel":
        """Move the fitted network to ``device`` ("cpu", "cuda", "cuda:K"), set ``device``; returns self."""
        self._check_fitted()
        previous, self.device = self.device, device
        try:
            _, dev = self._device()
        except DeviceError:
            self.device = previous                  # a refused device changes nothing
            raise
        self.model_.to(dev)
        return self

    def _stopping(self) -> Tuple[Optional[int], Optional[int], Optional[float]]:
        if self.epochs is None and self.max_steps is None and self.max_minutes is None:
            return DEFAULT_EPOCHS, None, None
        return self.epochs, self.max_steps, self.max_minutes

    # -- the Estimator hooks ---------------------------------------------------------
    def _fitted_config(self) -> Dict[str, Any]:
        return {"vocab": list(self.vocab_.chars), "dtype": self.model_.dtype.name}

    def _parameter_shapes(self, fitted: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
        """embed.weight (V, E), rnn.* (PyTorch's names), head.weight (V, H), head.bias (V,); nothing allocated."""
        V, E, H = len(fitted["vocab"]), int(self.embedding_size), int(self.hidden_size)
        check_choice(flag_of("cell"), self.cell, CELLS)
        shapes = embedding_shapes("embed.", V, E) if E else {}
        P = int(self.proj_size or 0)
        shapes.update(recurrent_shapes("rnn.", MODES[self.cell], E or V, H, int(self.num_layers), proj_size=P,
                                       peephole=bool(self.peephole), layer_norm=bool(self.layer_norm)))
        shapes.update(linear_shapes("head.", P or H, V))
        return shapes

    def _restore(self, fitted: Dict[str, Any], arrays: Dict[str, np.ndarray], meta: Dict[str, Any]) -> None:
        dtype = check_choice("the file's dtype", fitted.get("dtype", "float32"), _DTYPES)
        self.vocab_ = Vocab(fitted["vocab"])
        self.model_ = CharLM(self.vocab_, cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
                             embedding_size=self.embedding_size, dropout=self.dropout, dtype=dtype, rng=0,
                             **self._variant_kw())
        self.model_.load_state_dict(arrays)
        self.model_.eval()
        self.device = "cpu"       # files hold host arrays: the loaded network is on the host until .to(device)

    def _variant_kw(self) -> Dict[str, Any]:
        return dict(proj_size=self.proj_size, peephole=self.peephole, layer_norm=self.layer_norm,
                    variational_dropout=self.variational_dropout,
                    weight_drop=self.weight_drop, zoneout=self.zoneout)

    def _network_state(self) -> Dict[str, np.ndarray]:
        """Host copies of every parameter (wherever the network is), by their state_dict names."""
        return {name: host_copy(p.data) for name, p in self.model_.named_parameters(remove_duplicate=False)}

    def _file_config(self, fitted=None) -> Dict[str, Any]:
        config = super()._file_config(fitted)
        if not isinstance(config["params"].get("device"), str):    # a library's device object is not JSON
            config["params"]["device"] = str(self.device)
        return config

    def _activation_bytes(self, V: int, itemsize: int, stream_len: Optional[int] = None) -> int:
        """Bytes one training step keeps for backward: T*N*(L*(G+2)*H + D + 3V) values (caches, logits, grads).

        T is ``seq_len``, or the streams' length when shorter (a chunk never outgrows its stream).
        """
        T = min(self.seq_len, stream_len) if stream_len else self.seq_len
        N, H, L, E = self.batch_size, self.hidden_size, self.num_layers, self.embedding_size
        G = GATES[MODES[self.cell]]
        return T * N * (L * (G + 2) * H + (E or V) + 3 * V) * itemsize

    # -- training ----------------------------------------------------------------------
    def fit(self, text: str, *, checkpoint_path=None, resume: bool = False) -> "CharModel":
        """Train on ``text`` (one string); returns self.

        The validation and test splits are cut off the *end* of the text, contiguously
        (see the class docstring). With ``checkpoint_path``, atomic checkpoints
        are written every ``checkpoint_every`` steps, at the end and on Ctrl-C or
        SIGTERM; ``resume=True`` continues from it bit for bit (it must come from
        the same settings and text: a differing flag is named).
        """
        self._check_params()
        check_flag(flag_of("resume"), resume)
        if not isinstance(text, str):
            raise DataError(f"text: expected a str, got {type(text).__name__}; read files with "
                            "rnnkit.charlm.data.read_text or call rnnkit.charlm.train(path)")
        seed = self._seed()
        epochs, max_steps, max_minutes = self._stopping()
        train_text, valid_text, test_text = split_text(text, self.validation_fraction, self.test_fraction)
        vocab = Vocab.from_text(text)
        batches = make_batches(vocab.encode(train_text), self.batch_size, self.seq_len)   # text long enough?
        valid_ids = vocab.encode(valid_text) if len(valid_text) > 1 else None
        shapes = self._parameter_shapes({"vocab": vocab.chars})
        itemsize = np.dtype(self.dtype).itemsize
        stream_len = max(1, (len(train_text) - 1) // self.batch_size)        # characters per stream
        self._check_memory(shapes, self.dtype, self._activation_bytes(len(vocab), itemsize, stream_len))

        model = CharLM(vocab, cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
                       embedding_size=self.embedding_size, dropout=self.dropout, dtype=self.dtype,
                       rng=np.random.default_rng([seed, 7]), **self._variant_kw())
        _, device = self._device()
        if device != "cpu":     # initialised on the host from the seed, like a CPU run, then moved
            model.to(device)
        optimizer = self._optimizer(model)                            # its state is allocated beside them
        schedule = self._lr_schedule(epochs, lambda: len(batches(0, None)), max_steps, max_minutes)
        if self.progress:
            say(f"charlm: {len(text):,} characters ({len(vocab)} distinct; train {len(train_text):,}, "
                 f"validation {len(valid_text):,}{f', test {len(test_text):,}' if test_text else ''}); "
                 f"{self.cell.upper()} {self.num_layers}x{self.hidden_size}, {model.num_parameters():,} parameters; "
                 "stopping after " + ", ".join(f"{v} {k}" for k, v in (("epochs", epochs), ("steps", max_steps),
                                                                      ("minutes", max_minutes)) if v is not None))
        validate = None
        if valid_ids is not None:
            # N streams instead of one: N times fewer sequential steps, a negligible cold-start cost
            n = min(self.batch_size, len(valid_ids) - 1)
            # in a data-parallel run every rank validates its share of the streams (on_every_rank)
            validate = on_every_rank(lambda m: evaluate_ids(m, valid_ids, batch=n, seq_len=self.seq_len,
                                                            shared=True))
        final = {}
        averager = None
        if self.average_checkpoints > 1 and validate is not None:
            # copies the parameters at validations; it touches no random stream, so training is unchanged
            averager = CheckpointAverager(self.average_checkpoints)

        def on_event(event, info):
            if event == "validate" and self.progress and self.sample_length:
                sample = "".join(stream(model, "", self.sample_length, self.temperature, seed=seed))
                say(f"--- sample at step {info['step']} ---\n{sample}\n---")
            elif event == "end":                    # before fit() restores the best validated parameters
                final["state"] = model.state_dict()

        # the checkpoints carry the new vocabulary; the fitted attributes change only on success
        history = self._fit_loop(
            model, optimizer, make_step_fn(model), batches, seed=seed, checkpoint_path=checkpoint_path,
            resume=resume, data_fingerprint=fingerprint(text), checkpoint_every=self.checkpoint_every,
            fitted={"vocab": list(vocab.chars), "dtype": model.dtype.name},
            epochs=epochs, max_steps=max_steps, max_minutes=max_minutes, clip_norm=self.clip_norm,
            schedule=schedule, validate=validate, validate_every=self.validate_every if validate else None,
            callbacks=[on_event] + ([averager] if averager else []), progress=self.progress, unit="char")
        model.eval()
        valid = validate(model) if validate else None
        saved_step, last = (history.best_step if valid is not None else history.steps), None
        validated = dict(history.val)                  # step -> metrics of the validations made in training
        if valid is not None and history.best_step != history.steps and history.steps in validated:
            last = validated[history.steps]            # the final step was validated (and the averager offered it)
        elif valid is not None and history.best_step != history.steps and "state" in final:
            # a time or step budget usually stops between validations: also try the final parameters
            best = model.state_dict()
            model.load_state_dict(final["state"])
            last = validate(model)
            if averager is not None:        # the final parameters are a candidate for the average too
                averager.offer(history.steps, model, last)
            if last["loss"] <= valid["loss"]:
                valid, saved_step = last, history.steps
            else:
                model.load_state_dict(best)
        averaging = None
        if averager is not None and len(averager.snapshots) > 1 and valid is not None:
            averaging, _ = keep_better_average(model, averager, validate, valid)
            if averaging["kept"] == "averaged":
                valid, saved_step = averaging["averaged"], None      # no single step: the mean of averaging["steps"]
        test = None
        if len(test_text) > 1:
            test_ids = vocab.encode(test_text)
            test = evaluate_ids(model, test_ids, batch=min(self.batch_size, len(test_ids) - 1), seq_len=self.seq_len,
                                shared=True)
        # only now, after everything that can fail: a failed re-fit leaves a fitted model exactly as it was
        self.vocab_, self.model_, self.history_ = vocab, model, history
        self.meta_ = {"data_chars": len(text), "valid": valid, "test": test, "final_valid": last,
                      "saved_step": saved_step, "averaging": averaging}
        return self

    # -- using the model ------------------------------------------------------------------
    def sample_stream(self, prime: str = "", length: int = 500, temperature: float = 0.8, top_k: int = 0,
                      top_p: float = 1.0, random_state=None) -> Iterator[str]:
        """The characters of :meth:`sample` one at a time (settings and prime checked before the first)."""
        self._check_fitted()
        rng = np.random.default_rng(check_seed(flag_of("random_state"), random_state))
        return stream(self.model_, prime, length, temperature, top_k or None, top_p, rng)

    def sample(self, prime: str = "", length: int = 500, temperature: float = 0.8, top_k: int = 0,
               top_p: float = 1.0, random_state=None, beam: Optional[int] = None) -> str:
        """``length`` characters continuing ``prime`` (the prime itself is not included).

        ``beam`` None samples: ``temperature`` 0 is greedy decoding; ``top_k``
        (0 = off) and ``top_p`` (1 = off) restrict the draw; the same
        ``random_state`` gives the same text (None: fresh entropy). ``beam`` N
        (1 to 1,000) is beam search with N beams instead, as in ``rnnkit
        translate``: the most likely continuation found, no randomness (1 =
        greedy). ``length`` is at most 10^7; prime characters the model does not
        know are an error.
        """
        self._check_fitted()
        if beam is not None:
            check_sampling(length, temperature, top_k, top_p)   # unused by the search, but never wrong
            check_seed(flag_of("random_state"), random_state)
            return beam_search(self.model_, prime, length, beam)[0]
        return "".join(self.sample_stream(prime, length, temperature, top_k, top_p, random_state))

    def score(self, text: str, *, batch_size: int = 1, seq_len: int = 100, what: str = "the text") -> Dict[str, float]:
        """Loss (nats/char), bits_per_char, perplexity and chars (characters predicted) on ``text``.

        ``batch_size=1`` evaluates the text in one exact pass (every character
        predicted from everything before it); N runs N streams in parallel,
        faster, each starting from a zero state. ``what`` names the text in messages.
        """
        self._check_fitted()
        check_score_args(batch_size, seq_len)
        if not isinstance(text, str) or len(text) < 2:
            raise DataError(f"{what} has {len(text) if isinstance(text, str) else 0} character(s); "
                            "scoring needs at least 2")
        ids = self.vocab_.encode(text, what=what)
        return evaluate_ids(self.model_, ids, batch=min(batch_size, len(ids) - 1), seq_len=seq_len)
