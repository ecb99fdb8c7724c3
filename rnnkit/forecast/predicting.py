r"""Forecasting with a fitted :class:`~rnnkit.forecast.estimator.RNNForecaster`: inputs, inference, levels.

:func:`forecast` scales the history (refusing values whose scaled form
overflows), runs the recursive or direct inference of :mod:`.inference` and
maps the scaled forecasts back to levels; a forecast that is not finite is
refused, never returned.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import estimator as _estimator
from ..checks import check_choice, check_count
from ..errors import DataError, HyperparameterError
from ..estimator import flag_of
from ..runs import format_bytes
from ..nn.shapes import CELL_MODES, GATES
from .conformal import conformal_interval, conformal_quantiles, head_spread, spread_levels
from .inference import direct_forecast, recursive_forecast
from .validation import as_matrix
from .windows import stack_inputs

__all__ = ["forecast", "forecast_interval", "forecast_quantiles", "MAX_HORIZON", "INTERVAL_METHODS",
           "sample_path_bytes"]

MAX_HORIZON = 100_000        # forecast steps
INTERVAL_METHODS = ("conformal", "head")


def _inputs_for(est, H: int, y, past, future):
    """The last lookback input rows, the horizon's scaled future covariates and the last level."""
    L, d, dt = est.lookback, est.scaler_.order, est.dtype
    p, f = est.n_past_covariates_, est.n_future_covariates_
    if y is None:
        Yh, Ph, Fh = est.last_y_, est.last_past_, est.last_future_
        if past is not None:
            raise ValueError("past_covariates without y: pass the history y with its past covariates, "
                             "or neither to forecast from the end of the training data")
        F_fut = as_matrix("future_covariates", future, rows=H, cols=f, what="one row per forecast step")
    else:
        Yh = as_matrix("y", y, cols=est.n_targets_)
        if len(Yh) < L + d:
            raise DataError(f"the history (y; DATA on the command line) has {len(Yh)} values; forecasting needs "
                            f"at least the model's --lookback {L}" + (" + 1 (differencing)" if d else "")
                            + " values of history: give a longer history")
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
    u = est.scaler_.scale_checked(Yh, "y", dt)
    pc = None if Ph is None else est.past_scaler_.scale_checked(Ph, "past_covariates", dt)[d:]
    fc = None if not f else est.future_scaler_.scale_checked(np.concatenate([Fh, F_fut]),
                                                              "future_covariates", dt)[d:]
    X = stack_inputs(u, pc, fc)
    fut_rows = None if fc is None else fc[len(u):len(u) + H]        # f_{o+1} .. f_{o+H}
    return X[-L:], fut_rows, Yh[-1]

def sample_path_bytes(est, H: int) -> int:
    r"""Peak bytes of a recursive Gaussian interval's ``n_samples`` sample paths over ``H`` steps.

    The paths (S, H, k) exist as the list of steps, their float64 stack, the
    cumulative sum (differenced series) and np.quantile's sorted copy: about
    :math:`4 \cdot 8 S H k`; the S carried states and one step's activations add
    :math:`S \cdot n_{layers} \cdot (G + 3) \cdot h` values of the network's dtype.
    """
    S, k = int(est.n_samples), int(est.n_targets_)
    item = np.dtype(est.dtype).itemsize
    paths = 4 * 8 * S * int(H) * k                                                  # (S, H, k) x 4
    state = item * S * int(est.num_layers) * int(est.hidden_size) * (GATES[CELL_MODES[est.cell]] + 3)
    return paths + state


def _check_sample_memory(est, H: int) -> None:
    """Refuse, before allocating, sample paths that would not fit in the available memory."""
    need, have = sample_path_bytes(est, H), _estimator.available_memory()
    if have is not None and need > have:
        raise HyperparameterError(
            f"--horizon {H} with --n-samples {est.n_samples} sample paths needs about {format_bytes(need)} of memory for "
            f"the prediction intervals ({est.n_samples:,} x {H:,} x {est.n_targets_} values), but {format_bytes(have)} "
            "is available; forecast fewer steps (--horizon) or use fewer sample paths (--n-samples)")


