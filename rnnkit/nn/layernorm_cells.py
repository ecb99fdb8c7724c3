r"""Layer-normalised LSTM and GRU steps (Ba, Kiros and Hinton 2016, section 3.1 and appendix).

With :math:`\mathrm{LN}(v; \gamma, \beta) = \gamma \odot (v - \mu_v) / \sqrt{\sigma_v^2 + \epsilon} + \beta`
over the features of each row (:math:`\epsilon = 10^{-5}`), the scanner hands the cell the
raw products :math:`xw = x W_{ih}^T` and :math:`hw = h W_{hh}^T` (no biases) and the cell computes

LSTM (the paper's eq. 20-22, gates packed i, f, g, o; LN over all 4H features):

.. math::
    a &= \mathrm{LN}(xw; \gamma_{ih}, 0) + \mathrm{LN}(hw; \gamma_{hh}, 0) + b_{ih} + b_{hh} \\
    i, f, o &= \sigma(a_{i,f,o}),\ g = \tanh(a_g), \quad c' = f \odot c + i \odot g \\
    h' &= o \odot \tanh(\mathrm{LN}(c'; \gamma_c, \beta_c))

GRU (PyTorch's form, r, z, n; LN over all 3H features of each product):

.. math::
    u &= \mathrm{LN}(xw; \gamma_{ih}, 0) + b_{ih}, \quad a = \mathrm{LN}(hw; \gamma_{hh}, 0) + b_{hh} \\
    r &= \sigma(u_r + a_r),\ z = \sigma(u_z + a_z),\ n = \tanh(u_n + r \odot a_n), \quad h' = n + z \odot (h - n)

The paper's shifts of the two product norms are exactly the layer's biases ``b_ih``, ``b_hh``
(a shift after a normalisation adds like a bias), so there are no separate ones. The cell's
parameters (per layer and direction): ``ln_weight_ih`` (G*H,), ``ln_weight_hh`` (G*H,), and for
LSTM ``ln_weight_c``, ``ln_bias_c`` (H,); initialised to 1 and 0.

The cell is bound to its weights and biases for one forward call. Its weight gradients are
added, step by step, into an accumulator the scanner creates for each backward call
(:meth:`zero_parameter_gradients`), so nothing is kept on the cell between calls.
"""

from __future__ import annotations

from typing import Dict

from .cells import Cell, sigmoid
from .xp import namespace

__all__ = ["LayerNormLSTMCell", "LayerNormGRUCell", "EPS", "layer_norm", "layer_norm_backward"]

EPS = 1e-5


def layer_norm(v):
    """(v - mean) / sqrt(var + EPS) over the last axis: ``(v_hat, rstd (N, 1))``."""
    xp = namespace(v)
    mu = xp.mean(v, axis=1, keepdims=True)                  # (N, 1)
    d = v - mu
    rstd = 1.0 / xp.sqrt(xp.mean(d * d, axis=1, keepdims=True) + EPS)
    return d * rstd, rstd


def layer_norm_backward(d_hat, v_hat, rstd):
    """d v from d v_hat: rstd (d_hat - mean(d_hat) - v_hat mean(d_hat v_hat))."""
    xp = namespace(d_hat)
    return rstd * (d_hat - xp.mean(d_hat, axis=1, keepdims=True)
                   - v_hat * xp.mean(d_hat * v_hat, axis=1, keepdims=True))


class _LayerNormCell(Cell):
    split_recurrent = True              # the two products are normalised apart: their gradients differ

    def __init__(self, params: Dict[str, object]):
        self.p = params                 # name (without the layer suffix) -> array, for this call only

    def zero_parameter_gradients(self) -> Dict[str, object]:
        return {n: namespace(v).zeros_like(v) for n, v in self.p.items()}


