r"""The character-level language model: embedding -> stacked RNN/LSTM/GRU -> dropout -> linear.

For a chunk of character ids :math:`c_{t,n}` (T time steps, N streams):

.. math::
    e_t &= E[c_t] \quad\text{(or the one-hot vector of } c_t \text{ when embedding_size = 0)} \\
    h_t, s_t &= \mathrm{RNN}^{(L)}(e_t, s_{t-1}) \\
    z_t &= \mathrm{dropout}(h_t)\, W^T + b, \qquad p(c_{t+1} \mid c_{\le t}) = \mathrm{softmax}(z_t)

and the loss is the mean cross-entropy :math:`-\frac{1}{TN}\sum \log p(y_{t,n})`
in nats per character. The output layer and the loss run over all T*N
positions in one matrix product; only the recurrent layer steps through time.

The model is stateful: ``forward`` takes the state that the previous chunk
ended in and returns the new one, so consecutive chunks of the same streams
form one long sequence (truncated BPTT: ``backward`` does not send a gradient
into the incoming state).

The model computes where its parameters are (:mod:`rnnkit.nn.xp`): after
``model.to("cuda")`` the ids, targets and states it is given (NumPy arrays) are
moved to that device on the way in; losses come back as Python floats and
:meth:`CharLM.state_arrays` as host arrays, so batches, checkpoints and
generation code stay NumPy.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from ..checks import check_choice, check_count, check_probability
from ..errors import DataError
from ..nn import Dropout, Embedding, Linear, Module, Recurrent, cross_entropy, log_softmax
from ..nn.shapes import CELL_MODES
from ..nn.xp import host_if_needed, device_of, is_numpy, namespace, to_device, to_host
from .data import Vocab

__all__ = ["CharLM", "CELLS", "MODES"]

MODES = CELL_MODES
CELLS = tuple(CELL_MODES)


class CharLM(Module):
    """Character language model over ``vocab`` (see the module docstring).

    Parameters
    ----------
    vocab : :class:`~rnnkit.charlm.data.Vocab`, the V characters it reads and writes.
    cell : "lstm", "gru" or "rnn" (tanh).
    hidden_size : H, units per recurrent layer.
    num_layers : L, stacked recurrent layers.
    embedding_size : E, size of the learned character embedding; 0 feeds one-hot vectors.
    dropout : probability, applied between recurrent layers and before the output layer.
    proj_size, peephole, layer_norm, variational_dropout, weight_drop, zoneout : the recurrent variants of
        :class:`~rnnkit.nn.Recurrent` (LSTM projection P; regularisers' probabilities).
    rng : ``numpy.random.Generator`` or int seed for the initialisation.

    LSTM forget-gate biases start at 1 (char-rnn's choice: remember by default).
    Parameter names: ``embed.weight`` (V, E), ``rnn.weight_ih_l0`` ... (PyTorch's),
    ``head.weight`` (V, P), ``head.bias`` (V,), with P = proj_size or H.
    """

    def __init__(self, vocab: Vocab, *, cell: str = "lstm", hidden_size: int = 256, num_layers: int = 2,
                 embedding_size: int = 64, dropout: float = 0.0, proj_size: int = 0, peephole: bool = False,
                 layer_norm: bool = False,
                 variational_dropout: float = 0.0, weight_drop: float = 0.0, zoneout: float = 0.0,
                 dtype=np.float32, rng=None):
        super().__init__()
        check_choice("cell", cell, CELLS)
        hidden_size, num_layers = check_count("hidden_size", hidden_size, 1), check_count("num_layers", num_layers, 1)
        embedding_size = check_count("embedding_size", embedding_size, 0)
        dropout = check_probability("dropout", dropout)
        rng = np.random.default_rng(rng)
        self.vocab = vocab
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.embedding_size, self.dropout = embedding_size, dropout
        self.dtype = np.dtype(dtype)
        V = len(vocab)
        if self.embedding_size:
            self.embed = Embedding(V, self.embedding_size, dtype=dtype, rng=rng)
        D = self.embedding_size or V
        kw = dict(num_layers=num_layers, dropout=dropout if num_layers > 1 else 0.0, dtype=dtype, rng=rng,
                  proj_size=proj_size, peephole=peephole, layer_norm=layer_norm, variational_dropout=variational_dropout, weight_drop=weight_drop,
                  zoneout=zoneout)
        if cell == "lstm":
            kw["forget_bias"] = 1.0                                    # char-rnn's choice: remember by default
        self.rnn = Recurrent(CELL_MODES[cell], D, hidden_size, **kw)
        self.drop = Dropout(dropout)
        self.head = Linear(self.rnn.output_size, V, dtype=dtype, rng=rng)

    # -- state -------------------------------------------------------------
    @property
    def num_states(self) -> int:
        return 2 if self.cell == "lstm" else 1

    def initial_state(self, n: int):
        """The zero state for ``n`` streams: (L, N, P), for LSTM the pair with c (L, N, H)."""
        z = tuple(self._here(np.zeros((self.num_layers, n, size), self.dtype)) for size in self.rnn._state_sizes())
        return z if self.cell == "lstm" else z[0]

    def state_arrays(self, state) -> Dict[str, np.ndarray]:
        """The state as named host arrays (``h``, and ``c`` for LSTM), e.g. for a checkpoint."""
        return {"h": to_host(state[0]), "c": to_host(state[1])} if self.cell == "lstm" else {"h": to_host(state)}

    def state_from_arrays(self, arrays: Dict[str, np.ndarray]):
        return (arrays["h"], arrays["c"]) if self.cell == "lstm" else arrays["h"]

    @staticmethod
    def select_state(state, index):
        """Rows ``index`` of every state array (beam search reorders streams with it)."""
        if isinstance(state, tuple):
            return tuple(CharLM.select_state(s, index) for s in state)
        if is_numpy(state):
            return state[:, index]
        xp = namespace(state)
        return xp.take(state, to_device(np.asarray(index), device_of(state), xp), axis=1)

    def _here(self, a):
        """``a`` (an array, a state tuple or None) on the parameters' device; NumPy models take it as it is."""
        W = self.head.weight.data
        if a is None or isinstance(W, np.ndarray):
            return a
        if isinstance(a, tuple):
            return tuple(self._here(s) for s in a)
        return to_device(host_if_needed(a), device_of(W), namespace(W))

    # -- forward / backward ------------------------------------------------
    def _inputs(self, ids: np.ndarray):
        if self.embedding_size:
            return self.embed.forward(ids)                          # (T, N, E), cache
        V = len(self.vocab)
        if is_numpy(ids):
            if ids.size and (ids.min() < 0 or ids.max() >= V):
                raise DataError(f"ids must lie in [0, {V}), got min {ids.min()} and max {ids.max()}")
            return np.eye(V, dtype=self.dtype)[ids], None           # (T, N, V) one-hot
        xp = namespace(ids)
        low, high = (int(xp.min(ids)), int(xp.max(ids))) if ids.size else (0, 0)
        if low < 0 or high >= V:
            raise DataError(f"ids must lie in [0, {V}), got min {low} and max {high}")
        eye = xp.eye(V, dtype=self.head.weight.data.dtype, device=device_of(ids))
        flat = xp.take(eye, xp.reshape(ids, (-1,)), axis=0)          # (T*N, V)
        return xp.reshape(flat, (*ids.shape, V)), None              # (T, N, V) one-hot

    def forward(self, ids, state=None, rng: Optional[np.random.Generator] = None):
        """Logits (T, N, V) for ids (T, N) from ``state`` (None = zeros).

        Returns ``(logits, state_n, cache)``. ``rng`` is needed in training mode
        when dropout > 0.
        """
        ids = self._here(host_if_needed(ids))
        if ids.ndim != 2:
            raise DataError(f"ids: expected a 2-D array (T, N), got shape {tuple(ids.shape)}")
        state = self._here(state)
        x, c_in = self._inputs(ids)
        h, state_n, c_rnn = self.rnn.forward(x, state, None, rng)  # (T, N, H)
        h, c_drop = self.drop.forward(h, rng)
        logits, c_head = self.head.forward(h)                      # (T, N, V): one product over T*N
        return logits, state_n, (c_in, c_rnn, c_drop, c_head)

    def backward(self, d_logits, cache) -> None:
        """Add every parameter's gradient; the incoming state gets none (truncated BPTT)."""
        c_in, c_rnn, c_drop, c_head = cache
        dh = self.head.backward(d_logits, c_head)                  # (T, N, H)
        dh = self.drop.backward(dh, c_drop)
        dx, _ = self.rnn.backward(dh, c_rnn)                       # (T, N, D); d_state0 dropped
        if self.embedding_size:
            self.embed.backward(dx, c_in)

    def loss(self, ids, targets, state=None, rng=None) -> Tuple[float, object]:
        """Forward and backward for one chunk: ``(mean nats/char, state_n)``.

        Gradients are *added* to ``.grad`` (zero them first).
        """
        logits, state_n, cache = self.forward(ids, state, rng)
        loss, d_logits = cross_entropy(logits, self._here(host_if_needed(targets)))
        self.backward(d_logits, cache)
        return loss, state_n

    def nll(self, ids, targets, state=None) -> Tuple[float, object]:
        """Summed negative log-likelihood (nats) of ``targets`` and the final state; no gradients."""
        logits, state_n, _ = self.forward(ids, state)
        xp = namespace(logits)
        logp = log_softmax(logits)                                 # (T, N, V)
        picked = xp.take_along_axis(logp, self._here(host_if_needed(targets))[..., None], axis=-1)
        return -float(xp.sum(picked, dtype=xp.float64)), state_n

    def step(self, ids, state):
        """One character per stream: ids (N,) -> logits (N, V), new state. For generation."""
        ids = self._here(host_if_needed(ids))
        if ids.ndim != 1:
            raise DataError(f"ids: expected a 1-D array (N,), one character per stream, got shape {tuple(ids.shape)}")
        x, _ = self._inputs(ids[None, :])                          # (1, N, D)
        h, state_n, _ = self.rnn.step_forward(x[0, ...], self._here(state), need_cache=not self.rnn.training)  # (N, H)
        h, _ = self.drop.forward(h, None)
        logits, _ = self.head.forward(h)                           # (N, V)
        return logits, state_n
