r"""``RNNForecaster``: a recurrent forecaster on the shared estimator contract (:mod:`rnnkit.estimator`).

Given levels :math:`y_1 .. y_T` (one or more target columns), optional past-only
covariates :math:`p_t` (known up to the forecast origin) and known-future
covariates :math:`f_t` (known for the horizon too, e.g. calendar flags), it
forecasts :math:`y_{T+1} .. y_{T+H}` with a distribution for each step:

1. levels are transformed, differenced and scaled (:mod:`.scaling`), fitted on
   the training part only: :math:`u_t = (g(y_t) - g(y_{t-d}) - a) / b`;
2. a GRU/LSTM/RNN reads ``lookback`` steps (:mod:`.model`) and a head gives a
   point, a Gaussian or quantiles (:mod:`.heads`);
3. ``strategy="recursive"`` predicts one step and feeds it back (any horizon at
   predict time; past covariates are forecast alongside the target since their
   future is unknown), ``"direct"`` predicts all ``horizon`` steps at once;
4. forecasts are mapped back to levels exactly (:mod:`.inference`).

Training runs through :meth:`Estimator._fit_loop` (Adam, or AdamW with weight_decay; checkpoints and bit-for-bit
resume with ``checkpoint_path``); ``validation_fraction`` holds out the end of
the series for early stopping. ``calibration_fraction`` holds out the very end
for split-conformal calibration (:mod:`.conformal`): the weights never see it, and
the scaled residuals of forecasts from every origin in it set the intervals of
``predict_interval`` and ``predict_quantiles`` (their default ``method="conformal"``;
``method="head"`` gives the head's own, uncalibrated intervals). A value whose scaled form overflows is refused
(:class:`~rnnkit.forecast.scaling.ScaleOverflow`), and so is a non-finite forecast.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from ..checks import (check_choice, check_count, check_flag, check_optional_count, check_optional_real,
                      check_probability, check_real, check_seed)
from ..distributed import world
from ..errors import DataError, HyperparameterError, NotFittedError
from ..estimator import Estimator, fingerprint, flag_of
from ..nn.shapes import CELL_MODES, GATES, linear_shapes, recurrent_shapes
from .heads import HEADS, head_loss, head_size
from .conformal import calibration_scores, checkpoint_calibration, shortfall
from .dates import BUSINESS_ANCHORS, valid_quarter_style
from .predicting import INTERVAL_METHODS, forecast, forecast_interval, forecast_quantiles
from .model import CELLS, ForecastNet
from .scaling import SCALERS, TRANSFORMS, SeriesScaler
from .validation import as_matrix
from .windows import direct_windows, recursive_windows, stack_inputs

__all__ = ["RNNForecaster", "MAX_SAMPLES", "INTERVAL_METHODS"]

MAX_SAMPLES = 100_000        # sample paths of a recursive interval
_ROLES = (("y", "target"), ("past_covariates", "past"), ("future_covariates", "future"))


def _plain_param(v):
    """A setting as compared across set_params: sequences (quantiles) as tuples of floats."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return tuple(float(x) for x in np.ravel(v))
    return v


def _checked_series(series):
    """``series_`` as a model file holds it (:func:`rnnkit.forecast.api.series_info`), its types checked.

    It comes from a file that may have been edited: a wrong type must be refused here, as a
    ValueError naming the field, not fail later inside a date parser.
    """
    if series is None:
        return None

    def need(ok: bool, field: str, expected: str, got) -> None:
        if not ok:
            raise ValueError(f"the recorded series field {field!r} should be {expected}, got {got!r}")

    def names(v) -> bool:
        return isinstance(v, list) and all(isinstance(n, str) for n in v)

    need(isinstance(series, dict), "series", "an object", series)
    need(isinstance(series.get("date_column"), str), "date_column", "a column name", series.get("date_column"))
    need(names(series.get("target")) and len(series["target"]) > 0, "target", "a list of column names",
         series.get("target"))
    for key in ("past_covariates", "future_covariates"):
        need(names(series.get(key, [])), key, "a list of column names", series.get(key))
    for key in ("date_format", "last_date"):
        need(series.get(key) is None or isinstance(series[key], str), key, "a string or null", series.get(key))
    step = series.get("step")
    need(isinstance(step, dict), "step", "an object", step)
    need(step.get("kind") in ("number", "months", "bdays", "days", "seconds"), "step.kind",
         "number, months, bdays, days or seconds", step.get("kind"))
    size = step.get("size")
    need(isinstance(size, (int, float)) and not isinstance(size, bool), "step.size", "a number", size)
    need(step.get("fmt") is None or isinstance(step["fmt"], str), "step.fmt", "a string or null", step.get("fmt"))
    need(isinstance(step.get("month_only", False), bool), "step.month_only", "true or false", step.get("month_only"))
    need(step.get("quarter") is None or valid_quarter_style(step["quarter"]), "step.quarter",
         "a quarter style such as {year}Q{q}, or null", step.get("quarter"))
    day = step.get("day")
    need(day is None or (type(day) is int and 1 <= day <= 31) or day in BUSINESS_ANCHORS, "step.day",
         "a day of the month (1-31), last_bday, first_bday or null", day)
    return series


