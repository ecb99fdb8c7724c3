r"""``RNNForecaster``: a recurrent forecaster with the scikit-learn estimator contract.

Given levels :math:`y_1 .. y_T` (one or more target columns), optional past-only
covariates :math:`p_t` (known up to the forecast origin) and known-future
covariates :math:`f_t` (known for the horizon too, e.g. calendar flags), it
forecasts :math:`y_{T+1} .. y_{T+H}` with a distribution for each step:

1. levels are transformed, differenced and scaled (:mod:`.scaling`), fitted on
   the training part only;
2. a GRU/LSTM/RNN reads ``lookback`` steps (:mod:`.model`) and a head gives a
   point, a Gaussian or quantiles (:mod:`.heads`);
3. ``strategy="recursive"`` predicts one step and feeds it back (any horizon at
   predict time; past covariates are forecast alongside the target since their
   future is unknown), ``"direct"`` predicts all ``horizon`` steps at once;
4. forecasts are mapped back to levels exactly (:mod:`.inference`).

Training uses :func:`rnnkit.train.fit` with Adam; ``validation_fraction`` holds
out the end of the series for early stopping.
"""

from __future__ import annotations

import numbers
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError, NotFittedError
from ..io.modelfile import load_model_file, save_model_file
from ..optim import Adam
from ..train import fit as train_fit
from .heads import HEADS, head_loss, head_size
from .inference import direct_forecast, recursive_forecast
from .model import CELLS, ForecastNet
from .params import ParamsMixin
from .scaling import SCALERS, TRANSFORMS, SeriesScaler
from .validation import as_matrix
from .windows import direct_windows, recursive_windows, stack_inputs

__all__ = ["RNNForecaster", "MODEL_KIND"]

MODEL_KIND = "forecaster"


def _flag(name: str) -> str:
    """A hyperparameter and the `rnnkit forecast` flag that sets it: "learning_rate (--learning-rate)"."""
    if name == "dtype":
        return name
    return f"{name} (--{'seed' if name == 'random_state' else name.replace('_', '-')})"


