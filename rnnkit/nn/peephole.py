r"""Peephole LSTM step (Gers, Schraudolph and Schmidhuber 2002): the gates also look at the cell state.

.. math::
    [a_i, a_f, a_g, a_o] &= xw + hw \\
    i = \sigma(a_i + p_i \odot c),\quad f &= \sigma(a_f + p_f \odot c),\quad g = \tanh(a_g) \\
    c' &= f \odot c + i \odot g \\
    o &= \sigma(a_o + p_o \odot c'),\quad h' = o \odot \tanh(c')

with diagonal peephole weights: the input and forget gates see the cell state
entering the step, the output gate the new one (as in the paper, ONNX and Keras'
``PeepholeLSTMCell``). Gates packed i, f, g, o as in :class:`~rnnkit.nn.cells.LSTMCell`.

The layer's parameter ``weight_ph_l{l}[_reverse]`` is (3H,) = **[p_i, p_f, p_o]**,
our gate order without g. ONNX's LSTM operator packs its ``P`` input as
**[p_i, p_o, p_f]** (and its gates as i, o, f, c): to export, reorder the blocks
as ``P = concat(p_i, p_o, p_f)``.

The cell is bound to its weights for one forward call (made by the layer per call,
never kept); the weight gradients are formed after the walk from every step's gate
gradients, one sum each (:meth:`PeepholeLSTMCell.parameter_gradients`):

.. math::
    dp_i = \sum_{t,n} da_i \odot c_{t-1},\quad dp_f = \sum_{t,n} da_f \odot c_{t-1},\quad
    dp_o = \sum_{t,n} da_o \odot c_t
"""

from __future__ import annotations

from typing import Dict, List

from .cells import Cell, sigmoid
from .xp import device_of, namespace

__all__ = ["PeepholeLSTMCell"]


class PeepholeLSTMCell(Cell):
    """LSTM step with peepholes ``peephole`` (3H,) = [p_i, p_f, p_o]; state ``(h, c)``; G = 4."""

    num_gates = 4
    num_states = 2
    split_recurrent = False
    fused_kernel = "lstm_peephole"

    def __init__(self, peephole):
        self.peephole = peephole                                # (3H,)

    def step(self, xw, hw, state):
        h_prev, c_prev = state
        H = c_prev.shape[1]
        p_i, p_f, p_o = self.peephole[:H], self.peephole[H:2 * H], self.peephole[2 * H:]
        xp = namespace(xw, hw)
        a = xw + hw                                             # (N, 4H)
        i = sigmoid(a[:, :H] + p_i * c_prev)                    # (N, H)
        f = sigmoid(a[:, H:2 * H] + p_f * c_prev)
        g = xp.tanh(a[:, 2 * H:3 * H])
        c = f * c_prev + i * g                                  # (N, H)
        o = sigmoid(a[:, 3 * H:] + p_o * c)
        tanh_c = xp.tanh(c)
        return (o * tanh_c, c), (i, f, g, o, c_prev, c, tanh_c)

    def step_backward(self, d_state, cache, d_xw, d_hw=None):
        dh, dc = d_state
        i, f, g, o, c_prev, c, tanh_c = cache
        H = c.shape[1]
        p_i, p_f, p_o = self.peephole[:H], self.peephole[H:2 * H], self.peephole[2 * H:]
        da_o = dh * tanh_c * o * (1.0 - o)                      # (N, H)
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c) + da_o * p_o  # through h' and through o's peephole
        da_i = dc * g * i * (1.0 - i)
        da_f = dc * c_prev * f * (1.0 - f)
        d_xw[:, :H] = da_i
        d_xw[:, H:2 * H] = da_f
        d_xw[:, 2 * H:3 * H] = dc * i * (1.0 - g * g)
        d_xw[:, 3 * H:] = da_o
        return (None, dc * f + da_i * p_i + da_f * p_f)

    def parameter_gradients(self, dXW, caches: List[object]) -> Dict[str, object]:
        """``{"weight_ph": d peephole (3H,)}`` from the gate gradients dXW (T, N, 4H) and the step caches."""
        xp = namespace(dXW)
        H = dXW.shape[2] // 4
        d = xp.zeros(3 * H, dtype=dXW.dtype, device=device_of(dXW))
        for t, cache in enumerate(caches):
            if cache is None:
                continue
            _, _, _, _, c_prev, c, _ = cache
            d[:H] += xp.sum(dXW[t, :, :H] * c_prev, axis=0)
            d[H:2 * H] += xp.sum(dXW[t, :, H:2 * H] * c_prev, axis=0)
            d[2 * H:] += xp.sum(dXW[t, :, 3 * H:] * c, axis=0)
        return {"weight_ph": d}
