r"""The polyphonic music model: a recurrent layer reading the previous step's keys, one sigmoid per key.

For a piano roll :math:`v_1 .. v_T` (each in {0,1}^88):

.. math::
    h_t &= \mathrm{RNN}^{(L)}(v_t, h_{t-1}), \qquad z_t = h_t W^T + b \quad (88 \text{ logits}) \\
    p(v_{t+1,k} = 1 \mid v_{\le t}) &= \sigma(z_{t,k}) \\
    \mathrm{NLL} &= \frac{1}{M} \sum_{t=1}^{T-1} \sum_{k=1}^{88}
        \mathrm{BCE}(z_{t,k}, v_{t+1,k})

the negative log-likelihood per predicted time step, summed over the 88 keys,
as Boulanger-Lewandowski et al. (2012) and Chung et al. (2014) report it (M
the number of predicted steps). Pieces of different lengths run in one batch
padded at the end (``lengths``), and the padded steps are masked out of the loss.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from ..nn import Linear, Module, Recurrent
from ..nn.losses import bce_with_logits
from ..nn.shapes import CELL_MODES
from .data import KEYS

__all__ = ["MusicNet", "pad_batch"]


def pad_batch(rolls: List[np.ndarray], dtype=np.float32) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (T-1, N, 88), targets (T-1, N, 88), mask (T-1, N, 1) and lengths (N,) of the predicted steps."""
    lengths = np.array([r.shape[0] - 1 for r in rolls])                         # (N,) predicted steps
    T, N = int(lengths.max()), len(rolls)
    x = np.zeros((T, N, KEYS), dtype)
    y = np.zeros((T, N, KEYS), dtype)
    for n, r in enumerate(rolls):
        x[: lengths[n], n] = r[:-1]
        y[: lengths[n], n] = r[1:]
    mask = (np.arange(T)[:, None] < lengths[None, :])[..., None]                # (T, N, 1)
    return x, y, mask, lengths


class MusicNet(Module):
    """``cell`` stack of ``hidden_size`` units over 88 inputs, a linear layer to 88 logits (module docstring).

    LSTM forget biases start at 1. Parameter names: ``rnn.*`` (PyTorch's), ``head.weight`` (88, H), ``head.bias``.
    """

    def __init__(self, cell: str = "lstm", hidden_size: int = 36, num_layers: int = 1, *, dtype=np.float32,
                 rng=None):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.cell, self.dtype = cell, np.dtype(dtype)
        kw = {"forget_bias": 1.0} if cell == "lstm" else {}
        self.rnn = Recurrent(CELL_MODES[cell], KEYS, hidden_size, num_layers, dtype=dtype, rng=rng, **kw)
        self.head = Linear(hidden_size, KEYS, dtype=dtype, rng=rng)

    def nll(self, rolls: List[np.ndarray], backward: bool = False) -> Tuple[float, int]:
        """(summed NLL in nats, predicted steps M) of ``rolls``; with ``backward`` the gradient of
        the mean per step (sum / M) is added to ``.grad``."""
        x, y, mask, lengths = pad_batch(rolls, self.dtype)
        h, _, c_rnn = self.rnn.forward(x, lengths=lengths, need_cache=backward)  # (T, N, H)
        z, c_head = self.head.forward(h)                                         # (T, N, 88)
        total, dz = bce_with_logits(z, y, mask=mask, reduction="sum")
        M = int(lengths.sum())
        if backward:
            dh = self.head.backward(dz / M, c_head)                              # (T, N, H)
            self.rnn.backward(dh, c_rnn)
        return total, M

    def sample(self, length: int, rng: np.random.Generator, prime: np.ndarray = None) -> np.ndarray:
        """A (length, 88) 0/1 roll: each step's keys drawn from the sigmoids given the steps before.

        ``prime`` (P, 88) is fed first and is the roll's beginning; without it the first input is silence.
        """
        with self.eval_mode():
            frames = [] if prime is None else [np.asarray(f, self.dtype) for f in prime]
            x = frames[-1] if frames else np.zeros(KEYS, self.dtype)
            state = None
            for f in frames[:-1]:
                _, state, _ = self.rnn.step_forward(f[None, :], state)
            while len(frames) < length:
                h, state, _ = self.rnn.step_forward(x[None, :], state)          # (1, H)
                z, _ = self.head.forward(h)                                      # (1, 88)
                p = 0.5 * (1.0 + np.tanh(0.5 * z[0].astype(np.float64)))        # sigmoid
                x = (rng.random(KEYS) < p).astype(self.dtype)
                frames.append(x)
        return np.array(frames[:length], dtype=np.uint8).reshape(-1, KEYS)
