"""Recurrent cells: one time step each, forward and backward, vectorised over the batch.

A cell holds no parameters. The scanner (:mod:`rnnkit.nn.scan`) computes the two
affine maps that every cell needs,

    xw = x W_ih^T + b_ih      # (N, G*H), for all time steps in one product
    hw = h W_hh^T + b_hh      # (N, G*H), one product per step

and hands them to ``step``, which does the gate arithmetic. ``step_backward``
takes the gradient of the new state and returns the gradients of ``xw``, of
``hw`` and of the previous state through the elementwise path only; the scanner
adds ``d_hw W_hh`` to ``d_h_prev`` and turns the stacked ``d_xw``/``d_hw`` of all
steps into the weight gradients with one product each.

Protocol (what the scanner relies on, nothing else):

- ``num_gates`` G: the weights are (G*H, D) and (G*H, H), gates packed as in PyTorch;
- ``num_states``: the state is a tuple ``(h,)`` or ``(h, c)``; ``h`` is the output;
- ``split_recurrent``: False when ``d_hw == d_xw`` (RNN, LSTM), True when the
  recurrent pre-activation has its own gradient (GRU's reset gate multiplies it);
- ``step(xw, hw, state) -> (new_state, cache)``;
- ``step_backward(d_state, cache, d_xw, d_hw) -> d_state_prev``, writing the
  gate gradients into the given ``d_xw`` (and ``d_hw`` if split) buffers and
  returning the elementwise part of the previous state's gradient (``None``
  for a component with no elementwise path). It is linear in ``d_state``;
- ``fused_kernel``: the name of a compiled loop in :mod:`rnnkit.kernels` that
  computes exactly this ``step`` ("rnn_tanh", "rnn_relu", "lstm", "gru"), or
  None to always run the reference scanner. Only a class that writes
  ``fused_kernel`` in its own body declares one: every subclass of
  :class:`Cell` that does not is reset to None (see ``__init_subclass__``), so a
  cell that changes ``step``, ``step_backward`` or anything they read is never
  sent to a kernel that does not know the change. A subclass whose math is
  unchanged may declare its parent's kernel again.

Cells with weights of their own (peepholes, :mod:`rnnkit.nn.peephole`; layer
norm, :mod:`rnnkit.nn.layernorm_cells`) are made by the layer for one forward
call, bound to those weights, and report their gradients as a dict by name, either
from the walk's gate gradients at the end (``parameter_gradients(dXW, caches)``)
or summed step by step into an accumulator the scanner makes for each backward
call (``zero_parameter_gradients()``, passed to ``step_backward(..., acc=)``).

All arrays are (N, ...) for one time step; H is the hidden size.

The cells are array-API code: each step takes ``xp`` from its arrays
(:func:`rnnkit.nn.xp.namespace`), uses only the standard's functions and
operators (slices, in-place operators and slice assignment into the given
buffers), and so runs unchanged on NumPy, CuPy, PyTorch or array-api-strict
arrays. On NumPy arrays ``xp`` is NumPy itself; the NumPy-only fast path is the
compiled loop named by ``fused_kernel``, which the scanner picks for NumPy arrays only.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .xp import namespace

__all__ = ["sigmoid", "Cell", "RNNCell", "LSTMCell", "GRUCell", "CELLS"]

State = Tuple[object, ...]


def sigmoid(a):
    """Logistic function written through tanh, which never overflows: s(a) = (1 + tanh(a/2)) / 2."""
    return _sigmoid(namespace(a), a)


def _sigmoid(xp, a):
    """:func:`sigmoid` with the namespace already known (the cells ask for it once per step)."""
    s = xp.tanh(0.5 * a)
    s *= 0.5
    s += 0.5
    return s


class Cell:
    """Base of the cells: the protocol above. Subclasses set ``num_gates``, ``num_states``,
    ``split_recurrent`` and write ``step``/``step_backward``."""

    num_gates: int
    num_states: int
    split_recurrent: bool = False
    fused_kernel = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "fused_kernel" not in vars(cls):    # not declared here: the parent's kernel may not fit
            cls.fused_kernel = None

    def __init__(self, *args, **kwargs):
        if args or kwargs:      # torch.nn.LSTMCell(8, 16) is a layer; the same call here deserves the way to one
            _no_weights(type(self).__name__)

    def step(self, xw, hw, state):
        raise NotImplementedError

    def step_backward(self, d_state, cache, d_xw, d_hw=None):
        raise NotImplementedError


def _no_weights(name: str):
    layer = {"LSTMCell": "LSTM", "GRUCell": "GRU"}.get(name, "RNN")
    raise TypeError(f"{name} takes no sizes: rnnkit's cells are one step's gate arithmetic, without weights (unlike "
                    f"torch.nn.{name}); for the layer use rnnkit.nn.{layer}(input_size, hidden_size) and its "
                    "step_forward for one step at a time")


class RNNCell(Cell):
    r"""Elman RNN step.

    .. math::
        h' = \phi(xw + hw), \quad xw = x W_{ih}^T + b_{ih}, \quad hw = h W_{hh}^T + b_{hh}

    with :math:`\phi` = tanh (default) or ReLU. One gate (G = 1).
    """

    num_gates = 1
    num_states = 1
    split_recurrent = False

    def __init__(self, nonlinearity: str = "tanh", *more):
        if more or not isinstance(nonlinearity, str):
            _no_weights("RNNCell")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    @property
    def fused_kernel(self):
        return "rnn_" + self.nonlinearity

    def step(self, xw, hw, state):
        a = xw + hw                                    # (N, H)
        if isinstance(a, np.ndarray):                  # NumPy: in place, no second (N, H) array per step
            h = np.tanh(a, out=a) if self.nonlinearity == "tanh" else np.maximum(a, 0, out=a)
        else:
            xp = namespace(a)
            h = xp.tanh(a) if self.nonlinearity == "tanh" else xp.where(a < 0, xp.zeros_like(a), a)  # NaN stays NaN
        return (h,), h

    def step_backward(self, d_state, cache, d_xw, d_hw=None):
        (dh,), h = d_state, cache
        if isinstance(d_xw, np.ndarray):               # NumPy: straight into the buffer, no temporary to copy
            np.multiply(dh, 1.0 - h * h if self.nonlinearity == "tanh" else h > 0, out=d_xw)
        elif self.nonlinearity == "tanh":
            d_xw[...] = dh * (1.0 - h * h)             # tanh' = 1 - h^2
        else:
            d_xw[...] = dh * namespace(h).astype(h > 0, h.dtype)   # relu' = [a > 0] = [h > 0]
        return (None,)  # no elementwise path from h to h': everything flows through hw


class LSTMCell(Cell):
    r"""Long short-term memory step (Hochreiter & Schmidhuber 1997, with forget gate).

    .. math::
        [a_i, a_f, a_g, a_o] &= xw + hw \\
        i = \sigma(a_i),\ f &= \sigma(a_f),\ g = \tanh(a_g),\ o = \sigma(a_o) \\
        c' &= f \odot c + i \odot g \\
        h' &= o \odot \tanh(c')

    Gates packed i, f, g, o (G = 4), as in PyTorch. State ``(h, c)``.
    """

    num_gates = 4
    num_states = 2
    split_recurrent = False
    fused_kernel = "lstm"

    def step(self, xw, hw, state):
        h_prev, c_prev = state
        H = c_prev.shape[1]                            # h_prev may be projected to P < H
        xp = namespace(xw, hw)
        a = xw + hw                                    # (N, 4H)
        ifo = xp.concat((a[:, : 2 * H], a[:, 3 * H:]), axis=1)
        ifo = _sigmoid(xp, ifo)                        # (N, 3H): i, f, o
        i, f, o = ifo[:, :H], ifo[:, H: 2 * H], ifo[:, 2 * H:]
        g = xp.tanh(a[:, 2 * H: 3 * H])                # (N, H)
        c = f * c_prev
        c += i * g                                     # (N, H)
        tanh_c = xp.tanh(c)
        h = o * tanh_c                                 # (N, H)
        return (h, c), (i, f, g, o, c_prev, tanh_c)

    def step_backward(self, d_state, cache, d_xw, d_hw=None):
        dh, dc = d_state
        i, f, g, o, c_prev, tanh_c = cache
        H = dh.shape[1]
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)      # (N, H): through h' = o tanh(c')
        d_xw[:, :H] = dc * g * i * (1.0 - i)           # d a_i
        d_xw[:, H: 2 * H] = dc * c_prev * f * (1.0 - f)  # d a_f
        d_xw[:, 2 * H: 3 * H] = dc * i * (1.0 - g * g)   # d a_g
        d_xw[:, 3 * H:] = dh * tanh_c * o * (1.0 - o)    # d a_o
        return (None, dc * f)  # h reaches h' only through hw


class GRUCell(Cell):
    r"""Gated recurrent unit step, in PyTorch's (and cuDNN's) form.

    .. math::
        r &= \sigma(xw_r + hw_r), \quad z = \sigma(xw_z + hw_z) \\
        n &= \tanh(xw_n + r \odot hw_n) \\
        h' &= (1 - z) \odot n + z \odot h

    Gates packed r, z, n (G = 3). Departure from Cho et al. (2014): the paper
    applies the reset gate before the recurrent product, ``W_hn (r * h)``; here,
    as in PyTorch and cuDNN, it multiplies the product, ``r * (W_hn h + b_hn)``,
    which lets the recurrent product of all three gates be one matrix product.
    """

    num_gates = 3
    num_states = 1
    split_recurrent = True
    fused_kernel = "gru"

    def step(self, xw, hw, state):
        (h_prev,) = state
        H = h_prev.shape[1]
        xp = namespace(xw, hw)
        rz = _sigmoid(xp, xw[:, : 2 * H] + hw[:, : 2 * H])   # (N, 2H)
        r, z = rz[:, :H], rz[:, H:]
        hw_n = hw[:, 2 * H:]
        n = xp.tanh(xw[:, 2 * H:] + r * hw_n)          # (N, H)
        h = n + z * (h_prev - n)                        # (1-z) n + z h
        return (h,), (r, z, n, hw_n, h_prev)

    def step_backward(self, d_state, cache, d_xw, d_hw):
        (dh,) = d_state
        r, z, n, hw_n, h_prev = cache
        H = dh.shape[1]
        dn_pre = dh * (1.0 - z) * (1.0 - n * n)         # (N, H): d (xw_n + r hw_n)
        d_xw[:, :H] = dn_pre * hw_n * r * (1.0 - r)     # d a_r
        d_xw[:, H: 2 * H] = dh * (h_prev - n) * z * (1.0 - z)  # d a_z
        d_xw[:, 2 * H:] = dn_pre
        d_hw[:, : 2 * H] = d_xw[:, : 2 * H]              # r and z pre-activations are shared sums
        d_hw[:, 2 * H:] = dn_pre * r
        return (dh * z,)


CELLS = {"RNN_TANH": lambda: RNNCell("tanh"), "RNN_RELU": lambda: RNNCell("relu"),
         "LSTM": LSTMCell, "GRU": GRUCell}
