r"""The forecasting network: a recurrent encoder and a linear head.

Input at step s (scaled units, see :mod:`rnnkit.forecast.scaling`):
:math:`x_s = [u_s,\ p_s,\ f_{s+1}]` - the targets, the past covariates, and the
known-future covariates of the step being predicted.

- **recursive**: every step predicts the next one,
  :math:`r_s = W h_s + b` with shape (n_out, P): one step ahead, trained with
  teacher forcing at every step; at forecast time the prediction is fed back
  as the next input with the carried state.
- **direct**: the last state and the known-future covariates of the whole
  horizon give all H steps at once,
  :math:`r = W [h_L;\ f_{t+1}, \dots, f_{t+H}] + b` with shape (H, n_out, P).

P is the head's number of raw outputs (:mod:`rnnkit.forecast.heads`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ..nn import Linear, Module, Recurrent
from ..nn.shapes import CELL_MODES

__all__ = ["ForecastNet", "CELLS"]

CELLS = tuple(CELL_MODES)


class NetCache(NamedTuple):
    rnn: object
    head: object
    T: int
    direct: bool


class ForecastNet(Module):
    """Recurrent encoder + linear head (see the module docstring).

    Parameters
    ----------
    input_size : D = k + p + f (targets, past and known-future covariates)
    n_out : channels predicted per step (k; in the recursive strategy also p)
    head_size : P raw numbers per channel and step
    horizon : H (direct strategy only; 1 for recursive)
    future_size : f, known-future covariates fed to the direct head
    """

    def __init__(self, *, cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
                 strategy: str, n_out: int, head_size: int, horizon: int, future_size: int,
                 dtype=np.float32, rng=None):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.direct = strategy == "direct"
        self.n_out, self.head_size, self.horizon, self.future_size = n_out, head_size, horizon, future_size
        self.rnn = Recurrent(CELL_MODES[cell], input_size, hidden_size, num_layers, dropout=dropout, dtype=dtype,
                             rng=rng)
        head_in = hidden_size + (horizon * future_size if self.direct else 0)
        steps = horizon if self.direct else 1
        self.head = Linear(head_in, steps * n_out * head_size, dtype=dtype, rng=rng)

    def forward(self, x: np.ndarray, state=None, future: Optional[np.ndarray] = None, rng=None, *,
                need_cache: bool = True):
        """Raw outputs, final state and cache.

        x: (T, N, D). Recursive: raw (T, N, n_out, P). Direct: ``future``
        (N, H*f) or None, raw (N, H, n_out, P). ``need_cache=False`` (forecasting):
        no cache (None), the stack runs its inference loops.
        """
        out, state_n, c_rnn = self.rnn.forward(x, state, rng=rng, need_cache=need_cache)  # (T, N, Hh)
        T, N, _ = out.shape
        if self.direct:
            z = out[-1]                                             # (N, Hh)
            if self.future_size:
                z = np.concatenate([z, future], axis=1)             # (N, Hh + H*f)
            raw, c_head = self.head.forward(z)                      # (N, H*n_out*P)
            raw = raw.reshape(N, self.horizon, self.n_out, self.head_size)
        else:
            raw, c_head = self.head.forward(out)                    # (T, N, n_out*P)
            raw = raw.reshape(T, N, self.n_out, self.head_size)
        return raw, state_n, (NetCache(c_rnn, c_head, T, self.direct) if need_cache else None)

    def backward(self, d_raw: np.ndarray, cache: NetCache) -> None:
        """Add every parameter's gradient for the upstream gradient ``d_raw`` (raw's shape)."""
        c_rnn, c_head, T, direct = cache
        if direct:
            N = d_raw.shape[0]
            dz = self.head.backward(d_raw.reshape(N, -1), c_head)    # (N, Hh [+ H*f])
            Hh = self.rnn.hidden_size
            d_out = np.zeros((T, N, Hh), dtype=dz.dtype)
            d_out[-1] = dz[:, :Hh]
        else:
            Tn, N = d_raw.shape[:2]
            d_out = self.head.backward(d_raw.reshape(Tn, N, -1), c_head)   # (T, N, Hh)
        self.rnn.backward(d_out, c_rnn)

    def __call__(self, x, state=None, future=None, rng=None):
        return self.forward(x, state, future, rng)