class RNNForecaster(ParamsMixin):
    """Recurrent-network forecaster (see the module docstring).

    Parameters
    ----------
    lookback : int, steps the network reads before each forecast (L).
    horizon : int, steps a direct model predicts at once (H); the default
        length of ``predict``. A recursive model can predict any length.
    strategy : "recursive" or "direct".
    cell : "gru", "lstm" or "rnn"; hidden_size, num_layers, dropout : the recurrent stack.
    head : "gaussian" (mean and standard deviation, trained by negative
        log-likelihood), "quantile" (``quantiles``, pinball loss; direct only) or "point" (MSE).
    quantiles : levels of the quantile head; must include levels below and above 0.5.
    transform : "level", "log", "diff" or "log_return" (what the network models).
    scaler : "standard", "minmax" or "none", fitted on the training part.
    epochs, batch_size, learning_rate, weight_decay, clip_norm, max_minutes :
        training (Adam; gradients clipped to ``clip_norm``).
    validation_fraction : share of the series' end held out for early stopping (0: none).
    early_stopping_patience : validations without improvement before stopping.
    n_samples : sample paths for the intervals of a recursive Gaussian model.
    dtype : "float32" or "float64" for the network.
    random_state : int, Generator or None; all randomness of fit and predict derives from it.
    progress : show a progress bar while training.

    Attributes (after fit)
    ----------------------
    net_, scaler_, past_scaler_, future_scaler_, training_history_, n_targets_,
    n_past_covariates_, n_future_covariates_, train_size_, seed_.
    """

    def __init__(self, *, lookback: int = 24, horizon: int = 1, strategy: str = "recursive", cell: str = "gru",
                 hidden_size: int = 32, num_layers: int = 1, dropout: float = 0.0, head: str = "gaussian",
                 quantiles: Sequence[float] = (0.05, 0.5, 0.95), transform: str = "level",
                 scaler: str = "standard", epochs: int = 100, batch_size: int = 32,
                 learning_rate: float = 3e-3, weight_decay: float = 0.0, clip_norm: Optional[float] = 1.0,
                 max_minutes: Optional[float] = None, validation_fraction: float = 0.0,
                 early_stopping_patience: Optional[int] = 10, n_samples: int = 200, dtype: str = "float32",
                 random_state=None, progress: bool = False):
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
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.max_minutes = max_minutes
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.n_samples = n_samples
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress

    # -- checks -----------------------------------------------------------
    def _check_params(self) -> None:
        def positive_int(name):
            v = getattr(self, name)
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{_flag(name)}: expected a positive integer, got {v!r}")
        for name in ("lookback", "horizon", "hidden_size", "num_layers", "epochs", "batch_size", "n_samples"):
            positive_int(name)
        if self.early_stopping_patience is not None:
            positive_int("early_stopping_patience")
        choices = {"strategy": ("recursive", "direct"), "cell": tuple(CELLS), "head": HEADS,
                   "transform": tuple(TRANSFORMS), "scaler": SCALERS, "dtype": ("float32", "float64")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{_flag(name)}: expected one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.head == "quantile":
            q = np.asarray(self.quantiles, dtype=np.float64)
            if q.ndim != 1 or len(q) < 2 or np.any((q <= 0) | (q >= 1)) or np.any(np.diff(q) <= 0):
                raise ValueError(f"quantiles: expected increasing levels strictly between 0 and 1, got {self.quantiles!r}")
            if not (q[0] <= 0.5 <= q[-1]):
                raise ValueError(f"quantiles: need levels on both sides of 0.5 for the median forecast, got {self.quantiles!r}")
            if self.strategy == "recursive":
                raise ValueError("head='quantile' needs strategy='direct': a recursive model feeds its forecast back "
                                 "as an input, and a set of quantiles is not a value; use head='gaussian' for "
                                 "recursive intervals")
        if not (0.0 <= self.validation_fraction < 0.5):
            raise ValueError(f"{_flag('validation_fraction')}: expected a number in [0, 0.5), "
                             f"got {self.validation_fraction!r}")
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"{_flag('dropout')}: expected a number in [0, 1), got {self.dropout!r}")
        for name in ("learning_rate",):
            if not (isinstance(getattr(self, name), numbers.Real) and getattr(self, name) > 0):
                raise ValueError(f"{_flag(name)}: expected a positive number, got {getattr(self, name)!r}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit(y) before predicting")

    # -- fit --------------------------------------------------------------
    def fit(self, y, past_covariates=None, future_covariates=None) -> "RNNForecaster":
        """Learn from levels ``y`` (T,) or (T, k); covariates (T, p) and (T, f) aligned with y."""
        self._check_params()
        Y = as_matrix("y", y)
        T, k = Y.shape
        P = as_matrix("past_covariates", past_covariates, rows=T)
        F = as_matrix("future_covariates", future_covariates, rows=T)
        L, d = self.lookback, TRANSFORMS[self.transform][1]
        direct = self.strategy == "direct"
        H = self.horizon
        need = L + H + d
        if T < need:
            raise DataError(f"the series has {T} values, too short for lookback {L} + horizon {H}"
                            + (" + 1 (differencing)" if d else "") + f" = {need}; use a shorter lookback "
                            "or horizon, or more data")
        n_val = int(round(self.validation_fraction * T))
        if n_val and (T - n_val < need or n_val < (H if direct else 1)):
            raise DataError(f"validation_fraction {self.validation_fraction} leaves {T - n_val} training and "
                            f"{n_val} validation values; need {need} and {H}: lower it or set it to 0")
        T_train = T - n_val
        dtype = np.dtype(self.dtype)
        rng = np.random.default_rng(self.random_state)
        seed = int(rng.integers(2 ** 31 - 1))

        # 1. scaling, fitted on the training part only
        # a constant (differenced) series gets b = 1: the network then learns the constant exactly
        scaler = SeriesScaler(self.transform, self.scaler).fit(Y[:T_train], constant_ok=True)
        cov_scaler = "standard" if self.scaler == "none" else self.scaler
        p_scaler = None if P is None else SeriesScaler("level", cov_scaler).fit(P[:T_train], constant_ok=True)
        f_scaler = None if F is None else SeriesScaler("level", cov_scaler).fit(F[:T_train], constant_ok=True)
        u = scaler.scale(Y)                                             # (n, k), n = T - d
        pc = None if P is None else p_scaler.scale(P)[d:]               # (n, p)
        fc = None if F is None else f_scaler.scale(F)[d:]               # (n, f)
        X = stack_inputs(u, pc, fc)                                     # (n or n-1, D)
        n_train = T_train - d                                           # grid steps in the training part

        # 2. windows and which of them train or validate
        fut = None
        if direct:
            inputs, fut, targets = direct_windows(X, u, fc, L, H, d)
            origins = np.arange(inputs.shape[1]) + L - 1
            is_train = origins + H <= n_train - 1
            mask = None
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

        net = ForecastNet(cell=self.cell, input_size=X.shape[1], hidden_size=self.hidden_size,
                          num_layers=self.num_layers, dropout=self.dropout, strategy=self.strategy,
                          n_out=targets.shape[-1], head_size=head_size(self.head, self.quantiles),
                          horizon=H if direct else 1, future_size=0 if fc is None else fc.shape[1],
                          dtype=dtype, rng=seed)
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

        def step_fn(batch, ctx):
            return loss_on(batch, ctx.model, ctx.rng), len(batch)

        def batches(epoch, brng):
            order = brng.permutation(train_idx)
            return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

        validate = None
        if len(val_idx):
            # score only the targets that lie in the held-out part
            vmask = None if direct else (tgt_index[:, val_idx] >= n_train)
            validate = lambda model: {"loss": loss_on(val_idx, model, val_mask=vmask, backward=False)}

        optimizer = Adam(net.parameters(), lr=float(self.learning_rate), weight_decay=float(self.weight_decay))
        history = train_fit(net, optimizer, step_fn, batches, seed=seed, epochs=self.epochs,
                            max_minutes=self.max_minutes, clip_norm=self.clip_norm, validate=validate,
                            early_stopping_patience=self.early_stopping_patience if validate else None,
                            progress=bool(self.progress), unit="win")
        net.eval()

        self.net_ = net
        self.scaler_, self.past_scaler_, self.future_scaler_ = scaler, p_scaler, f_scaler
        self.training_history_ = history
        self.n_targets_ = k
        self.n_past_covariates_ = 0 if P is None else P.shape[1]
        self.n_future_covariates_ = 0 if F is None else F.shape[1]
        self.y_is_1d_ = np.ndim(y) == 1
        self.train_size_ = T_train
        self.seed_ = seed
        keep = L + d                                                    # what predict needs to start
        self.last_y_ = Y[-keep:].copy()
        self.last_past_ = None if P is None else P[-keep:].copy()
        self.last_future_ = None if F is None else F[-keep:].copy()
        return self

    # -- predict ----------------------------------------------------------
    def _inputs_for(self, H: int, y, past, future):
        """The last lookback input rows, the horizon's scaled future covariates and the last level."""
        L, d = self.lookback, self.scaler_.order
        p, f = self.n_past_covariates_, self.n_future_covariates_
        if y is None:
            Yh, Ph, Fh = self.last_y_, self.last_past_, self.last_future_
            if past is not None:
                raise ValueError("past_covariates without y: pass the history y with its past covariates, "
                                 "or neither to forecast from the end of the training data")
            F_fut = as_matrix("future_covariates", future, rows=H, cols=f, what="one row per forecast step")
        else:
            Yh = as_matrix("y", y, cols=self.n_targets_)
            if len(Yh) < L + d:
                raise DataError(f"y has {len(Yh)} values; forecasting needs at least lookback {L}"
                                + (" + 1 (differencing)" if d else "") + " values of history")
            Ph = as_matrix("past_covariates", past, rows=len(Yh), cols=p)
            F_all = as_matrix("future_covariates", future, rows=len(Yh) + H, cols=f,
                              what="one row per history value and per forecast step")
            Fh, F_fut = (None, None) if F_all is None else (F_all[:len(Yh)], F_all[len(Yh):])
        if p and Ph is None:
            raise ValueError(f"past_covariates: the model was trained with {p} past covariate(s); pass them "
                             "for the history y")
        if f and F_fut is None:
            raise ValueError(f"future_covariates: the model was trained with {f} known-future covariate(s); "
                             f"pass their values for the {H} forecast steps")
        u = self.scaler_.scale(Yh)
        pc = None if Ph is None else self.past_scaler_.scale(Ph)[d:]
        fc = None if not f else self.future_scaler_.scale(np.concatenate([Fh, F_fut]))[d:]
        X = stack_inputs(u, pc, fc)
        fut_rows = None if fc is None else fc[len(u):len(u) + H]        # f_{o+1} .. f_{o+H}
        return X[-L:], fut_rows, Yh[-1]

    def _forecast(self, horizon, y, past, future, quantiles=()) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        self._check_fitted()
        H = self.horizon if horizon is None else horizon
        if not isinstance(H, numbers.Integral) or isinstance(H, bool) or H < 1:
            raise ValueError(f"horizon: expected a positive integer, got {H!r}")
        direct = self.strategy == "direct"
        if direct and H > self.horizon:
            raise ValueError(f"horizon {H}: this direct model was trained for {self.horizon} steps; ask for at "
                             "most that many, or train with strategy='recursive' (any horizon) or a longer horizon")
        H_run = self.horizon if direct else H
        window, fut, last = self._inputs_for(H_run, y, past, future)
        if quantiles and self.head == "point":
            raise ValueError("this model has head='point' and gives no intervals or quantiles; train it "
                             "with head='gaussian' or head='quantile'")
        if quantiles and self.head == "quantile":
            lo, hi = min(self.quantiles), max(self.quantiles)
            if min(quantiles) < lo - 1e-12 or max(quantiles) > hi + 1e-12:
                raise ValueError(f"quantiles {list(quantiles)}: the model was trained for levels {list(self.quantiles)} "
                                 f"and can give levels in [{lo}, {hi}] only")
        if direct:
            out = direct_forecast(self.net_, window, fut, head=self.head, trained_quantiles=self.quantiles,
                                  quantiles=quantiles)
        else:
            out = recursive_forecast(self.net_, window, None if fut is None else fut[1:], H, k=self.n_targets_,
                                     head=self.head, order=self.scaler_.order, quantiles=quantiles,
                                     n_samples=self.n_samples, rng=np.random.default_rng([self.seed_, 7]))
        mean = self.scaler_.to_levels(out["mean"][:H], last)                           # (H, k)
        q = None
        if "quantiles" in out:
            q = self.scaler_.to_levels(out["quantiles"][:H], last)                     # (H, Q, k)
            q = np.sort(q, axis=1)          # sampling noise must not make quantiles cross
        if self.y_is_1d_:
            mean = mean[:, 0]
            q = None if q is None else q[..., 0]
        return mean, q

    def predict(self, horizon: Optional[int] = None, y=None, past_covariates=None, future_covariates=None):
        """Point forecasts for the next ``horizon`` steps: (H,) or (H, k).

        Without ``y`` the forecast starts at the end of the training series;
        with ``y`` (at least ``lookback`` values) at the end of ``y``. Known-future
        covariates: (H, f) without ``y``, (len(y) + H, f) with it.
        """
        return self._forecast(horizon, y, past_covariates, future_covariates)[0]

    def predict_quantiles(self, quantiles: Sequence[float] = (0.05, 0.5, 0.95), horizon: Optional[int] = None,
                          y=None, past_covariates=None, future_covariates=None) -> np.ndarray:
        """Forecast quantiles: (H, Q) or (H, Q, k), increasing along Q."""
        q = [float(v) for v in np.atleast_1d(quantiles)]
        if not q or any(not (0.0 < v < 1.0) for v in q):
            raise ValueError(f"quantiles: expected levels strictly between 0 and 1, got {quantiles!r}")
        return self._forecast(horizon, y, past_covariates, future_covariates, q)[1]

    def predict_interval(self, coverage: float = 0.9, horizon: Optional[int] = None, y=None,
                         past_covariates=None, future_covariates=None) -> Tuple[np.ndarray, np.ndarray]:
        """Central prediction interval (lower, upper) holding ``coverage`` of the forecast distribution."""
        if not (isinstance(coverage, numbers.Real) and 0.0 < coverage < 1.0):
            raise ValueError(f"coverage: expected a number strictly between 0 and 1, got {coverage!r}")
        q = self.predict_quantiles([(1 - coverage) / 2, (1 + coverage) / 2], horizon, y,
                                   past_covariates, future_covariates)
        return q[:, 0], q[:, 1]

    # -- persistence ------------------------------------------------------
    def save(self, path, meta: Optional[dict] = None) -> None:
        """Write a model file of kind "forecaster" (npz + JSON header, no pickle)."""
        self._check_fitted()
        params = self.get_params()
        params["quantiles"] = [float(q) for q in params["quantiles"]]
        if not (params["random_state"] is None or isinstance(params["random_state"], numbers.Integral)):
            params["random_state"] = None           # a Generator is not JSON; seed_ keeps the run reproducible
        config = {"params": params, "n_targets": self.n_targets_, "n_past": self.n_past_covariates_,
                  "n_future": self.n_future_covariates_, "y_is_1d": bool(self.y_is_1d_),
                  "train_size": int(self.train_size_), "seed": self.seed_}
        arrays: Dict[str, np.ndarray] = {f"net.{n}": a for n, a in self.net_.state_dict().items()}
        for prefix, sc in (("target", self.scaler_), ("past", self.past_scaler_), ("future", self.future_scaler_)):
            if sc is not None:
                arrays.update({f"{prefix}.{n}": a for n, a in sc.arrays().items()})
        for name in ("last_y_", "last_past_", "last_future_"):
            if getattr(self, name) is not None:
                arrays[name.rstrip("_")] = getattr(self, name)
        full_meta = {"training_history": self.training_history_.to_dict()}
        full_meta.update(meta or {})
        save_model_file(path, kind=MODEL_KIND, config=config, arrays=arrays, meta=full_meta)

    @classmethod
    def load(cls, path) -> "RNNForecaster":
        """A fitted forecaster from a model file written by :meth:`save` (its meta in ``meta_``)."""
        from ..train import History
        mf = load_model_file(path, expected_kind=MODEL_KIND)
        c, a = mf.config, mf.arrays
        params = dict(c["params"])
        params["quantiles"] = tuple(params["quantiles"])
        self = cls(**params)
        self.scaler_ = SeriesScaler.from_arrays(self.transform, self.scaler,
                                                {n.split(".", 1)[1]: v for n, v in a.items() if n.startswith("target.")})
        cov = "standard" if self.scaler == "none" else self.scaler
        self.past_scaler_ = self.future_scaler_ = None
        if c["n_past"]:
            self.past_scaler_ = SeriesScaler.from_arrays("level", cov, {n[5:]: v for n, v in a.items() if n.startswith("past.")})
        if c["n_future"]:
            self.future_scaler_ = SeriesScaler.from_arrays("level", cov, {n[7:]: v for n, v in a.items() if n.startswith("future.")})
        k, p, f = c["n_targets"], c["n_past"], c["n_future"]
        direct = self.strategy == "direct"
        self.net_ = ForecastNet(cell=self.cell, input_size=k + p + f, hidden_size=self.hidden_size,
                                num_layers=self.num_layers, dropout=self.dropout, strategy=self.strategy,
                                n_out=k if direct else k + p, head_size=head_size(self.head, self.quantiles),
                                horizon=self.horizon if direct else 1, future_size=f, dtype=np.dtype(self.dtype))
        self.net_.load_state_dict({n[4:]: v for n, v in a.items() if n.startswith("net.")})
        self.net_.eval()
        self.n_targets_, self.n_past_covariates_, self.n_future_covariates_ = k, p, f
        self.y_is_1d_, self.train_size_, self.seed_ = c["y_is_1d"], c["train_size"], c["seed"]
        self.last_y_ = a["last_y"]
        self.last_past_ = a.get("last_past")
        self.last_future_ = a.get("last_future")
        self.training_history_ = History.from_dict(mf.meta.get("training_history", {}))
        self.meta_ = {n: v for n, v in mf.meta.items() if n != "training_history"}
        return self
