r"""Forecasting with a trained :class:`~rnnkit.forecast.model.ForecastNet`, in scaled units.

Both functions start from the last L input rows of a history and return, for
horizon steps h = 1..H, the scaled forecast :math:`c_h` that
:meth:`SeriesScaler.to_levels` maps back (for differenced series the
*cumulative* change from the origin).

- **recursive**: the network reads the window, predicts one step, and the
  prediction is fed back as the next input with the carried state. The point
  path feeds back the mean. Intervals come from ``n_samples`` sample paths
  that feed back a draw from the Gaussian head instead (ancestral sampling),
  so the uncertainty of early steps propagates into later ones.
- **direct**: one pass gives all H steps; a Gaussian head's quantiles are
  :math:`\mu + \sigma\,\Phi^{-1}(\tau)`, a quantile head's are interpolated
  between the levels it was trained on.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Dict, Optional, Sequence

import numpy as np

from .heads import gaussian_params

__all__ = ["recursive_forecast", "direct_forecast", "gaussian_ppf"]


def gaussian_ppf(q) -> np.ndarray:
    """Standard normal quantile function Φ^{-1}, element-wise."""
    nd = NormalDist()
    return np.vectorize(nd.inv_cdf, otypes=[np.float64])(np.asarray(q, dtype=np.float64))


def _interp_quantiles(raw: np.ndarray, levels: Sequence[float], q: Sequence[float]) -> np.ndarray:
    """Quantiles q from a quantile head's raw (H, k, Q0) at trained ``levels``: (H, k, Q).

    The raw values are sorted first (monotone rearrangement), so quantiles never cross.
    """
    r = np.sort(raw, axis=-1)
    levels = np.asarray(levels, dtype=np.float64)
    out = np.empty(raw.shape[:-1] + (len(q),))
    for idx in np.ndindex(*raw.shape[:-1]):
        out[idx] = np.interp(q, levels, r[idx])
    return out


def recursive_forecast(net, window: np.ndarray, future: Optional[np.ndarray], horizon: int, *, k: int,
                       head: str, order: int, quantiles: Sequence[float] = (), n_samples: int = 0,
                       rng=None) -> Dict[str, np.ndarray]:
    """Recursive forecast from ``window`` (L, D) of input rows.

    ``future`` (H-1, f) holds the known-future covariates of steps 2..H (the
    window's last row already carries step 1's), or None.
    Returns ``{"mean": (H, k)}`` and, with ``quantiles`` and a Gaussian head,
    ``{"quantiles": (H, Q, k)}`` from the sample paths.
    """
    dt = net.rnn.dtype
    x = window[:, None, :].astype(dt)                               # (L, 1, D)
    raw, state, _ = net.forward(x, need_cache=False)
    last = raw[-1]                                                  # (1, n_out, P)

    def roll(first_raw, state, n, draw):
        """Feed predictions back for H steps; ``draw`` turns raw (n, n_out, P) into inputs (n, n_out)."""
        steps = []
        r = first_raw
        for h in range(horizon):
            v = draw(r)                                             # (n, n_out)
            steps.append(v[:, :k])
            if h + 1 == horizon:
                break
            inp = v if future is None else np.concatenate([v, np.repeat(future[h][None], n, 0)], axis=1)
            out, state, _ = net.forward(inp[None].astype(dt), state, need_cache=False)   # (1, n, n_out, P)
            r = out[0]
        path = np.stack(steps, axis=1).astype(np.float64)             # (n, H, k)
        return np.cumsum(path, axis=1) if order else path

    result = {"mean": roll(last, state, 1, lambda r: r[..., 0])[0]}
    if quantiles and head == "gaussian" and n_samples > 0:
        rng = np.random.default_rng(rng)
        tile = lambda s: np.repeat(s, n_samples, axis=1)
        state_s = tuple(tile(s) for s in state) if isinstance(state, tuple) else tile(state)

        def sample(r):
            mu, sigma = gaussian_params(r.astype(np.float64))
            return mu + sigma * rng.standard_normal(mu.shape)

        paths = roll(np.repeat(last, n_samples, axis=0), state_s, n_samples, sample)   # (S, H, k)
        result["samples"] = paths
        result["quantiles"] = np.quantile(paths, np.asarray(quantiles), axis=0).transpose(1, 0, 2)
    return result


def direct_forecast(net, window: np.ndarray, future: Optional[np.ndarray], *, head: str,
                    trained_quantiles: Sequence[float] = (), quantiles: Sequence[float] = ()) -> Dict[str, np.ndarray]:
    """Direct forecast from ``window`` (L, D); ``future`` (H, f) of the horizon's known-future covariates.

    Returns ``{"mean": (H, k)}`` and, with ``quantiles``, ``{"quantiles": (H, Q, k)}``.
    """
    dt = net.rnn.dtype
    fut = None if future is None else future.reshape(1, -1).astype(dt)
    raw, _, _ = net.forward(window[:, None, :].astype(dt), future=fut, need_cache=False)
    raw = raw[0].astype(np.float64)                                 # (H, k, P)
    if head == "quantile":                                          # the median is the point forecast
        result = {"mean": _interp_quantiles(raw, trained_quantiles, [0.5])[..., 0]}
    else:
        result = {"mean": raw[..., 0]}
    if quantiles:
        q = np.asarray(quantiles, dtype=np.float64)
        if head == "gaussian":
            mu, sigma = gaussian_params(raw)                        # (H, k)
            result["quantiles"] = mu[:, None] + sigma[:, None] * gaussian_ppf(q)[None, :, None]
        elif head == "quantile":
            result["quantiles"] = _interp_quantiles(raw, trained_quantiles, q).transpose(0, 2, 1)
    return result