class RNNForecaster(Estimator):
    """Recurrent-network forecaster (see the module docstring).

    Parameters
    ----------
    lookback : steps the network reads before each forecast (L).
    horizon : steps a direct model predicts at once (H), and the default length of a forecast;
        a recursive model can forecast any length.
    strategy : recursive (predict one step, feed it back) or direct (all horizon steps at once).
    cell : the recurrent cell.
    hidden_size : units per recurrent layer.
    num_layers : stacked recurrent layers.
    dropout : dropout between recurrent layers while training.
    head : gaussian (mean and standard deviation, negative log-likelihood), quantile (the
        quantiles, pinball loss; direct strategy only) or point (mean squared error).
    quantiles : levels of the quantile head; must include levels below and above 0.5.
    transform : what the network models: level, log, diff (differences) or log_return.
    scaler : scaling fitted on the training part: standard, minmax or none.
    epochs : passes over the training windows.
    max_steps : stop after this many optimiser steps in total (none: no limit).
    batch_size : windows per optimiser step.
    learning_rate : step size of Adam (of AdamW with weight_decay).
    weight_decay : decoupled weight decay (AdamW, Loshchilov and Hutter 2019) of the weight matrices, not the
        biases and gains: each step multiplies them by 1 - lr * weight_decay (0: Adam).
    clip_norm : clip the global gradient norm to this (none: no clipping).
    max_minutes : training time budget per fit (none: no limit).
    validation_fraction : share of the series held out for early stopping (0: none); it lies just before the
        calibration part.
    calibration_fraction : share of the series' end held out of training to calibrate the prediction intervals
        (split conformal, per horizon step; 0: none, and only the head's own intervals are available).
    early_stopping_patience : validations without improvement before stopping (none: never stop early).
    n_samples : sample paths for the intervals of a recursive Gaussian model.
    dtype : floating-point type of the network.
    random_state : seed of all randomness in fit and predict (none: fresh entropy).
    progress : show a progress bar while training.
    checkpoint_every : steps between checkpoints when training with a checkpoint path (none: only at the end
        of each epoch and of the run, and when interrupted).

    Attributes
    ----------
    net_, scaler_, past_scaler_, future_scaler_, history_, n_targets_, n_past_covariates_,
    n_future_covariates_, train_size_, seed_, series_ (what fit's ``series`` recorded), meta_,
    calibration_ (the conformal scores: one (n_h, k) array per horizon step, or None).
    """

    kind = "forecaster"
    _fitted_after_training = ("calibration",)     # the resumed run's checkpoints drop them; its end writes new
    _choices = {"strategy": ("recursive", "direct"), "cell": tuple(CELLS), "head": HEADS,
                "transform": tuple(TRANSFORMS), "scaler": SCALERS, "dtype": ("float32", "float64")}
    _resume_fixed = ("lookback", "horizon", "strategy", "cell", "hidden_size", "num_layers", "head", "quantiles",
                     "transform", "scaler", "batch_size", "validation_fraction", "calibration_fraction", "dtype",
                     "random_state")

    def __init__(self, *, lookback: int = 24, horizon: int = 1, strategy: str = "recursive", cell: str = "gru",
                 hidden_size: int = 32, num_layers: int = 1, dropout: float = 0.0, head: str = "gaussian",
                 quantiles: Sequence[float] = (0.05, 0.5, 0.95), transform: str = "level",
                 scaler: str = "standard", epochs: int = 100, max_steps: Optional[int] = None,
                 batch_size: int = 32, learning_rate: float = 3e-3, weight_decay: float = 0.0,
                 clip_norm: Optional[float] = 1.0, max_minutes: Optional[float] = None,
                 validation_fraction: float = 0.0, calibration_fraction: float = 0.2,
                 early_stopping_patience: Optional[int] = 10,
                 n_samples: int = 200, dtype: str = "float32", random_state: Optional[int] = 0,
                 progress: bool = False, checkpoint_every: Optional[int] = 100):
        self.lookback = lookback
        self.horizon = horizon
        self.strategy = strategy
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.head = head
        self.quantiles = quantiles
        self.transform = transform
        self.scaler = scaler
        self.epochs = epochs
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.max_minutes = max_minutes
        self.validation_fraction = validation_fraction
        self.calibration_fraction = calibration_fraction
        self.early_stopping_patience = early_stopping_patience
        self.n_samples = n_samples
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress
        self.checkpoint_every = checkpoint_every

    # -- checks -----------------------------------------------------------
    def _check_params(self) -> None:
        for name in ("lookback", "horizon", "hidden_size", "num_layers", "epochs", "batch_size", "n_samples"):
            check_count(flag_of(name), getattr(self, name), 1)
        check_optional_count(flag_of("max_steps"), self.max_steps, 1)
        check_optional_count(flag_of("early_stopping_patience"), self.early_stopping_patience, 1)
        check_optional_count(flag_of("checkpoint_every"), self.checkpoint_every, 1)
        if self.n_samples > MAX_SAMPLES:
            raise HyperparameterError(f"{flag_of('n_samples')} must be <= {MAX_SAMPLES:,}, got {self.n_samples!r}")
        for name, allowed in self._choices.items():
            check_choice(flag_of(name), getattr(self, name), allowed)
        check_real(flag_of("learning_rate"), self.learning_rate, 0.0, low_open=True)
        self._check_weight_decay()
        check_optional_real(flag_of("clip_norm"), self.clip_norm, 0.0, low_open=True)
        check_optional_real(flag_of("max_minutes"), self.max_minutes, 0.0, low_open=True)
        check_real(flag_of("validation_fraction"), self.validation_fraction, 0.0, 0.5, high_open=True)
        check_real(flag_of("calibration_fraction"), self.calibration_fraction, 0.0, 0.5, high_open=True)
        check_probability(flag_of("dropout"), self.dropout)
        check_seed(flag_of("random_state"), self.random_state)
        check_flag(flag_of("progress"), self.progress)
        try:
            q = np.asarray(self.quantiles, dtype=np.float64)
        except (TypeError, ValueError):
            q = np.zeros(0)
        if q.ndim != 1 or len(q) < 2 or not np.all((q > 0) & (q < 1)) or np.any(np.diff(q) <= 0):
            raise HyperparameterError(f"{flag_of('quantiles')} must be increasing levels strictly between 0 "
                                      f"and 1, got {self.quantiles!r}")
        if self.head == "quantile":
            if not (q[0] <= 0.5 <= q[-1]):
                raise HyperparameterError(f"{flag_of('quantiles')} needs levels on both sides of 0.5 for the "
                                          f"median forecast, got {self.quantiles!r}")
            if self.strategy == "recursive":
                raise HyperparameterError(
                    "--head quantile needs --strategy direct: a recursive "
                    "model feeds its forecast back as an input, and a set of quantiles is not a value; use "
                    "--head gaussian for recursive intervals")

    # -- shapes (no allocation) ---------------------------------------------
    def _sizes(self, k: int, p: int, f: int) -> Dict[str, int]:
        direct = self.strategy == "direct"
        return {"input_size": k + p + f, "n_out": k if direct else k + p, "future_size": f,
                "horizon": self.horizon if direct else 1, "head_size": head_size(self.head, self.quantiles)}

    def _shapes(self, k: int, p: int, f: int) -> Dict[str, Tuple[int, ...]]:
        s, Hh = self._sizes(k, p, f), int(self.hidden_size)
        shapes = recurrent_shapes("rnn.", CELL_MODES[self.cell], s["input_size"], Hh, self.num_layers)
        head_in = Hh + (s["horizon"] * f if self.strategy == "direct" else 0)
        shapes.update(linear_shapes("head.", head_in, s["horizon"] * s["n_out"] * s["head_size"]))
        return shapes

    @staticmethod
    def _counts(fitted) -> Tuple[int, int, int]:
        return (check_count("n_targets", fitted["n_targets"], 1), check_count("n_past", fitted["n_past"], 0),
                check_count("n_future", fitted["n_future"], 0))

    def _parameter_shapes(self, fitted: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
        self._check_params()
        return self._shapes(*self._counts(fitted))

    def _build_net(self, k: int, p: int, f: int, rng=None) -> ForecastNet:
        return ForecastNet(cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
                           dropout=self.dropout, strategy=self.strategy, dtype=np.dtype(self.dtype), rng=rng,
                           **{n: v for n, v in self._sizes(k, p, f).items()})

    def _check_size(self, T: int, k: int, p: int, f: int) -> None:
        """Refuse settings whose network, training windows and activations would not fit in memory."""
        s, L, item = self._sizes(k, p, f), int(self.lookback), np.dtype(self.dtype).itemsize
        N = max(T - L, 1)
        windows = (8 + item) * L * N * (s["input_size"] + s["n_out"])      # float64 windows and their cast
        acts = item * L * min(int(self.batch_size), N) * (GATES[CELL_MODES[self.cell]] + 3) \
            * int(self.hidden_size) * int(self.num_layers)
        self._check_memory(self._shapes(k, p, f), self.dtype, extra_bytes=windows + acts,
                           what=f"--hidden-size {self.hidden_size}, --num-layers {self.num_layers}, "
                                f"--lookback {self.lookback} and --batch-size {self.batch_size}")

    # -- fit --------------------------------------------------------------
    def fit(self, y, past_covariates=None, future_covariates=None, *, series: Optional[Dict[str, Any]] = None,
            checkpoint_path=None, resume: bool = False) -> "RNNForecaster":
        """Learn from levels ``y`` (T,) or (T, k); covariates (T, p) and (T, f) aligned with y.

        ``series`` is a JSON-able dict of facts about the data (column names,
        dates) kept as ``series_`` in the model and its checkpoints. With
        ``checkpoint_path`` training writes checkpoints there (every
        ``checkpoint_every`` steps, at the end and when interrupted); ``resume=True``
        continues from it bit for bit (same settings and data).
        """
        self._check_params()
        check_flag(flag_of("resume"), resume)
        try:                                    # checked now: the model keeps it, and a file is read with it
            _checked_series(series)
        except ValueError as e:
            raise HyperparameterError(f"series: {e} (it records the CSV columns and dates the command-line tools "
                                      "read; leave it out in the library)") from None
        Y = as_matrix("y", y)
        T, k = Y.shape
        P = as_matrix("past_covariates", past_covariates, rows=T)
        F = as_matrix("future_covariates", future_covariates, rows=T)
        p, f = (0 if P is None else P.shape[1]), (0 if F is None else F.shape[1])
        L, d, H = self.lookback, TRANSFORMS[self.transform][1], self.horizon
        direct = self.strategy == "direct"
        need = L + H + d
        if T < need:
            raise DataError(f"the series has {T} values, too short for lookback {L} + horizon {H}"
                            + (" + 1 (differencing)" if d else "") + f" = {need}; use a shorter --lookback "
                            "or --horizon, or more data")
        # the series' end calibrates the intervals; the part before it trains (and validates)
        n_cal = max(1, int(round(self.calibration_fraction * T))) if self.calibration_fraction > 0 else 0
        if n_cal and (T - n_cal < need or n_cal < H):
            raise DataError(f"{flag_of('calibration_fraction')} {self.calibration_fraction} leaves {T - n_cal} "
                            f"values to train on and {n_cal} to calibrate; need {need} and {H}: change it (0 turns "
                            "the calibrated intervals off) "
                            "or give more data")
        Tw = T - n_cal                                           # the values the network may learn from
        n_val = int(round(self.validation_fraction * T))
        if n_val and (Tw - n_val < need or n_val < (H if direct else 1)):
            raise DataError(f"{flag_of('validation_fraction')} {self.validation_fraction} leaves {Tw - n_val} "
                            f"training and {n_val} validation values; need {need} and {H}: lower it or set it to 0")
        self._check_size(T, k, p, f)
        T_train, dtype = Tw - n_val, np.dtype(self.dtype)
        seed = self._fit_seed(checkpoint_path, resume)

        # 1. scaling, fitted on the training part only (a constant covariate gets b = 1)
        scaler = SeriesScaler(self.transform, self.scaler).fit(Y[:T_train], constant_ok=True, what="y")
        cov = "standard" if self.scaler == "none" else self.scaler
        p_scaler = None if P is None else SeriesScaler("level", cov).fit(P[:T_train], True, "past_covariates")
        f_scaler = None if F is None else SeriesScaler("level", cov).fit(F[:T_train], True, "future_covariates")
        u = scaler.scale_checked(Y, "y", dtype)[:Tw - d]                          # (n, k), n = Tw - d
        pc = None if P is None else p_scaler.scale_checked(P, "past_covariates", dtype)[d:Tw]    # (n, p)
        fc = None if F is None else f_scaler.scale_checked(F, "future_covariates", dtype)[d:Tw]  # (n, f)
        X = stack_inputs(u, pc, fc)                                               # (n or n-1, D)
        n_train = T_train - d

        # 2. windows and which of them train or validate
        fut = mask = None
        if direct:
            inputs, fut, targets = direct_windows(X, u, fc, L, H, d)
            is_train = np.arange(inputs.shape[1]) + L - 1 + H <= n_train - 1
        else:
            V = u if pc is None else np.concatenate([u, pc], axis=1)
            inputs, targets = recursive_windows(X, V, L)
            tgt_index = np.arange(inputs.shape[1])[None, :] + 1 + np.arange(L)[:, None]   # (L, N)
            is_train = tgt_index[-1] <= n_train - 1
            # the first steps of a window have seen little history; forecasts always see L steps
            mask = (np.arange(L) >= L // 2)[:, None] & np.ones(inputs.shape[1], bool)[None, :]
        train_idx, val_idx = np.nonzero(is_train)[0], np.nonzero(~is_train)[0]
        inputs, targets = inputs.astype(dtype), targets.astype(dtype)
        fut = None if fut is None else fut.astype(dtype)

        keep = L + d                                                    # what predict needs to start
        scalers = {"target": scaler, "past": p_scaler, "future": f_scaler}
        fitted = {
            "n_targets": k, "n_past": p, "n_future": f, "y_is_1d": bool(np.ndim(y) == 1),
            "train_size": int(T_train), "seed": int(seed),
            "scalers": {n: None if s is None else s.stats() for n, s in scalers.items()},
            "last": {role: None if a is None else a[-keep:].tolist() for (_, role), a in zip(_ROLES, (Y, P, F))},
            "series": series}
        net = self._build_net(k, p, f, rng=seed)
        head, quantiles = self.head, tuple(float(q) for q in self.quantiles)

        def loss_on(idx, model, rng=None, val_mask=None, backward=True):
            xb = inputs[:, idx]                                         # (L, B, D)
            fb = None if fut is None else fut[idx]
            tb = targets[idx] if direct else targets[:, idx]
            mb = None if mask is None else mask[:, idx]
            if val_mask is not None:
                mb = val_mask if mb is None else (mb & val_mask)
            raw, _, cache = model.forward(xb, future=fb, rng=rng)
            loss, d_raw = head_loss(head, raw, tb, quantiles, mb)
            if backward:
                model.backward(d_raw, cache)
            return loss

        shard = world().shard

        def step_fn(batch, ctx):
            return loss_on(batch, ctx.model, ctx.rng), len(batch)

        def batches(epoch, brng):
            order = brng.permutation(train_idx)
            # data-parallel: each rank takes its share of every batch (None when empty; see rnnkit.distributed)
            return [shard(order[i:i + self.batch_size]) for i in range(0, len(order), self.batch_size)]

        validate = None
        if len(val_idx):
            # score only the targets that lie in the held-out part
            vmask = None if direct else (tgt_index[:, val_idx] >= n_train)
            validate = lambda model: {"loss": loss_on(val_idx, model, val_mask=vmask, backward=False)}

        optimizer = self._optimizer(net)
        # the checkpoints carry the new fitted config; a failed fit leaves a fitted model as it was
        history = self._fit_loop(
            net, optimizer, step_fn, batches, seed=seed, checkpoint_path=checkpoint_path, resume=resume,
            data_fingerprint=fingerprint(Y, P, F), epochs=self.epochs, max_steps=self.max_steps,
            max_minutes=self.max_minutes, clip_norm=self.clip_norm, validate=validate,
            checkpoint_every=self.checkpoint_every, fitted=fitted,
            early_stopping_patience=self.early_stopping_patience if validate else None,
            progress=bool(self.progress), unit="win")
        net.eval()
        before = dict(self.__dict__)            # the calibration predicts with the new model: if it fails or is
        try:                                    # interrupted, the estimator is put back as it was
            self._set_fitted(fitted, net)
            self.history_, self.meta_ = history, {}
            if n_cal:
                fitted = dict(fitted, calibration=calibration_scores(self, Y, P, F, Tw))
                self._set_fitted(fitted, net)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        if n_cal and checkpoint_path is not None and os.path.exists(checkpoint_path):
            checkpoint_calibration(checkpoint_path, fitted["calibration"])       # it predicts like the model
        return self

    def _fit_seed(self, checkpoint_path, resume: bool) -> int:
        """The run's seed, drawn from ``random_state`` as before issue 10 (so the README's figures stand);
        resuming with random_state=None continues the checkpoint's own run: its random_state is taken (another
        one is refused by the resume check, since the seed is among the fitted facts)."""
        if resume and self.random_state is None and checkpoint_path is not None and os.path.exists(checkpoint_path):
            from ..train.checkpoint import load_checkpoint
            ck = load_checkpoint(checkpoint_path)
            self.random_state = ((ck.config or {}).get("params") or {}).get("random_state")
            if not isinstance(self.random_state, int):
                return int(ck.train_state.get("seed", 0))
        self._seed()                                    # the shared check of random_state
        return int(np.random.default_rng(self.random_state).integers(2 ** 31 - 1))

    # -- the contract's file hooks ------------------------------------------
    def _fitted_config(self) -> Dict[str, Any]:
        return self._fitted

    def _network_state(self) -> Dict[str, np.ndarray]:
        return self.net_.state_dict()

    def _restore(self, fitted: Dict[str, Any], arrays: Dict[str, np.ndarray], meta: Dict[str, Any]) -> None:
        self.quantiles = tuple(self.quantiles)
        net = self._build_net(*self._counts(fitted))
        net.load_state_dict(arrays)
        net.eval()
        self._set_fitted(fitted, net)

    def _set_fitted(self, fitted: Dict[str, Any], net: ForecastNet) -> None:
        """Every fitted attribute from the ``fitted`` config (checked: it may come from a file)."""
        k, p, f = self._counts(fitted)
        cov = "standard" if self.scaler == "none" else self.scaler
        keep = self.lookback + TRANSFORMS[self.transform][1]
        sc, last = fitted["scalers"], fitted["last"]
        scalers, rows = {}, {}
        for (role, name), n, transform in zip(_ROLES, (k, p, f), (self.transform, "level", "level")):
            scalers[name] = SeriesScaler.from_stats(transform, self.scaler if name == "target" else cov,
                                                    sc[name], n) if n else None
            rows[name] = None if not n else np.asarray(last[name], dtype=np.float64)     # (L + d, n)
            if n and (rows[name].shape != (keep, n) or not np.isfinite(rows[name]).all()):
                raise ValueError(f"the last {role} rows have shape {rows[name].shape}, expected {(keep, n)}")
        self.net_ = net
        self.scaler_, self.past_scaler_, self.future_scaler_ = scalers["target"], scalers["past"], scalers["future"]
        self.last_y_, self.last_past_, self.last_future_ = rows["target"], rows["past"], rows["future"]
        self.n_targets_, self.n_past_covariates_, self.n_future_covariates_ = k, p, f
        self.y_is_1d_ = bool(fitted["y_is_1d"]) and k == 1
        self.train_size_, self.seed_ = int(fitted["train_size"]), int(fitted["seed"])
        self.series_ = _checked_series(fitted.get("series"))
        cal = fitted.get("calibration")
        self.calibration_ = None
        if cal is not None:
            self.calibration_ = [np.asarray(z, dtype=np.float64).reshape(-1, k) for z in cal]
            if len(self.calibration_) != self.horizon or not all(np.isfinite(z).all() for z in self.calibration_):
                raise ValueError(f"the calibration scores have {len(self.calibration_)} steps, expected "
                                 f"{self.horizon} steps of finite values")
        self._fitted = dict(fitted)
        self._fit_params = {k: _plain_param(getattr(self, k)) for k in self._model_params}

    # what the fitted network and scalers are built for: set_params on one of them after fit is refused at use
    _model_params = ("lookback", "horizon", "strategy", "cell", "hidden_size", "num_layers", "head", "quantiles",
                     "transform", "scaler", "dtype")

    def _check_fitted(self) -> None:
        """Fitted, with the settings it was fitted with (and the prediction settings valid): a lookback or
        transform changed by set_params after fit made predictions from the wrong windows and files that
        load refused."""
        super()._check_fitted()
        fit_params = getattr(self, "_fit_params", {})
        changed = [k for k, v in fit_params.items() if _plain_param(getattr(self, k)) != v]
        if changed:
            said = ", ".join(f"{flag_of(k)} {fit_params[k]!r} -> {_plain_param(getattr(self, k))!r}" for k in changed)
            raise NotFittedError(f"the settings of this {type(self).__name__} changed since it was fitted ({said}); "
                                 "the model is built for the fitted values: set them back, or fit it again")
        self._check_params()                   # n_samples, interval settings ... changed by set_params

    # -- predict ----------------------------------------------------------
    def predict(self, horizon: Optional[int] = None, y=None, past_covariates=None, future_covariates=None):
        """Point forecasts for the next ``horizon`` steps: (H,) or (H, k).

        Without ``y`` the forecast starts at the end of the training series;
        with ``y`` (at least ``lookback`` values) at the end of ``y``. Known-future
        covariates: (H, f) without ``y``, (len(y) + H, f) with it.
        """
        return forecast(self, horizon, y, past_covariates, future_covariates)[0]

    def predict_quantiles(self, quantiles: Sequence[float] = (0.05, 0.5, 0.95), horizon: Optional[int] = None,
                          y=None, past_covariates=None, future_covariates=None, *,
                          method: str = "conformal") -> np.ndarray:
        """Forecast quantiles: (H, Q) or (H, Q, k), in the order of ``quantiles`` (a lower level is never
        above a higher one).

        ``method="conformal"`` (default): the point forecast plus the head's spread times the
        split-conformal quantile of the calibration scores at each level (:mod:`.conformal`): an upper
        level tau lies above the outcome with probability >= tau if calibration and forecast errors are
        exchangeable. ``method="head"``: the head's own quantiles, uncalibrated.
        """
        q = [float(v) for v in np.atleast_1d(quantiles)]
        if not q or any(not (0.0 < v < 1.0) for v in q):
            raise ValueError(f"quantiles: expected levels strictly between 0 and 1, got {quantiles!r}")
        levels = sorted(set(q))                 # computed increasing (they are made monotone), then as asked
        out = forecast_quantiles(self, levels, horizon, y, past_covariates, future_covariates, method)
        return out[:, [levels.index(v) for v in q], ...]

    def predict_interval(self, coverage: float = 0.9, horizon: Optional[int] = None, y=None,
                         past_covariates=None, future_covariates=None, *,
                         method: str = "conformal") -> Tuple[np.ndarray, np.ndarray]:
        """Central prediction interval (lower, upper), each (H,) or (H, k), meant to hold ``coverage``.

        ``method="conformal"`` (default): split-conformal per horizon step (:mod:`.conformal`): point
        forecast +- the head's spread times the ceil((n_h + 1) * coverage)-th smallest absolute score of
        step h. **Guarantee:** if the n_h calibration residuals (forecasts from origins in the held-out
        end of the training series) and the new forecast's are exchangeable, the interval covers with
        probability >= ``coverage``; a series whose error distribution changes after the calibration
        part breaks that assumption. ``method="head"``: the head's own central interval (Gaussian
        quantiles or sample paths, or the quantile head's levels), which carries no such promise.
        """
        coverage = check_real(flag_of("coverage"), coverage, 0.0, 1.0, low_open=True, high_open=True)
        return forecast_interval(self, coverage, horizon, y, past_covariates, future_covariates, method)

    def calibration_shortfall(self, coverage: float = 0.9):
        """Horizon steps whose calibration has too few scores to promise ``coverage`` (see :mod:`.conformal`)."""
        self._check_fitted()
        return [] if self.calibration_ is None else shortfall(self.calibration_, coverage)

