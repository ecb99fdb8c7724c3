"""An sktime forecaster around :class:`RNNForecaster` (sktime is an optional dependency).

``SktimeRNNForecaster`` follows sktime's ``BaseForecaster`` extension contract:
``_fit(y, X, fh)``, ``_predict(fh, X)``, ``_predict_quantiles``,
``_predict_interval`` and ``_update``. ``X`` is used as known-future
covariates (sktime passes ``X`` for the forecast horizon to ``predict``).
Forecasts start at the cutoff and condition on every observation seen so far
(``update`` adds observations; weights change only with ``update_params=True``,
which refits). Horizons are out-of-sample only.

``predict_interval`` and ``predict_quantiles`` are split-conformal by default
(``interval_method="conformal"``: calibrated per horizon step on the held-out
``calibration_fraction`` of the training series, see :mod:`rnnkit.forecast.conformal`);
``interval_method="head"`` gives the network head's own, uncalibrated ones.

The hyperparameters are :class:`RNNForecaster`'s; the defaults are kept small
here so that sktime's test suite runs quickly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sktime.forecasting.base import BaseForecaster

from .estimator import RNNForecaster

__all__ = ["SktimeRNNForecaster"]


class SktimeRNNForecaster(BaseForecaster):
    """sktime adapter of :class:`rnnkit.forecast.RNNForecaster` (see the module docstring).

    Examples
    --------
    >>> from sktime.datasets import load_airline
    >>> from rnnkit.forecast.sktime_adapter import SktimeRNNForecaster
    >>> y = load_airline()
    >>> f = SktimeRNNForecaster(lookback=24, transform="log_return", epochs=5, random_state=0)
    >>> f = f.fit(y)
    >>> y_pred = f.predict(fh=[1, 2, 3])
    >>> len(y_pred)
    3
    """

    _tags = {
        "authors": "rnnkit",
        "capability:multivariate": True,
        "capability:exogenous": True,
        "capability:insample": False,
        "capability:pred_int": True,
        "capability:pred_int:insample": False,
        "capability:missing_values": False,
        "capability:non_contiguous_X": False,
        "capability:update": True,
        "capability:random_state": True,
        "y_inner_mtype": "pd.DataFrame",
        "X_inner_mtype": "pd.DataFrame",
        "requires-fh-in-fit": False,
        "X-y-must-have-same-index": True,
        "python_dependencies": "numpy",
    }

    def __init__(self, lookback=12, horizon=1, strategy="recursive", cell="gru", hidden_size=16, num_layers=1,
                 dropout=0.0, head="gaussian", quantiles=(0.05, 0.5, 0.95), transform="level", scaler="standard",
                 epochs=50, batch_size=32, learning_rate=3e-3, weight_decay=0.0, clip_norm=1.0,
                 max_minutes=None, validation_fraction=0.0, calibration_fraction=0.2, early_stopping_patience=10,
                 n_samples=200, dtype="float32", random_state=0, interval_method="conformal"):
        # stored verbatim under the keyword names (scikit-learn/sktime contract): the same settings as
        # RNNForecaster's (which _fit passes on one to one) and the interval method
        params = dict(locals())
        del params["self"]
        for name, value in params.items():
            setattr(self, name, value)
        super().__init__()
        self.set_config(remember_data=True)     # _predict conditions on every observation seen

    # -- helpers ----------------------------------------------------------
    def _steps(self, fh):
        steps = np.asarray(fh.to_relative(self.cutoff), dtype=int)
        if np.any(steps < 1):
            raise NotImplementedError("SktimeRNNForecaster forecasts out of sample only (fh >= 1)")
        return steps

    def _future_rows(self, X, H):
        """Known-future covariates of steps 1..H after the cutoff, from X (sktime passes X for fh)."""
        if self._X_columns is None:
            return None
        if X is None:
            raise ValueError("this forecaster was fitted with X; pass X for the forecast horizon to predict")
        idx = pd.Index(self._absolute(np.arange(1, H + 1)))
        missing = idx.difference(X.index)
        if len(missing):
            raise ValueError(f"X lacks rows for the forecast steps {list(missing)[:5]}: the network needs X for "
                             "every step from the cutoff up to the last step of fh")
        return X.loc[idx, self._X_columns].to_numpy(dtype=np.float64)

    def _absolute(self, steps):
        from sktime.forecasting.base import ForecastingHorizon
        return ForecastingHorizon(list(steps), is_relative=True).to_absolute(self.cutoff).to_pandas()

    def _history(self):
        y = self._y
        X = None if self._X_columns is None else self._X.loc[y.index, self._X_columns].to_numpy(dtype=np.float64)
        return y.to_numpy(dtype=np.float64), X

    def _run(self, fh, X, quantiles=()):
        steps = self._steps(fh)
        H = int(steps.max())
        y_hist, X_hist = self._history()
        F = None
        if X_hist is not None:
            F = np.concatenate([X_hist, self._future_rows(X, H)])
        kw = {"y": y_hist, "future_covariates": F}
        if quantiles:
            out = self.forecaster_.predict_quantiles(list(quantiles), H, **kw,
                                                     method=self.interval_method)    # (H, Q, k)
        else:
            out = self.forecaster_.predict(H, **kw)                                   # (H, k)
        index = fh.to_absolute(self.cutoff).to_pandas()
        return out[steps - 1], index

    # -- sktime interface -------------------------------------------------
    def _fit(self, y, X=None, fh=None):
        params = self.get_params(deep=False)
        params.pop("interval_method")
        # a direct model needs its horizon up front, and the conformal calibration is per step of it
        if fh is not None:
            params["horizon"] = max(self.horizon, int(np.max(fh.to_relative(self.cutoff))))
        self.forecaster_ = RNNForecaster(**params)
        self._X_columns = None if X is None else list(X.columns)
        y_arr, X_arr = y.to_numpy(dtype=np.float64), None if X is None else X.to_numpy(dtype=np.float64)
        self.forecaster_.fit(y_arr, future_covariates=X_arr)
        return self

    def _update(self, y, X=None, update_params=True):
        if update_params:
            y_all, X_all = self._history()
            self.forecaster_.fit(y_all, future_covariates=X_all)
        return self

    def _predict(self, fh, X=None):
        values, index = self._run(fh, X)
        return pd.DataFrame(values, index=index, columns=self._y.columns)

    def _predict_quantiles(self, fh, X, alpha):
        values, index = self._run(fh, X, quantiles=list(alpha))                       # (n, Q, k)
        cols = pd.MultiIndex.from_product([list(self._y.columns), list(alpha)])
        flat = values.transpose(0, 2, 1).reshape(len(index), -1)                      # (n, k*Q), var-major
        return pd.DataFrame(flat, index=index, columns=cols)

    def _predict_interval(self, fh, X, coverage):
        """Each coverage's central interval from RNNForecaster.predict_interval (symmetric conformal by default)."""
        steps = self._steps(fh)
        H = int(steps.max())
        y_hist, X_hist = self._history()
        F = None if X_hist is None else np.concatenate([X_hist, self._future_rows(X, H)])
        bounds = {}
        for c in coverage:
            lo, hi = self.forecaster_.predict_interval(float(c), H, y=y_hist, future_covariates=F,
                                                       method=self.interval_method)
            bounds[c] = (lo.reshape(H, -1)[steps - 1], hi.reshape(H, -1)[steps - 1])     # (n, k) each
        cols, data = [], []
        for j, var in enumerate(self._y.columns):
            for c in coverage:
                cols += [(var, c, "lower"), (var, c, "upper")]
                data += [bounds[c][0][:, j], bounds[c][1][:, j]]
        index = fh.to_absolute(self.cutoff).to_pandas()
        return pd.DataFrame(np.stack(data, axis=1), index=index, columns=pd.MultiIndex.from_tuples(cols))

    @classmethod
    def get_test_params(cls, parameter_set="default"):
        """Small, fast settings for sktime's test suite."""
        return [
            {"lookback": 3, "hidden_size": 4, "epochs": 2, "n_samples": 20, "random_state": 0},
            {"lookback": 4, "hidden_size": 4, "epochs": 2, "cell": "lstm", "transform": "diff",
             "scaler": "minmax", "n_samples": 20, "random_state": 1},
        ]