def forecast(est, horizon, y, past, future, quantiles=()) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(mean (H,) or (H, k), quantiles (H, Q[, k]) or None) from the fitted forecaster ``est``; see RNNForecaster.predict."""
    est._check_fitted()
    H = est.horizon if horizon is None else check_count(flag_of("horizon"), horizon, 1)
    if H > MAX_HORIZON:
        raise HyperparameterError(f"{flag_of('horizon')} must be <= {MAX_HORIZON:,}, got {H}")
    direct = est.strategy == "direct"
    if direct and H > est.horizon:
        raise HyperparameterError(f"{flag_of('horizon')} {H}: this direct model was trained for {est.horizon} "
                                  "steps; ask for at most that many, or train with --strategy recursive (any "
                                  "horizon) or a longer --horizon")
    H_run = est.horizon if direct else H
    window, fut, last = _inputs_for(est, H_run, y, past, future)
    if quantiles and est.head == "point":
        raise HyperparameterError("this model has --head point and gives no intervals or quantiles of its own; "
                                  "use the conformal ones (--interval-method conformal, the default) or train "
                                  "with --head gaussian or --head quantile")
    if quantiles and est.head == "quantile":
        lo, hi = min(est.quantiles), max(est.quantiles)
        if min(quantiles) < lo - 1e-12 or max(quantiles) > hi + 1e-12:
            raise HyperparameterError(
                f"quantile levels {list(quantiles)} (from --coverage): the model was trained with --quantiles "
                f"{','.join(f'{q:g}' for q in est.quantiles)} and gives levels in [{lo:g}, {hi:g}] only, so "
                f"coverage up to {hi - lo:g}; lower --coverage, train with wider --quantiles or use the conformal "
                "intervals (--interval-method conformal)")
    if quantiles and not direct and est.head == "gaussian":
        _check_sample_memory(est, H)
    with np.errstate(over="ignore", invalid="ignore"), est.net_.eval_mode():
        if direct:
            out = direct_forecast(est.net_, window, fut, head=est.head, trained_quantiles=est.quantiles,
                                  quantiles=quantiles)
        else:
            out = recursive_forecast(est.net_, window, None if fut is None else fut[1:], H,
                                     k=est.n_targets_, head=est.head, order=est.scaler_.order,
                                     quantiles=quantiles, n_samples=est.n_samples,
                                     rng=np.random.default_rng([est.seed_, 7]))
        mean = est.scaler_.to_levels(out["mean"][:H], last)                       # (H, k)
        q = None
        if "quantiles" in out:
            q = est.scaler_.to_levels(out["quantiles"][:H], last)                 # (H, Q, k)
            q = np.sort(q, axis=1)          # sampling noise must not make quantiles cross
    for name, a in (("forecast", mean), ("forecast quantiles", q)):
        if a is not None and not np.isfinite(a).all():
            step = int(np.argwhere(~np.isfinite(a))[0][0]) + 1
            raise DataError(f"the {name} overflows (not a finite number) from step {step}: the data's values "
                            "are too large for this model; rescale the data (e.g. in thousands) or use "
                            "--transform log")
    if est.y_is_1d_:
        mean = mean[:, 0]
        q = None if q is None else q[..., 0]
    return mean, q


# -- intervals: conformal (default) or the head's own -------------------------------------------
def _check_method(est, method: str) -> None:
    check_choice("method (--interval-method)", method, INTERVAL_METHODS)
    if method == "conformal" and est.calibration_ is None:
        raise HyperparameterError(
            "this model has no conformal calibration (it was trained with --calibration-fraction 0, or it is "
            "a checkpoint saved before training ended): train with --calibration-fraction above 0, or ask "
            "for the head's uncalibrated intervals with method=\"head\" (--interval-method head)")


def _centre_spread(est, horizon, y, past, future):
    """(centre (H, k), spread (H, k)) of a forecast: the inputs of the conformal intervals."""
    levels = spread_levels(est)
    mean, q = forecast(est, horizon, y, past, future, levels)
    H = len(mean)
    mean = mean.reshape(H, -1)                                                    # (H, k)
    return mean, head_spread(mean, None if q is None else q.reshape(H, len(levels), -1))


def _shaped(est, a: np.ndarray) -> np.ndarray:
    return a[..., 0] if est.y_is_1d_ else a


def forecast_quantiles(est, levels, horizon, y, past, future, method: str = "conformal") -> np.ndarray:
    """Quantiles (H, Q[, k]) at ``levels``; see RNNForecaster.predict_quantiles."""
    est._check_fitted()
    _check_method(est, method)
    if method == "head":
        return forecast(est, horizon, y, past, future, levels)[1]
    centre, spread = _centre_spread(est, horizon, y, past, future)
    return _shaped(est, conformal_quantiles(centre, spread, est.calibration_, levels))


def forecast_interval(est, coverage: float, horizon, y, past, future, method: str = "conformal"):
    """(lower, upper), each (H[, k]); see RNNForecaster.predict_interval."""
    est._check_fitted()
    _check_method(est, method)
    if method == "head":
        q = forecast(est, horizon, y, past, future, [(1 - coverage) / 2, (1 + coverage) / 2])[1]
        return q[:, 0], q[:, 1]
    centre, spread = _centre_spread(est, horizon, y, past, future)
    lo, hi = conformal_interval(centre, spread, est.calibration_, coverage)
    return _shaped(est, lo), _shaped(est, hi)
