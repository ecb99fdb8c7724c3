r"""Seq2Seq: encoder, bridge and attentional decoder, with the teacher-forced loss and its gradient.

.. math::
    \mathcal{L} = -\frac{1}{M} \sum_{n,t:\ y_{nt} \ne \text{<pad>}} \sum_k q_{ntk} \log \mathrm{softmax}(z_{nt})_k

over the M real target tokens (<eos> included), q the one-hot target, smoothed
by ``label_smoothing`` (:func:`rnnkit.nn.cross_entropy`). The decoder input at
step t is the reference token :math:`y_{t-1}` where the teacher-forcing mask
says so and the model's own choice from step t-1 elsewhere (scheduled sampling);
no gradient flows through that choice.

Gradients flow logits -> decoder (steps or whole sequence) -> memory and initial
state -> bridge -> encoder, each stage's parameter gradients formed once per batch.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional

import numpy as np

from ..nn.losses import cross_entropy, softmax
from ..nn.module import Module
from ..nn.shapes import CELL_MODES
from .data import PAD
from .decoder import Decoder
from .encoder import Encoder

__all__ = ["Seq2Seq", "CONFIG_KEYS"]

CONFIG_KEYS = ("src_vocab_size", "tgt_vocab_size", "cell", "embedding_size", "hidden_size", "num_layers",
               "bidirectional", "attention", "attention_size", "input_feeding", "bridge", "dropout", "layer_norm",
               "peephole", "variational_dropout", "weight_drop", "zoneout", "tie_embeddings")


class ForwardCache(NamedTuple):
    enc: object
    mem: object
    dec: object
    dec_out: np.ndarray
    out_cache: object


class Seq2Seq(Module):
    """Encoder-decoder with attention.

    Parameters
    ----------
    src_vocab_size, tgt_vocab_size : vocabulary sizes (ids 0..3 are <pad>, <sos>, <eos>, <unk>).
    cell : "lstm" or "gru" (encoder and decoder).
    embedding_size, hidden_size, num_layers : as the names say; each encoder direction
        and the decoder have ``hidden_size`` units, so the memory has K * hidden_size
        features (K = 2 when ``bidirectional``).
    attention : "bahdanau" (additive, before the recurrent step), "dot" or "general"
        (Luong, after it); ``attention_size`` is Bahdanau's A (default hidden_size).
    input_feeding : Luong's input feeding.
    bridge : "linear" (tanh of a linear map of the encoder's final state) or "zero".
    dropout : on embeddings, between encoder layers and before the output projection.
    layer_norm, peephole : recurrent cell variants of the encoder and the decoder (:class:`~rnnkit.nn.Recurrent`).
    variational_dropout, weight_drop, zoneout : recurrent regularisers of the encoder only: they draw one
        mask per sequence, and the decoder steps one token at a time.
    tie_embeddings : the decoder's output layer is its target embedding matrix (see :mod:`.decoder`).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, *, cell: str = "lstm", embedding_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 1, bidirectional: bool = True,
                 attention: str = "bahdanau", attention_size: Optional[int] = None, input_feeding: bool = False,
                 bridge: str = "linear", dropout: float = 0.0, layer_norm: bool = False, peephole: bool = False,
                 variational_dropout: float = 0.0, weight_drop: float = 0.0, zoneout: float = 0.0,
                 tie_embeddings: bool = False, dtype=np.float32, rng=None):
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell: expected 'lstm' or 'gru', got {cell!r}")
        if attention == "dot" and bidirectional:
            raise ValueError("dot attention compares the decoder state (hidden_size) with the memory, which a "
                             "bidirectional encoder makes 2 * hidden_size wide; use bidirectional=False or "
                             "'general' attention")
        rng = np.random.default_rng(rng)
        self.config: Dict = dict(src_vocab_size=int(src_vocab_size), tgt_vocab_size=int(tgt_vocab_size), cell=cell,
                                 embedding_size=int(embedding_size), hidden_size=int(hidden_size),
                                 num_layers=int(num_layers), bidirectional=bool(bidirectional), attention=attention,
                                 attention_size=attention_size, input_feeding=bool(input_feeding), bridge=bridge,
                                 dropout=float(dropout), layer_norm=bool(layer_norm), peephole=bool(peephole),
                                 variational_dropout=float(variational_dropout), weight_drop=float(weight_drop),
                                 zoneout=float(zoneout), tie_embeddings=bool(tie_embeddings))
        cell_kw = dict(layer_norm=bool(layer_norm), peephole=bool(peephole))
        mode = CELL_MODES[cell]
        self.encoder = Encoder(src_vocab_size, mode=mode, embedding_size=embedding_size, hidden_size=hidden_size,
                               num_layers=num_layers, bidirectional=bidirectional, decoder_size=hidden_size,
                               bridge=bridge, dropout=dropout, dtype=dtype, rng=rng,
                               rnn_kw=dict(cell_kw, variational_dropout=variational_dropout, weight_drop=weight_drop,
                                           zoneout=zoneout))
        self.decoder = Decoder(tgt_vocab_size, mode=mode, embedding_size=embedding_size, hidden_size=hidden_size,
                               num_layers=num_layers, memory_size=self.encoder.memory_size, attention=attention,
                               attention_size=attention_size, input_feeding=input_feeding, dropout=dropout,
                               tie_embeddings=tie_embeddings, dtype=dtype, rng=rng, rnn_kw=cell_kw)
        self.dtype = np.dtype(dtype)

    @property
    def sequence_path(self) -> bool:
        """True when teacher-forced decoding can use the whole-sequence recurrent layer."""
        return self.decoder.luong and not self.decoder.input_feeding

    # -- inference building blocks -------------------------------------------
    def encode(self, src: np.ndarray, src_len: np.ndarray, rng=None):
        """``(memory, decoder state, encoder cache)`` for a source batch (S, N)."""
        memory, state0, enc_cache = self.encoder.forward(src, src_len, rng)
        mask = np.arange(src.shape[0])[None, :] < src_len[:, None]      # (N, S) real positions
        mem = self.decoder.attention.prepare(memory, mask)
        return mem, self.decoder.initial_state(state0), enc_cache

    # -- training --------------------------------------------------------------
    def forward(self, src, src_len, tgt_in, *, teacher: Optional[np.ndarray] = None, rng=None,
                sampling: str = "sample"):
        """Logits (T, N, V), attention weights (T, N, S) and the cache for :meth:`backward`.

        ``teacher`` (T, N) bool: where False, the input is the model's own choice from
        the previous step: a draw from its softmax (``sampling="sample"``, as Bengio
        et al. 2015) or its argmax (``"argmax"``). None or all True: teacher forcing.
        """
        mem, dstate, enc_cache = self.encode(src, src_len, rng)
        if teacher is not None and teacher[1:].all():
            teacher = None
        if teacher is None and self.sequence_path:
            out, w, _, dec_cache = self.decoder.forward_sequence(tgt_in, dstate, mem, rng)
        else:
            choose = None
            if teacher is not None:
                choose = _chooser(sampling, rng)
            out, w, _, dec_cache = self.decoder.forward_steps(tgt_in, dstate, mem, rng, teacher, choose)
        logits, out_cache = self.decoder.project(out)                      # (T, N, V), one product
        return logits, w, ForwardCache(enc_cache, mem, dec_cache, out, out_cache)

    def backward(self, d_logits: np.ndarray, cache: ForwardCache) -> None:
        """Add every parameter's gradient for the upstream gradient ``d_logits`` (T, N, V)."""
        d_out = self.decoder.project_backward(d_logits, cache.out_cache)  # (T, N, O)
        d_state0, d_keys, d_vals = self.decoder.backward(d_out, cache.dec, cache.mem)
        d_memory = self.decoder.attention.prepare_backward(d_keys, d_vals, cache.mem)
        self.encoder.backward(d_memory, d_state0, cache.enc)

    def loss(self, batch, *, teacher: Optional[np.ndarray] = None, label_smoothing: float = 0.0, rng=None,
             sampling: str = "sample", backward: bool = True):
        """Mean token cross-entropy of a batch, and (with ``backward``) its gradient added to ``.grad``.

        Returns ``(loss, n_tokens)``.
        """
        logits, _, cache = self.forward(batch.src, batch.src_len, batch.tgt_in, teacher=teacher, rng=rng,
                                        sampling=sampling)
        loss, d_logits = cross_entropy(logits, batch.tgt_out, ignore_index=PAD, label_smoothing=label_smoothing)
        if backward:
            self.backward(d_logits, cache)
        return loss, int((batch.tgt_out != PAD).sum())


def _chooser(sampling: str, rng):
    if sampling == "argmax":
        return lambda logits: logits.argmax(axis=-1)
    if sampling != "sample":
        raise ValueError(f"sampling: expected 'sample' or 'argmax', got {sampling!r}")
    if rng is None:
        raise ValueError("scheduled sampling with sampling='sample' needs rng (a numpy.random.Generator)")

    def draw(logits):
        p = softmax(logits.astype(np.float64))                             # (N, V)
        u = rng.random((p.shape[0], 1))
        return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), p.shape[1] - 1)   # inverse-CDF draw per row
    return draw
