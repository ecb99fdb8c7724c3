r"""The encoder (embedding -> stacked, optionally bidirectional LSTM/GRU) and the bridge to the decoder.

.. math::
    h_{1..S} &= \mathrm{RNN}(E_{src}[x_{1..S}])        \qquad \text{(packed by the source lengths)} \\
    s_0^{(l)} &= \tanh(W_b [\overrightarrow{h}^{(l)}_{S}; \overleftarrow{h}^{(l)}_1] + b_b)
             \qquad \text{(one bridge for every layer } l\text{)} \\
    c_0^{(l)} &= W_c [\overrightarrow{c}^{(l)}_{S}; \overleftarrow{c}^{(l)}_1] + b_c  \qquad \text{(LSTM cell state: no squashing)}

The memory the decoder attends to is the last layer's output, both directions
concatenated: (N, S, K*H), batch first. With ``bridge="zero"`` the decoder
starts from zeros (and the encoder's final state gets no gradient).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from ..nn.layers import Dropout, Embedding, Linear
from ..nn.module import Module
from ..nn.recurrent import Recurrent
from .data import PAD

__all__ = ["Encoder", "EncoderCache"]


class EncoderCache(NamedTuple):
    emb_cache: np.ndarray
    emb_mask: Optional[np.ndarray]
    rnn_cache: object
    final: Tuple[np.ndarray, ...]          # encoder final state (L*K, N, H) per component
    bridge_caches: Tuple[object, ...]      # per component: (linear cache, tanh output or None)


class Encoder(Module):
    """Source embedding, recurrent stack and bridge; see the module docstring."""

    def __init__(self, vocab_size: int, *, mode: str, embedding_size: int, hidden_size: int, num_layers: int,
                 bidirectional: bool, decoder_size: int, bridge: str = "linear", dropout: float = 0.0,
                 dtype=np.float32, rng=None, rnn_kw=None):
        super().__init__()
        if bridge not in ("linear", "zero"):
            raise ValueError(f"bridge: expected 'linear' or 'zero', got {bridge!r}")
        rng = np.random.default_rng(rng)
        self.bridge = bridge
        self.embedding = Embedding(vocab_size, embedding_size, padding_idx=PAD, dtype=dtype, rng=rng)
        # Dropout between encoder layers; with one layer self.drop below is the only dropout.
        self.rnn = Recurrent(mode, embedding_size, hidden_size, num_layers,
                             dropout=dropout if num_layers > 1 else 0.0,
                             bidirectional=bidirectional, dtype=dtype, rng=rng, **(rnn_kw or {}))
        self.drop = Dropout(dropout)
        K = self.rnn.num_directions
        self.memory_size = K * hidden_size
        if bridge == "linear":
            self.bridge_h = Linear(K * hidden_size, decoder_size, dtype=dtype, rng=rng)
            if self.rnn.cell.num_states == 2:
                self.bridge_c = Linear(K * hidden_size, decoder_size, dtype=dtype, rng=rng)
        self.decoder_size = decoder_size

    def _bridges(self):
        return (self.bridge_h,) if self.rnn.cell.num_states == 1 else (self.bridge_h, self.bridge_c)

    def forward(self, src: np.ndarray, src_len: np.ndarray, rng=None):
        """``src`` (S, N) ids, ``src_len`` (N,). Returns ``(memory (N, S, K*H), state0, cache)``.

        ``state0`` is the decoder's initial state, a tuple ``(h,)`` or ``(h, c)`` of (L, N, H_dec).
        """
        L, K, H = self.rnn.num_layers, self.rnn.num_directions, self.rnn.hidden_size
        S, N = src.shape
        emb, emb_cache = self.embedding(src)                          # (S, N, E)
        emb, emb_mask = self.drop(emb, rng)
        out, final, rnn_cache = self.rnn(emb, None, src_len, rng)      # (S, N, K*H)
        final = final if isinstance(final, tuple) else (final,)
        memory = np.ascontiguousarray(out.transpose(1, 0, 2))          # (N, S, K*H)
        caches = ()
        if self.bridge == "zero":
            state0 = tuple(np.zeros((L, N, self.decoder_size), memory.dtype) for _ in final)
        else:
            state0 = []
            for j, (f, lin) in enumerate(zip(final, self._bridges())):
                both = f.reshape(L, K, N, H).transpose(0, 2, 1, 3).reshape(L, N, K * H)  # (L, N, K*H) [fwd; bwd]
                s, lin_cache = lin(both)                                # (L, N, H_dec)
                t = np.tanh(s) if j == 0 else None
                state0.append(s if t is None else t)
                caches += ((lin_cache, t),)
            state0 = tuple(state0)
        return memory, state0, EncoderCache(emb_cache, emb_mask, rnn_cache, final, caches)

    def backward(self, d_memory: np.ndarray, d_state0, cache: EncoderCache) -> None:
        """Parameter gradients from the memory's (N, S, K*H) and the initial state's gradients."""
        L, K, H = self.rnn.num_layers, self.rnn.num_directions, self.rnn.hidden_size
        d_final = None
        if self.bridge == "linear":
            d_final = []
            for d_s, lin, (lin_cache, t), f in zip(d_state0, self._bridges(), cache.bridge_caches, cache.final):
                if t is not None:
                    d_s = d_s * (1.0 - t * t)                           # tanh'
                d_both = lin.backward(d_s, lin_cache)                   # (L, N, K*H)
                N = d_both.shape[1]
                d_final.append(np.ascontiguousarray(
                    d_both.reshape(L, N, K, H).transpose(0, 2, 1, 3).reshape(L * K, N, H)))
            d_final = tuple(d_final) if len(d_final) > 1 else d_final[0]
        d_out = d_memory.transpose(1, 0, 2)                             # (S, N, K*H)
        d_emb, _ = self.rnn.backward(d_out, cache.rnn_cache, d_final)
        d_emb = self.drop.backward(d_emb, cache.emb_mask)
        self.embedding.backward(d_emb, cache.emb_cache)
