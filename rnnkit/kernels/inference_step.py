"""One step of a few sequences (generation): the products by BLAS on the weights as they are, the gates compiled.

Per step, with ``a = b + x W_ih^T + h W_hh^T`` (N, G*H) in PyTorch's gate order:
LSTM ``c' = sigmoid(f) c + sigmoid(i) tanh(g)``, ``h' = sigmoid(o) tanh(c')``; GRU
``n = tanh(a_n^x + r (a_n^h + b_hn))``, ``h' = n + z (h - n)`` (its recurrent part kept
apart); RNN ``h' = phi(a)``. Packing the weights, or checking a packed copy, would
read them once more than the step itself does (:mod:`rnnkit.kernels.inference`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .primitives import sigmoid, tanh

__all__ = ["one_step"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def lstm_step_gates(a, h, c):
    """One step's gates from ``a`` (N, 4H) = b + x W_ih^T + h W_hh^T in PyTorch's order (i, f, g, o);
    ``h``, ``c`` (N, H) updated in place."""
    N, H = h.shape
    for n in range(N):
        for u in range(H):
            c_new = sigmoid(a[n, H + u]) * c[n, u] + sigmoid(a[n, u]) * tanh(a[n, 2 * H + u])
            c[n, u] = c_new
            h[n, u] = sigmoid(a[n, 3 * H + u]) * tanh(c_new)


@njit(**_JIT)
def gru_step_gates(ax, ah, b_hn, h):
    """One GRU step from ``ax`` = b + x W_ih^T and ``ah`` = h W_hh^T (N, 3H); ``h`` updated in place."""
    N, H = h.shape
    for n in range(N):
        for u in range(H):
            r = sigmoid(ax[n, u] + ah[n, u])
            z = sigmoid(ax[n, H + u] + ah[n, H + u])
            m = tanh(ax[n, 2 * H + u] + r * (ah[n, 2 * H + u] + b_hn[u]))
            h[n, u] = m + z * (h[n, u] - m)


@njit(**_JIT)
def rnn_step_gates(a, h, relu):
    N, H = h.shape
    zero = h.dtype.type(0)
    for n in range(N):
        for u in range(H):
            h[n, u] = max(a[n, u], zero) if relu else tanh(a[n, u])


def one_step(kernel, x, state0, W_ih, W_hh, b, b_hn):
    """``(y (1, N, H), state)`` of a single step: the products by BLAS on the weights as they are, the
    gates compiled (a step has no padding). Packing, or checking a packed copy, would read the weights
    once more than the step itself does."""
    h = np.array(state0[0], dtype=x.dtype, order="C")                    # (N, H)
    a = np.matmul(x, W_ih.T)                                              # (N, G*H)
    a += b
    if kernel == "gru":
        gru_step_gates(a, np.matmul(h, W_hh.T), np.ascontiguousarray(b_hn), h)
        return h[None].copy(), (h,)
    a += np.matmul(h, W_hh.T)
    if kernel == "lstm":
        c = np.array(state0[1], dtype=x.dtype, order="C")
        lstm_step_gates(a, h, c)
        return h[None].copy(), (h, c)
    rnn_step_gates(a, h, kernel == "rnn_relu")
    return h[None].copy(), (h,)


