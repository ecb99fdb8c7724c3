r"""``MusicModel``: polyphonic music modelling on the shared estimator contract.

``MusicModel(...).fit(rolls)`` learns :math:`p(v_{t+1} \mid v_{\le t})` over
88-key piano rolls (:mod:`.model`: one sigmoid per key), ``score`` reports the
negative log-likelihood per predicted time step summed over the keys (nats),
``sample`` draws a new roll, and ``save`` / ``MusicModel.load`` /
``rnnkit.load`` keep it in a model file of kind "music"::

    from rnnkit.music import MusicModel, read_rolls
    data = read_rolls("JSB_Chorales.mat")                 # {"train", "valid", "test"}
    m = MusicModel(cell="gru", max_minutes=5).fit(data["train"], valid=data["valid"])
    print(m.score(data["test"]))                          # {"nll": ..., "steps": ...}
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..checks import (check_choice, check_count, check_flag, check_optional_count, check_optional_real, check_real,
                      check_seed)
from ..errors import HyperparameterError
from ..estimator import Estimator, fingerprint, flag_of
from ..nn.shapes import CELL_MODES, GATES, MAX_LAYERS, linear_shapes, recurrent_shapes
from ..train.progress import say
from .data import KEYS, check_rolls, predicted_steps
from .model import MusicNet

__all__ = ["MusicModel", "CHUNG_UNITS", "DEFAULT_EPOCHS", "MAX_SAMPLE_STEPS"]

# Chung et al. (2014)'s ~20K-parameter models: units per cell
CHUNG_UNITS = {"rnn": 100, "gru": 46, "lstm": 36}
DEFAULT_EPOCHS = 20
MAX_SAMPLE_STEPS = 100_000
_EVAL_BATCH = 32


class MusicModel(Estimator):
    """Polyphonic music model: a recurrent stack over 88-key piano rolls, one sigmoid per key.

    Training draws ``batch_size`` windows of ``seq_len`` + 1 steps from random
    training pieces (a whole piece when shorter), each from a zero state; an
    epoch covers about as many steps as the training pieces hold. With
    validation pieces it keeps the parameters of the best validation NLL.

    Parameters
    ----------
    cell : recurrent cell: lstm, gru or rnn (tanh)
    hidden_size : units per recurrent layer (H); none = Chung et al.'s ~20K-parameter sizes
        (rnn 100, gru 46, lstm 36)
    num_layers : stacked recurrent layers (L)
    seq_len : time steps per training window
    batch_size : windows per optimiser step (N)
    learning_rate : learning rate of Adam (of AdamW with weight_decay)
    lr_decay : none, or cosine: anneal the learning rate to learning_rate/20 over the run's steps
        (--epochs or --max-steps, the fewer steps), or with --max-minutes alone over those minutes
    weight_decay : decoupled weight decay (AdamW, Loshchilov and Hutter 2019) of the weight matrices, not the
        biases: each step multiplies them by 1 - lr * weight_decay (0: Adam)
    clip_norm : clip the global gradient norm to this (none = no clipping)
    epochs : stop after this many passes (20 when epochs, max-steps and max-minutes are all unset)
    max_steps : stop after this many optimiser steps (counted across resumes)
    max_minutes : stop after this many minutes of training
    validation_fraction : share of the training pieces (the last ones) held out for validation instead of the
        data file's own validation pieces; none = the file's validation pieces
    validate_every : steps between validations (besides every epoch's end)
    checkpoint_every : steps between checkpoints (none = only at each epoch's end)
    random_state : seed of the initialisation and the windows (none = fresh entropy)
    progress : progress bar and notes on stderr while training
    """

    kind = "music"
    _size_flags = ("--hidden-size", "--num-layers", "--batch-size", "--seq-len")
    _resume_fixed = ("cell", "hidden_size", "num_layers", "seq_len", "batch_size", "validation_fraction")
    _choices = {"cell": tuple(CELL_MODES), "lr_decay": ("none", "cosine")}

    def __init__(self, *, cell: str = "lstm", hidden_size: Optional[int] = None, num_layers: int = 1,
                 seq_len: int = 100, batch_size: int = 16, learning_rate: float = 3e-3, lr_decay: str = "none",
                 weight_decay: float = 0.0, clip_norm: Optional[float] = 1.0, epochs: Optional[int] = None,
                 max_steps: Optional[int] = None,
                 max_minutes: Optional[float] = None, validation_fraction: Optional[float] = None,
                 validate_every: Optional[int] = None,
                 checkpoint_every: Optional[int] = 200, random_state: Optional[int] = 0, progress: bool = False):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
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
        self.validate_every = validate_every
        self.checkpoint_every = checkpoint_every
        self.random_state = random_state
        self.progress = progress

    # -- checks -------------------------------------------------------------------
    def _check_params(self) -> None:
        check_choice(flag_of("cell"), self.cell, self._choices["cell"])
        check_optional_count(flag_of("hidden_size"), self.hidden_size, 1)
        if check_count(flag_of("num_layers"), self.num_layers, 1) > MAX_LAYERS:
            raise HyperparameterError(f"{flag_of('num_layers')} must be <= {MAX_LAYERS}, got {self.num_layers!r}")
        check_count(flag_of("seq_len"), self.seq_len, 1)
        check_count(flag_of("batch_size"), self.batch_size, 1)
        check_real(flag_of("learning_rate"), self.learning_rate, low_open=True)
        check_optional_real(flag_of("clip_norm"), self.clip_norm, low_open=True)
        check_choice(flag_of("lr_decay"), self.lr_decay, self._choices["lr_decay"])
        self._check_weight_decay()
        self._check_lr_decay()
        for name in ("epochs", "max_steps", "validate_every", "checkpoint_every"):
            check_optional_count(flag_of(name), getattr(self, name), 1)
        check_optional_real(flag_of("max_minutes"), self.max_minutes, low_open=True)
        check_optional_real(flag_of("validation_fraction"), self.validation_fraction, 0.0, 1.0, low_open=True,
                            high_open=True)
        check_seed(flag_of("random_state"), self.random_state)
        check_flag(flag_of("progress"), self.progress)

    def _units(self) -> int:
        return int(self.hidden_size) if self.hidden_size is not None else CHUNG_UNITS[self.cell]

    def _stopping(self) -> Tuple[Optional[int], Optional[int], Optional[float]]:
        if self.epochs is None and self.max_steps is None and self.max_minutes is None:
            return DEFAULT_EPOCHS, None, None
        return self.epochs, self.max_steps, self.max_minutes

    # -- the Estimator hooks ----------------------------------------------------------
    def _fitted_config(self) -> Dict[str, Any]:
        return {"dtype": self.model_.dtype.name}

    def _parameter_shapes(self, fitted: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
        """rnn.* (PyTorch's names, 88 inputs), head.weight (88, H), head.bias (88,); nothing allocated."""
        check_choice(flag_of("cell"), self.cell, self._choices["cell"])
        H = self._units()
        shapes = recurrent_shapes("rnn.", CELL_MODES[self.cell], KEYS, H, int(self.num_layers))
        shapes.update(linear_shapes("head.", H, KEYS))
        return shapes

    def _restore(self, fitted: Dict[str, Any], arrays: Dict[str, np.ndarray], meta: Dict[str, Any]) -> None:
        dtype = check_choice("the file's dtype", fitted.get("dtype", "float32"), ("float32", "float64"))
        self.model_ = MusicNet(self.cell, self._units(), int(self.num_layers), dtype=dtype, rng=0)
        self.model_.load_state_dict(arrays)
        self.model_.eval()

    def _network_state(self) -> Dict[str, np.ndarray]:
        return self.model_.state_dict()

    # -- training -------------------------------------------------------------------------
    def _per_epoch(self, train: List[np.ndarray]) -> int:
        """Batches per epoch: about as many windowed steps as the training pieces hold."""
        return max(1, math.ceil(sum(r.shape[0] for r in train) / (self.batch_size * (self.seq_len + 1))))

    def _batches(self, train: List[np.ndarray]):
        lengths = np.array([r.shape[0] for r in train])
        weights = lengths / lengths.sum()                # long pieces are drawn as often as they hold steps
        W = self.seq_len + 1
        per_epoch = self._per_epoch(train)

        def batches(epoch, rng):
            for _ in range(per_epoch):
                picks = rng.choice(len(train), size=self.batch_size, p=weights)
                windows = []
                for i in picks:
                    start = int(rng.integers(0, max(lengths[i] - W, 0) + 1))
                    windows.append(train[i][start:start + W])
                yield windows
        return batches

    def fit(self, train, *, valid=None, checkpoint_path=None, resume: bool = False) -> "MusicModel":
        """Train on ``train`` (a list of (T, 88) 0/1 rolls); ``valid`` pieces pick the best parameters.

        Without ``valid``, ``validation_fraction`` (if set) holds out the last pieces of ``train``.

        With ``checkpoint_path``, atomic checkpoints are written every
        ``checkpoint_every`` steps, at the end and on Ctrl-C or SIGTERM;
        ``resume=True`` continues from it (same settings and data, else refused).
        """
        self._check_params()
        check_flag(flag_of("resume"), resume)
        train = check_rolls(train, "training pieces")
        valid = check_rolls(valid, "validation pieces") if valid is not None else None
        if valid is None and self.validation_fraction is not None:
            n = math.ceil(self.validation_fraction * len(train))
            if n >= len(train):
                raise HyperparameterError(f"{flag_of('validation_fraction')} {self.validation_fraction} leaves no "
                                          f"training piece out of {len(train)}; choose a smaller fraction")
            train, valid = train[:-n], train[-n:]
        seed = self._seed()
        epochs, max_steps, max_minutes = self._stopping()
        shapes = self._parameter_shapes({})
        G = GATES[CELL_MODES[self.cell]]
        activations = (self.seq_len + 1) * self.batch_size * (self.num_layers * (G + 2) * self._units() + 4 * KEYS) * 4
        self._check_memory(shapes, np.float32, activations)
        model = MusicNet(self.cell, self._units(), self.num_layers, rng=np.random.default_rng([seed, 7]))
        optimizer = self._optimizer(model)
        batches = self._batches(train)
        schedule = self._lr_schedule(epochs, lambda: self._per_epoch(train), max_steps, max_minutes)
        if self.progress:
            say(f"music: {len(train)} training pieces ({predicted_steps(train):,} predicted steps)"
                f"{f', {len(valid)} validation pieces' if valid else ''}; {self.cell.upper()} "
                f"{self.num_layers}x{self._units()}, {model.num_parameters():,} parameters")

        def step_fn(windows, ctx):
            total, M = model.nll(windows, backward=True)
            return total / M, M

        validate = (lambda m: {"loss": _score(m, valid)["nll"]}) if valid else None
        history = self._fit_loop(
            model, optimizer, step_fn, batches, seed=seed, checkpoint_path=checkpoint_path,
            resume=resume, data_fingerprint=fingerprint(*train), checkpoint_every=self.checkpoint_every,
            fitted={"dtype": model.dtype.name}, epochs=epochs, max_steps=max_steps, max_minutes=max_minutes,
            clip_norm=self.clip_norm, schedule=schedule, validate=validate,
            validate_every=self.validate_every if validate else None,
            progress=self.progress, unit="step")
        model.eval()
        self.model_, self.history_ = model, history
        self.meta_ = {"train_pieces": len(train), "valid": _score(model, valid) if valid else None,
                      "parameters": model.num_parameters()}
        return self

    # -- using the model -------------------------------------------------------------------
    def score(self, rolls, what: str = "the pieces") -> Dict[str, float]:
        """``nll``: negative log-likelihood per predicted step, summed over the 88 keys (nats); ``steps``: M."""
        self._check_fitted()
        return _score(self.model_, check_rolls(rolls, what))

    def sample(self, length: int = 200, random_state=None, prime=None) -> np.ndarray:
        """A (length, 88) 0/1 roll drawn step by step from the model (``prime`` (P, 88) starts it)."""
        self._check_fitted()
        if check_count("length (--length)", length, 1) > MAX_SAMPLE_STEPS:
            raise HyperparameterError(f"length (--length) must be <= {MAX_SAMPLE_STEPS:,}, got {length}")
        rng = np.random.default_rng(check_seed(flag_of("random_state"), random_state))
        if prime is not None:
            prime = check_rolls([prime], "the prime")[0]
        return self.model_.sample(length, rng, prime)


def _score(model: MusicNet, rolls: List[np.ndarray]) -> Dict[str, float]:
    """NLL per predicted step over ``rolls``, whole pieces, in batches of similar length."""
    order = sorted(range(len(rolls)), key=lambda i: rolls[i].shape[0])
    total, M = 0.0, 0
    with model.eval_mode():
        for k in range(0, len(order), _EVAL_BATCH):
            t, m = model.nll([rolls[i] for i in order[k:k + _EVAL_BATCH]])
            total, M = total + t, M + m
    return {"nll": total / M, "steps": M}