class LayerNormLSTMCell(_LayerNormCell):
    """Layer-normalised LSTM step (see the module docstring); state ``(h, c)``; G = 4."""

    num_gates = 4
    num_states = 2
    fused_kernel = "lstm_ln"

    def step(self, xw, hw, state):
        h_prev, c_prev = state
        p = self.p
        H = c_prev.shape[1]
        x_hat, rx = layer_norm(xw)                           # (N, 4H), (N, 1)
        h_hat, rh = layer_norm(hw)
        a = p["ln_weight_ih"] * x_hat + p["ln_weight_hh"] * h_hat + p["bias_ih"] + p["bias_hh"]  # (N, 4H)
        xp = namespace(a)
        i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
        g, o = xp.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
        c = f * c_prev + i * g                               # (N, H)
        c_hat, rc = layer_norm(c)
        tm = xp.tanh(p["ln_weight_c"] * c_hat + p["ln_bias_c"])
        return (o * tm, c), (x_hat, rx, h_hat, rh, i, f, g, o, c_prev, c_hat, rc, tm)

    def step_backward(self, d_state, cache, d_xw, d_hw, acc=None):
        dh, dc = d_state
        x_hat, rx, h_hat, rh, i, f, g, o, c_prev, c_hat, rc, tm = cache
        p = self.p
        H = c_prev.shape[1]
        dm = dh * o * (1.0 - tm * tm)                        # d of gamma_c c_hat + beta_c
        dc = dc + layer_norm_backward(dm * p["ln_weight_c"], c_hat, rc)
        xp = namespace(x_hat)
        da = xp.empty_like(x_hat)                            # (N, 4H)
        da[:, :H] = dc * g * i * (1.0 - i)
        da[:, H:2 * H] = dc * c_prev * f * (1.0 - f)
        da[:, 2 * H:3 * H] = dc * i * (1.0 - g * g)
        da[:, 3 * H:] = dh * tm * o * (1.0 - o)
        d_xw[...] = layer_norm_backward(da * p["ln_weight_ih"], x_hat, rx)
        d_hw[...] = layer_norm_backward(da * p["ln_weight_hh"], h_hat, rh)
        if acc is not None:
            db = xp.sum(da, axis=0)
            acc["bias_ih"] += db
            acc["bias_hh"] += db
            acc["ln_weight_ih"] += xp.sum(da * x_hat, axis=0)
            acc["ln_weight_hh"] += xp.sum(da * h_hat, axis=0)
            acc["ln_weight_c"] += xp.sum(dm * c_hat, axis=0)
            acc["ln_bias_c"] += xp.sum(dm, axis=0)
        return (None, dc * f)


class LayerNormGRUCell(_LayerNormCell):
    """Layer-normalised GRU step (see the module docstring); state ``(h,)``; G = 3."""

    num_gates = 3
    num_states = 1
    fused_kernel = "gru_ln"

    def step(self, xw, hw, state):
        (h_prev,) = state
        p = self.p
        H = h_prev.shape[1]
        x_hat, rx = layer_norm(xw)                           # (N, 3H), (N, 1)
        h_hat, rh = layer_norm(hw)
        u = p["ln_weight_ih"] * x_hat + p["bias_ih"]         # (N, 3H)
        a = p["ln_weight_hh"] * h_hat + p["bias_hh"]
        rz = sigmoid(u[:, :2 * H] + a[:, :2 * H])
        r, z = rz[:, :H], rz[:, H:]
        a_n = a[:, 2 * H:]
        n = namespace(a).tanh(u[:, 2 * H:] + r * a_n)
        return (n + z * (h_prev - n),), (x_hat, rx, h_hat, rh, r, z, n, a_n, h_prev)

    def step_backward(self, d_state, cache, d_xw, d_hw, acc=None):
        (dh,) = d_state
        x_hat, rx, h_hat, rh, r, z, n, a_n, h_prev = cache
        p = self.p
        H = dh.shape[1]
        dn = dh * (1.0 - z) * (1.0 - n * n)
        xp = namespace(x_hat)
        du = xp.empty_like(x_hat)                            # (N, 3H): d u
        du[:, :H] = dn * a_n * r * (1.0 - r)
        du[:, H:2 * H] = dh * (h_prev - n) * z * (1.0 - z)
        du[:, 2 * H:] = dn
        da = xp.asarray(du, copy=True)                       # d a: r, z shared, n through r
        da[:, 2 * H:] = dn * r
        d_xw[...] = layer_norm_backward(du * p["ln_weight_ih"], x_hat, rx)
        d_hw[...] = layer_norm_backward(da * p["ln_weight_hh"], h_hat, rh)
        if acc is not None:
            acc["bias_ih"] += xp.sum(du, axis=0)
            acc["bias_hh"] += xp.sum(da, axis=0)
            acc["ln_weight_ih"] += xp.sum(du * x_hat, axis=0)
            acc["ln_weight_hh"] += xp.sum(da * h_hat, axis=0)
        return (dh * z,)
