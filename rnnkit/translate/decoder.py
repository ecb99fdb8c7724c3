r"""The attentional decoder: embedding -> LSTM/GRU stack with attention -> output projection.

Two placements of the attention, after the two papers (s: decoder state, top layer's h;
c: context over the encoder memory; y: target tokens; E: embedding):

Bahdanau et al. (2015), attention *before* the recurrent step, on the previous state:

.. math::
    c_t = \mathrm{attn}(s_{t-1}, h), \quad s_t = \mathrm{RNN}([E y_{t-1}; c_t], s_{t-1}), \quad
    z_t = W_o [s_t; c_t] + b_o

Luong et al. (2015), attention *after* it, on the new state, with an attentional vector
:math:`\tilde s_t` that is optionally fed into the next step's input ("input feeding"):

.. math::
    s_t = \mathrm{RNN}([E y_{t-1}; \tilde s_{t-1}], s_{t-1}), \quad c_t = \mathrm{attn}(s_t, h), \quad
    \tilde s_t = \tanh(W_c [c_t; s_t] + b_c), \quad z_t = W_o \tilde s_t + b_o

(without input feeding the RNN input is :math:`E y_{t-1}` alone, :math:`\tilde s_0 = 0`).
``z_t`` are the logits. With ``tie_embeddings`` (Press and Wolf 2017; Inan et al. 2017) the output layer
is the target embedding matrix itself, after a linear map P to the embedding size when the output
vector o (:math:`\tilde s_t` or :math:`[s_t; c_t]`) is wider or narrower than E:

.. math::
    z_t = E\, (P o_t) + b_o \quad (P: E \times O;\ \text{no } P \text{ when } O = E)

so E (V x E) receives the gradient of the input lookup and of the output layer. Dropout (training only) acts on the embeddings and on the
vector entering :math:`W_o`.

The decoder steps one token at a time because the attention needs the current
state, through the stack's public one-step API (:meth:`Recurrent.step_forward`,
:meth:`Recurrent.step_backward`); its backward records each layer's gate
gradients of all steps in a :class:`~rnnkit.nn.StepGradients` and forms every
weight gradient with one product at the end, as the scanner does. Luong
attention without input feeding under full teacher forcing has no dependence
between steps outside the RNN, so
:meth:`Decoder.forward_sequence` runs the whole-sequence recurrent layer and
attends with all T queries at once.

Shapes: tokens (T, N) or (N,); state a tuple ``(h,)``/``(h, c)`` of (L, N, H);
memory (N, S, K); step output (N, O) with O = H (Luong) or H + K (Bahdanau).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from ..nn.attention import Memory, make_attention
from ..nn.layers import Dropout, Embedding, Linear
from ..nn.module import Module
from ..nn.recurrent import Recurrent
from ..nn.recurrent_step import StepGradients
from .data import PAD

__all__ = ["Decoder", "DecoderState"]


class DecoderState(NamedTuple):
    states: Tuple[np.ndarray, ...]      # (h,) or (h, c), each (L, N, H)
    feed: Optional[np.ndarray]          # (N, H) Luong's attentional vector of the previous step, or None

    def select(self, index: np.ndarray) -> "DecoderState":
        """The rows ``index`` (beam search reorders hypotheses this way)."""
        return DecoderState(tuple(s[:, index] for s in self.states), None if self.feed is None else self.feed[index])


class StepCache(NamedTuple):
    tokens: np.ndarray
    emb_mask: Optional[np.ndarray]
    attn: object
    rnn: object                         # the recurrent stack's step cache
    hc: Optional[np.ndarray]            # Luong: [c; s] (N, K+H)
    ht: Optional[np.ndarray]            # Luong: tanh output (N, H)
    out_mask: Optional[np.ndarray]


class Decoder(Module):
    """See the module docstring. ``attention`` is "bahdanau", "dot" or "general"."""

    def __init__(self, vocab_size: int, *, mode: str, embedding_size: int, hidden_size: int, num_layers: int,
                 memory_size: int, attention: str = "bahdanau", attention_size: Optional[int] = None,
                 input_feeding: bool = False, dropout: float = 0.0, tie_embeddings: bool = False,
                 dtype=np.float32, rng=None, rnn_kw=None):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.luong = attention != "bahdanau"
        if input_feeding and not self.luong:
            raise ValueError("input_feeding applies to Luong attention ('dot' or 'general'); Bahdanau "
                             "attention already feeds the context into the recurrent input")
        self.input_feeding = bool(input_feeding)
        E, H, K = embedding_size, hidden_size, memory_size
        self.embedding = Embedding(vocab_size, E, padding_idx=PAD, dtype=dtype, rng=rng)
        D = E + (H if self.input_feeding else 0) if self.luong else E + K
        self.rnn = Recurrent(mode, D, H, num_layers, dtype=dtype, rng=rng, **(rnn_kw or {}))
        self.attention = make_attention(attention, H, K, attention_size, dtype=dtype, rng=rng)
        if self.luong:
            self.combine = Linear(K + H, H, dtype=dtype, rng=rng)
        O = H if self.luong else H + K
        self.tie_embeddings = bool(tie_embeddings)
        if self.tie_embeddings:
            if O != E:
                self.out_proj = Linear(O, E, bias=False, dtype=dtype, rng=rng)
            self.out = Linear(E, vocab_size, dtype=dtype, rng=rng)
            self.out.weight = self.embedding.weight           # one Parameter under two names: tied
        else:
            self.out = Linear(O, vocab_size, dtype=dtype, rng=rng)
        self.drop = Dropout(dropout)
        self.embedding_size, self.hidden_size, self.memory_size = E, H, K
        self.dtype = np.dtype(dtype)

    def initial_state(self, state0: Tuple[np.ndarray, ...]) -> DecoderState:
        N = state0[0].shape[1]
        feed = np.zeros((N, self.hidden_size), self.dtype) if self.input_feeding else None
        return DecoderState(tuple(state0), feed)

    # -- one step ------------------------------------------------------------
    def step(self, tokens: np.ndarray, dstate: DecoderState, mem: Memory, rng=None, need_cache: bool = True):
        """One decoder step for input tokens (N,). Returns ``(out (N, O), weights (N, S), dstate', cache)``.

        ``need_cache=False`` (decoding in eval mode): the stack steps through its inference loops and the
        cache's recurrent part is None (no backward through it)."""
        emb = self.embedding.weight.data[tokens]                       # (N, E)
        emb, emb_mask = self.drop(emb, rng)
        states, feed = dstate
        if not self.luong:
            c, w, attn_cache = self.attention.attend(states[0][-1], mem)   # query: s_{t-1}, top layer
            x = np.concatenate((emb, c), axis=1)                       # (N, E+K)
        else:
            x = np.concatenate((emb, feed), axis=1) if self.input_feeding else emb
        s, new_states, rnn_cache = self.rnn.step_forward(x, states, need_cache=need_cache)  # s: (N, H) top
        new_states = _as_tuple(new_states)
        hc = ht = None
        if self.luong:
            c, w, attn_cache = self.attention.attend(s, mem)           # query: s_t
            hc = np.concatenate((c, s), axis=1)                        # (N, K+H)
            ht = np.tanh(self.combine(hc)[0])                          # (N, H)
            out, feed = ht, ht
        else:
            out = np.concatenate((s, c), axis=1)                       # (N, H+K)
        out, out_mask = self.drop(out, rng)
        cache = StepCache(tokens, emb_mask, attn_cache, rnn_cache, hc, ht, out_mask)
        return out, w, DecoderState(new_states, feed if self.input_feeding else None), cache

    def logits(self, out: np.ndarray) -> np.ndarray:
        return self.project(out)[0]                                    # (..., V)

    def project(self, out: np.ndarray):
        """Logits (..., V) of output vectors ``out`` (..., O), and the cache of :meth:`project_backward`."""
        proj_cache = None
        if "out_proj" in self._modules:
            out, proj_cache = self.out_proj(out)                       # (..., E)
        logits, out_cache = self.out(out)                              # (..., V)
        return logits, (proj_cache, out_cache)

    def project_backward(self, d_logits: np.ndarray, cache) -> np.ndarray:
        """The gradient of the output vectors (..., O); adds the output layer's (and P's) gradients."""
        proj_cache, out_cache = cache
        d_out = self.out.backward(d_logits, out_cache)                 # (..., E or O)
        if proj_cache is not None:
            d_out = self.out_proj.backward(d_out, proj_cache)          # (..., O)
        return d_out

    # -- many steps ----------------------------------------------------------
    def forward_steps(self, tgt_in: np.ndarray, dstate: DecoderState, mem: Memory, rng=None,
                      teacher: Optional[np.ndarray] = None, choose=None):
        """Run T steps over ``tgt_in`` (T, N).

        Where ``teacher`` (T, N) is False, the step's input is ``choose(logits of the
        previous step)`` instead of ``tgt_in`` (scheduled sampling). Returns
        ``(outs (T, N, O), weights (T, N, S), logits (T, N, V) or None, cache)``.
        """
        T = tgt_in.shape[0]
        outs, ws, caches, step_logits = [], [], [], []
        tokens = tgt_in[0]
        for t in range(T):
            if t > 0 and teacher is not None and not teacher[t].all():
                tokens = np.where(teacher[t], tgt_in[t], choose(step_logits[-1]))
            elif t > 0:
                tokens = tgt_in[t]
            out, w, dstate, cache = self.step(tokens, dstate, mem, rng)
            outs.append(out)
            ws.append(w)
            caches.append(cache)
            if teacher is not None:
                step_logits.append(self.logits(out))                   # (N, V) needed to choose the next input
        logits = np.stack(step_logits) if step_logits else None
        return np.stack(outs), np.stack(ws), logits, ("steps", caches)

    def forward_sequence(self, tgt_in: np.ndarray, dstate: DecoderState, mem: Memory, rng=None):
        """Teacher-forced Luong decoder without input feeding, all steps at once (same results as the steps)."""
        assert self.luong and not self.input_feeding
        emb, emb_cache = self.embedding(tgt_in)                        # (T, N, E)
        emb, emb_mask = self.drop(emb, rng)
        states = dstate.states if len(dstate.states) > 1 else dstate.states[0]
        s_all, _, rnn_cache = self.rnn(emb, states)                    # (T, N, H)
        q = s_all.transpose(1, 0, 2)                                   # (N, T, H)
        c, w, attn_cache = self.attention.attend(q, mem)               # (N, T, K), (N, T, S)
        hc = np.concatenate((c.transpose(1, 0, 2), s_all), axis=2)     # (T, N, K+H)
        ht = np.tanh(self.combine(hc)[0])                              # (T, N, H)
        out, out_mask = self.drop(ht, rng)
        cache = ("sequence", (emb_cache, emb_mask, rnn_cache, attn_cache, hc, ht, out_mask))
        return out, w.transpose(1, 0, 2), None, cache

    # -- backward ------------------------------------------------------------
    def backward(self, d_out: np.ndarray, cache, mem: Memory):
        """Backward of ``forward_steps``/``forward_sequence`` from ``d_out`` (T, N, O).

        Returns ``(d_state0, d_keys, d_values)``: the initial state's gradient (tuple)
        and the attention's key and value gradients summed over the steps (the caller
        passes them to ``attention.prepare_backward``). Parameter gradients are added.
        """
        kind, c = cache
        if kind == "sequence":
            return self._backward_sequence(d_out, c, mem)
        return self._backward_steps(d_out, c, mem)

    def _backward_sequence(self, d_out, c, mem):
        emb_cache, emb_mask, rnn_cache, attn_cache, hc, ht, out_mask = c
        K = self.memory_size
        d_ht = self.drop.backward(d_out, out_mask)
        d_hc = self.combine.backward(d_ht * (1.0 - ht * ht), hc)      # (T, N, K+H)
        d_c, d_s = d_hc[..., :K], d_hc[..., K:]
        d_q, d_keys, d_vals = self.attention.attend_backward(d_c.transpose(1, 0, 2), attn_cache, mem)
        d_s = d_s + d_q.transpose(1, 0, 2)                             # (T, N, H)
        d_emb, d_state0 = self.rnn.backward(d_s, rnn_cache)
        self.embedding.backward(self.drop.backward(d_emb, emb_mask), emb_cache)
        return (d_state0 if isinstance(d_state0, tuple) else (d_state0,)), d_keys, d_vals

    def _backward_steps(self, d_out, caches, mem):
        T, N = d_out.shape[:2]
        E, H, K = self.embedding_size, self.hidden_size, self.memory_size
        dtype = d_out.dtype
        grads = StepGradients()                                        # gate gradients of every step
        d_states = None
        d_feed = None
        d_emb = np.empty((T, N, E), dtype)
        d_pre = np.empty((T, N, H), dtype) if self.luong else None
        d_keys = np.zeros_like(mem.keys)
        d_vals = np.zeros_like(mem.values)
        Wc = self.combine.weight.data if self.luong else None
        for t in range(T - 1, -1, -1):
            sc = caches[t]
            d_o = self.drop.backward(d_out[t], sc.out_mask)
            if self.luong:
                d_ht = d_o if d_feed is None else d_o + d_feed
                d_pre[t] = d_ht * (1.0 - sc.ht * sc.ht)
                d_hc = d_pre[t] @ Wc                                   # (N, K+H)
                d_q, dk, dv = self.attention.attend_backward(d_hc[:, :K], sc.attn, mem)
                d_keys += dk
                d_vals += dv
                d_top = d_hc[:, K:] + d_q
            else:
                d_top = d_o[:, :H]
            d_x, d_states = self.rnn.step_backward(d_top, sc.rnn, d_states, grads)
            d_states = _as_tuple(d_states)
            if not self.luong:
                d_c = d_o[:, H:] + d_x[:, E:]                           # c_t reaches the input and the output
                d_q, dk, dv = self.attention.attend_backward(d_c, sc.attn, mem)
                d_keys += dk
                d_vals += dv
                d_states[0][-1] += d_q                                 # the query was s_{t-1}
            elif self.input_feeding:
                d_feed = d_x[:, E:]
            d_emb[t] = self.drop.backward(d_x[:, :E], sc.emb_mask)
        self.rnn.add_step_gradients(grads)
        if self.luong:
            self.combine.backward(d_pre, np.stack([sc.hc for sc in caches]))
        self.embedding.backward(d_emb, np.stack([sc.tokens for sc in caches]))
        return tuple(d_states), d_keys, d_vals


def _as_tuple(state) -> Tuple[np.ndarray, ...]:
    """The recurrent layer's state layout ((L, N, H), or (h, c) for LSTM) as the decoder's tuple."""
    return state if isinstance(state, tuple) else (state,)
