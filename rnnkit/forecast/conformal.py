r"""Split-conformal calibration of forecast intervals, one calibration per horizon step.

For every calibration origin :math:`o` (a point of the series whose future the
network's weights never saw) and step :math:`h = 1..H` the fitted model gives a
centre :math:`c_{o,h}` (its point forecast) and a spread :math:`s_{o,h}` (the width
of its head's own central interval between levels ``spread_levels``; 1 for a
point head), and the score is the scaled signed residual

.. math::  z_{o,h} = (y_{o+h-1} - c_{o,h}) / s_{o,h}.

For a new forecast with centre :math:`c_h` and spread :math:`s_h`:

- the interval at coverage :math:`1-\alpha` is :math:`c_h \pm s_h\,\hat q_h` with
  :math:`\hat q_h` the :math:`\lceil (n_h+1)(1-\alpha) \rceil`-th smallest of the
  :math:`n_h` values :math:`|z_{\cdot,h}|` (symmetric split conformal);
- the quantile at level :math:`\tau` is :math:`c_h + s_h\,\hat z_h(\tau)` with
  :math:`\hat z_h(\tau)` the :math:`\lceil (n_h+1)\tau \rceil`-th smallest score for
  :math:`\tau \ge 1/2` and the :math:`\lfloor (n_h+1)\tau \rfloor`-th for
  :math:`\tau < 1/2` (one-sided split conformal for each level).

**Guarantee.** If the calibration pairs and the new one are exchangeable, the
interval covers with probability at least :math:`1-\alpha` (and at most
:math:`1-\alpha+1/(n_h+1)` when scores do not tie), whatever the network and the
noise are (Vovk, Gammerman & Shafer 2005; Lei et al. 2018); a level-:math:`\tau`
upper quantile lies above the outcome with probability at least :math:`\tau`.
The head's spread only shapes the interval (wider where the head is unsure);
the calibration is what keeps the promise. **Assumption.** Time series are not
exchangeable: the guarantee holds approximately when the errors' distribution
is stable from the calibration part (the end of the training series) to the
forecast; a break in level or volatility after it breaks the promise. When
:math:`n_h` is too small for a level (e.g. fewer than 9 scores for 90%), the
largest score is used and the promise is weaker; :func:`shortfall` says where.
A recursive model asked for more steps than its ``horizon`` (the steps it was
calibrated for) reuses the last calibrated step's scores beyond it: the head's
spread still grows with the step, but those steps carry no guarantee.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["calibration_scores", "checkpoint_calibration", "calibrate", "conformal_interval", "conformal_quantiles",
           "head_spread", "shortfall", "scores_needed", "percent", "spread_levels", "SPREAD_LEVELS", "MAX_ORIGINS"]

SPREAD_LEVELS = (0.1, 0.9)      # the head's central 80% interval sets the spread of a Gaussian head
MAX_ORIGINS = 2000              # calibration origins at most (the most recent ones)


def spread_levels(est) -> Tuple[float, ...]:
    """Levels whose head quantiles give the spread: the widest trained pair for a quantile head."""
    if est.head == "quantile":
        return (float(min(est.quantiles)), float(max(est.quantiles)))
    return SPREAD_LEVELS if est.head == "gaussian" else ()


def head_spread(mean: np.ndarray, q: Optional[np.ndarray]) -> np.ndarray:
    """Spread s (H, k) from the head's two quantiles q (H, 2, k), or 1 without a head interval."""
    if q is None:
        return np.ones_like(mean)
    s = q[:, 1] - q[:, 0]                                                    # (H, k)
    # a degenerate head interval must not make a score infinite: floor it at a tiny share of the level
    floor = 1e-9 * np.maximum(np.abs(mean), 1.0)
    return np.maximum(s, floor)


def calibration_scores(est, Y: np.ndarray, P, F, start: int) -> List[list]:
    """The fitted ``est``'s scores (as JSON lists, one per step) from origins start .. len(Y) - 1.

    Y (T, k), P (T, p) or None, F (T, f) or None are the whole series fit saw; the network was trained
    on values before ``start`` only.
    """
    from .predicting import forecast
    levels = spread_levels(est)

    def forecast_at(o, steps):
        H_run = est.horizon if est.strategy == "direct" else steps
        y_hist = Y[:o, 0] if est.y_is_1d_ else Y[:o]
        mean, q = forecast(est, steps, y_hist, None if P is None else P[:o],
                           None if F is None else F[:o + H_run], levels)
        mean = mean.reshape(steps, -1)                                            # (steps, k)
        q = None if q is None else q.reshape(steps, len(levels), -1)              # (steps, 2, k)
        return Y[o:o + steps], mean, head_spread(mean, q)

    scores = calibrate(forecast_at, len(Y), start, est.horizon, est.n_targets_,
                       full_horizon=est.strategy == "direct" and F is not None)
    return [z.tolist() for z in scores]


def calibrate(forecast_at, n: int, start: int, horizon: int, k: int, *, full_horizon: bool) -> List[np.ndarray]:
    """Scores z per step: a list of H arrays (n_h, k), from origins ``start`` .. n - 1.

    ``forecast_at(o, steps)`` returns (actual (steps, k), centre (steps, k), spread (steps, k))
    for the forecast from origin o (history y[:o]). With ``full_horizon`` only origins whose
    whole horizon lies inside the series are used (a direct model with known-future covariates
    needs them all).
    """
    last = n - horizon if full_horizon else n - 1
    origins = list(range(start, last + 1))[-MAX_ORIGINS:]
    scores: List[List[np.ndarray]] = [[] for _ in range(horizon)]
    for o in origins:
        steps = min(horizon, n - o)
        actual, centre, spread = forecast_at(o, steps)
        z = (actual - centre) / spread                                       # (steps, k)
        for h in range(steps):
            scores[h].append(z[h])
    return [np.asarray(s, dtype=np.float64).reshape(-1, k) for s in scores]


