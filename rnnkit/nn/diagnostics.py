r"""Why a recurrent network learns or does not: how far back its gradient reaches, how saturated its gates are.

For a stack run over x_1..x_T, with a loss that depends on the last step only
through its output :math:`h_T` (``d_last`` = :math:`\partial L / \partial h_T`),

.. math::
    g_t = \left\lVert \frac{\partial L}{\partial h_t} \right\rVert_2, \qquad
    \frac{\partial L}{\partial s_{t-1}} = \frac{\partial L}{\partial s_t}\,
    \frac{\partial s_t}{\partial s_{t-1}}

(the top layer's :math:`h`, averaged over the batch). For a tanh RNN
:math:`\partial h_t / \partial h_{t-1} = \mathrm{diag}(1 - h_t^2) W_{hh}`, whose
repeated product shrinks geometrically when its largest singular value is below 1:
:math:`g_t` falls exponentially with :math:`T - t` (the vanishing gradient). The
LSTM's cell path multiplies by the forget gate :math:`f` instead, and the GRU's by
:math:`z`, which can stay near 1.

Nothing here is a second implementation: :func:`hidden_gradient_norms` runs the
layer's own :meth:`~rnnkit.nn.Recurrent.step_forward` and
:meth:`~rnnkit.nn.Recurrent.step_backward` (the exact backward pass) and only
records the state gradients it passes from step to step; no parameter gradient
is touched. :func:`gate_saturation` reads the gate values the cells keep for
their backward pass.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ..errors import ShapeError
from .cells import GRUCell, LSTMCell
from .recurrent_step import StepGradients
from .xp import host_if_needed, to_host

__all__ = ["hidden_gradient_norms", "gate_saturation", "SATURATED_HIGH", "SATURATED_LOW"]

SATURATED_HIGH, SATURATED_LOW = 0.95, 0.05

# the sigmoid gates in each cell's step cache: LSTM (i, f, g, o, c_prev, tanh_c), GRU (r, z, n, hw_n, h_prev)
_SIGMOID_GATES = {LSTMCell: lambda cache: {"input": cache[0], "forget": cache[1], "output": cache[3]},
                  GRUCell: lambda cache: {"reset": cache[0], "update": cache[1]}}


def _steps(rnn, x, state):
    x = host_if_needed(x)
    if x.ndim != 3:
        raise ShapeError(f"x: expected (T, N, D), got shape {x.shape}")
    caches, h_top = [], []
    for t in range(x.shape[0]):
        out, state, cache = rnn.step_forward(x[t, ...], state)                      # out (N, H)
        caches.append(cache)
        h_top.append(out)
    return caches, h_top


def hidden_gradient_norms(rnn, x, d_last, state=None) -> np.ndarray:
    """g_t = mean over the batch of ||dL/dh_t|| (top layer), t = 0..T-1, for a loss on h_{T-1} alone.

    ``rnn`` a unidirectional :class:`~rnnkit.nn.Recurrent` (eval mode: no dropout);
    ``x`` (T, N, D); ``d_last`` (N, H) = dL/dh_{T-1}; ``state`` the initial state
    (None: zeros). Returns (T,) float64. The parameters' ``.grad`` are left as they were.
    """
    caches, _ = _steps(rnn, x, state)
    T = len(caches)
    d_last = host_if_needed(d_last)
    if isinstance(d_last, np.ndarray):
        d_last = d_last.astype(rnn.dtype, copy=False)
    norms = np.empty(T)
    norms[T - 1] = np.linalg.norm(to_host(d_last).astype(np.float64), axis=1).mean()   # the figures are host numbers
    d_out, d_state = d_last, None
    sink = StepGradients()                    # the weight gradients are recorded here and dropped
    for t in range(T - 1, 0, -1):
        _, d_state = rnn.step_backward(d_out, caches[t], d_state, sink)
        sink.rows.clear()
        d_out = None
        dh = d_state[0] if isinstance(d_state, tuple) else d_state                 # (L, N, H)
        norms[t - 1] = np.linalg.norm(to_host(dh[-1, ...]).astype(np.float64), axis=1).mean()
    return norms


def gate_saturation(rnn, x, state=None) -> Optional[Dict[str, np.ndarray]]:
    """Per step t, the fraction of the sigmoid gates of every layer above 0.95 (``"high"``) and below 0.05 (``"low"``).

    Returns ``{"high": (T,), "low": (T,), "gates": {name: (T,) mean value}}``,
    or None for a cell without sigmoid gates (the tanh RNN).
    """
    read = _SIGMOID_GATES.get(type(rnn.cell))
    if read is None:
        return None
    caches, _ = _steps(rnn, x, state)
    high, low, means = [], [], {}
    for cache in caches:
        gates = {}
        for layer_cache in cache.cells:
            for name, g in read(layer_cache).items():
                gates.setdefault(name, []).append(np.asarray(to_host(g), dtype=np.float64).ravel())
        flat = np.concatenate([v for vs in gates.values() for v in vs])
        high.append(float((flat > SATURATED_HIGH).mean()))
        low.append(float((flat < SATURATED_LOW).mean()))
        for name, vs in gates.items():
            means.setdefault(name, []).append(float(np.concatenate(vs).mean()))
    return {"high": np.array(high), "low": np.array(low), "gates": {k: np.array(v) for k, v in means.items()}}
