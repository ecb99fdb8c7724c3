"""The settings-derived facts of a Translator's network, needed before it is built.

:func:`seq2seq_shapes` lists the shape of every array of the Seq2Seq a Translator with settings ``p`` builds, so a
model file or checkpoint whose arrays do not match its recorded settings is refused before anything is allocated;
:func:`feeds` resolves the ``input_feeding`` setting (none: on for Luong's attentions).
"""
from __future__ import annotations

from typing import Dict, Tuple

from ..nn.shapes import CELL_MODES, embedding_shapes, linear_shapes, recurrent_shapes


def feeds(p) -> bool:
    """Whether the decoder uses input feeding: ``p.input_feeding``, or when it is None, whether the attention
    is Luong's (dot, general). The default became None on 2026-12-02 (+2.0 validation BLEU on Tatoeba);
    files written before record True or False and keep it."""
    return p.attention != "bahdanau" if p.input_feeding is None else bool(p.input_feeding)


def seq2seq_shapes(p, src_vocab: int, tgt_vocab: int) -> Dict[str, Tuple[int, ...]]:
    """Name -> shape of every Seq2Seq array (see encoder.py, decoder.py, nn/attention.py) for settings ``p``."""
    mode, E, H, L = CELL_MODES[p.cell], int(p.embedding_size), int(p.hidden_size), int(p.num_layers)
    K = 2 if p.bidirectional else 1
    luong = p.attention != "bahdanau"
    shapes = embedding_shapes("encoder.embedding.", src_vocab, E)
    cell_kw = dict(layer_norm=bool(p.layer_norm), peephole=bool(p.peephole))
    shapes.update(recurrent_shapes("encoder.rnn.", mode, E, H, L, bidirectional=bool(p.bidirectional), **cell_kw))
    if p.bridge == "linear":
        shapes.update(linear_shapes("encoder.bridge_h.", K * H, H))
        if mode == "LSTM":
            shapes.update(linear_shapes("encoder.bridge_c.", K * H, H))
    shapes.update(embedding_shapes("decoder.embedding.", tgt_vocab, E))
    D = (E + (H if feeds(p) else 0)) if luong else E + K * H
    shapes.update(recurrent_shapes("decoder.rnn.", mode, D, H, L, **cell_kw))
    if p.attention == "bahdanau":
        A = int(p.attention_size or H)
        shapes.update({"decoder.attention.W": (A, H), "decoder.attention.U": (A, K * H), "decoder.attention.v": (A,)})
    elif p.attention == "general":
        shapes["decoder.attention.W_a"] = (H, K * H)
    if luong:
        shapes.update(linear_shapes("decoder.combine.", K * H + H, H))
    O = H if luong else H + K * H
    if p.tie_embeddings:      # decoder.out.weight is decoder.embedding.weight (V, E), stored under both names
        if O != E:
            shapes["decoder.out_proj.weight"] = (E, O)
        shapes.update(linear_shapes("decoder.out.", E, tgt_vocab))
    else:
        shapes.update(linear_shapes("decoder.out.", O, tgt_vocab))
    return shapes