def _order_stat(sorted_z: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The rank-th smallest (1-based) per column; ranks outside 1..n clip to the extremes."""
    n = len(sorted_z)
    idx = np.clip(rank, 1, n) - 1
    return sorted_z[idx]


def _scores_for(scores: Sequence[np.ndarray], H: int) -> List[np.ndarray]:
    if H > len(scores):
        # a recursive model asked for more steps than it was calibrated for: the last step's scores
        # are the nearest evidence (and the widest, as errors grow with the step)
        scores = list(scores) + [scores[-1]] * (H - len(scores))
    return [np.sort(np.asarray(s, dtype=np.float64), axis=0) for s in scores[:H]]


def conformal_interval(centre: np.ndarray, spread: np.ndarray, scores: Sequence[np.ndarray],
                       coverage: float) -> Tuple[np.ndarray, np.ndarray]:
    """(lower, upper), each (H, k): centre ± spread · the conformal quantile of |z| per step."""
    H = len(centre)
    q = np.empty_like(centre)                                                # (H, k)
    for h, z in enumerate(_scores_for([np.abs(s) for s in scores], H)):
        rank = int(np.ceil((len(z) + 1) * coverage))
        q[h] = _order_stat(z, np.asarray(rank))
    return centre - spread * q, centre + spread * q


def conformal_quantiles(centre: np.ndarray, spread: np.ndarray, scores: Sequence[np.ndarray],
                        levels: Sequence[float]) -> np.ndarray:
    """Quantiles (H, Q, k) at ``levels``: centre + spread · the conformal quantile of the signed z."""
    H, Q = len(centre), len(levels)
    out = np.empty((H, Q) + centre.shape[1:])
    for h, z in enumerate(_scores_for(scores, H)):
        n1 = len(z) + 1
        for i, tau in enumerate(levels):
            rank = int(np.ceil(n1 * tau)) if tau >= 0.5 else int(np.floor(n1 * tau))
            out[h, i] = centre[h] + spread[h] * _order_stat(z, np.asarray(rank))
    return np.sort(out, axis=1)


def shortfall(scores: Sequence[np.ndarray], coverage: float) -> List[int]:
    """Steps h (1-based) with too few scores for a finite conformal interval at ``coverage``."""
    return [h + 1 for h, z in enumerate(scores) if np.ceil((len(z) + 1) * coverage) > len(z)]


def scores_needed(coverage: float) -> int:
    """The fewest scores n with ceil((n + 1) * coverage) <= n: what a step needs to promise ``coverage``."""
    n = max(1, int(np.floor(coverage / (1.0 - coverage))) - 1)
    for _ in range(8):                       # a step or two past the estimate (float rounding near 1)
        if np.ceil((n + 1) * coverage) <= n:
            break
        n += 1
    return n


def shortfall_note(scores: Sequence[np.ndarray], coverage: float, H: Optional[int] = None) -> Optional[str]:
    """One line naming the steps of an ``H``-step forecast (default: the calibrated ones) whose intervals cannot
    promise ``coverage`` (None when every step can); steps past the calibrated ones use the last one's scores,
    as the intervals do."""
    scores = _scores_for(scores, len(scores) if H is None else H)
    short = shortfall(scores, coverage)
    if not short:
        return None
    lo, hi = min(len(scores[h - 1]) for h in short), max(len(scores[h - 1]) for h in short)
    steps = f"step {short[0]}" if len(short) == 1 else f"steps {_ranges(short)}"
    have = str(lo) if lo == hi else f"{lo}-{hi}"
    return (f"intervals: {steps} of {len(scores)} had {have} calibration forecast(s), fewer "
            f"than the {scores_needed(coverage)} that {percent(coverage)} coverage needs: their intervals use the "
            "largest error seen and may cover less (a longer series or a larger --calibration-fraction gives more)")


def _ranges(steps: Sequence[int]) -> str:
    """``[1, 2, 3, 5]`` as ``1-3, 5``."""
    out, start = [], steps[0]
    for a, b in zip(steps, list(steps[1:]) + [None]):
        if b != a + 1:
            out.append(str(start) if start == a else f"{start}-{a}")
            start = b
    return ", ".join(out)


def percent(level: float) -> str:
    """A coverage level as a percentage with the digits it has: 0.9 -> 90%, 0.999 -> 99.9% (never rounded to 100%)."""
    return f"{format(level * 100, '.12g')}%"


def checkpoint_calibration(path, calibration) -> None:
    """Store (or, with None, drop) the scores in the fitted config of the training checkpoint at ``path``.

    The scores exist only once training has ended; the final checkpoint gets them so that it forecasts
    like the model file. A resumed run's checkpoints have none until its own end writes new ones (the resume
    check leaves them out: ``RNNForecaster._fitted_after_training``), so a refused resume changes nothing.
    """
    from ..train.checkpoint import load_checkpoint, save_checkpoint
    ck = load_checkpoint(path)
    fitted = dict(ck.config.get("fitted") or {})
    if calibration is None and "calibration" not in fitted:
        return
    fitted.pop("calibration", None)
    if calibration is not None:
        fitted["calibration"] = calibration
    ck.config = dict(ck.config, fitted=fitted)
    save_checkpoint(path, ck)
