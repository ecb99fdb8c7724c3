"""Parameter shapes of the layers, computed from their settings without allocating anything.

A model file's configuration is untrusted: a crafted one could ask for a
hidden size of 10^8. Applications compare the shapes these functions give with
the arrays the file really holds (and estimate memory from them) *before*
building a model. Names and shapes are exactly those the layers create.
"""

from __future__ import annotations

from typing import Dict, Tuple

__all__ = ["linear_shapes", "embedding_shapes", "recurrent_shapes", "GATES", "CELL_MODES", "MAX_LAYERS", "count"]

Shape = Tuple[int, ...]
# gates per cell, as the cells pack them (LSTM i, f, g, o; GRU r, z, n)
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
# the applications' cell names (--cell) -> the Recurrent mode they build
CELL_MODES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN_TANH"}
MAX_LAYERS = 1000  # far beyond any useful stack; keeps a crafted configuration from looping for hours


def linear_shapes(prefix: str, in_features: int, out_features: int, bias: bool = True) -> Dict[str, Shape]:
    """``weight`` (out, in) and ``bias`` (out,) under ``prefix``."""
    shapes = {f"{prefix}weight": (int(out_features), int(in_features))}
    if bias:
        shapes[f"{prefix}bias"] = (int(out_features),)
    return shapes


def embedding_shapes(prefix: str, num_embeddings: int, embedding_dim: int) -> Dict[str, Shape]:
    """``weight`` (V, E) under ``prefix``."""
    return {f"{prefix}weight": (int(num_embeddings), int(embedding_dim))}


def recurrent_shapes(prefix: str, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                     bias: bool = True, bidirectional: bool = False, proj_size: int = 0,
                     peephole: bool = False, layer_norm: bool = False) -> Dict[str, Shape]:
    """``weight_ih_l{k}[_reverse]`` (G*H, D_k), ``weight_hh_l{k}`` (G*H, P), the biases (G*H,) and, for a
    projected LSTM (``proj_size`` P > 0), ``weight_hr_l{k}`` (P, H); D_k = K*P above layer 0, P = H unprojected.
    A peephole LSTM adds ``weight_ph_l{k}`` (3H,); a layer-normalised cell ``ln_weight_ih_l{k}``,
    ``ln_weight_hh_l{k}`` (G*H,) and, for LSTM, ``ln_weight_c_l{k}``, ``ln_bias_c_l{k}`` (H,).

    The regularisers (variational dropout, weight drop, zoneout) add no parameters.
    """
    if mode not in GATES:
        raise ValueError(f"mode: expected one of {sorted(GATES)}, got {mode!r}")
    if not 1 <= int(num_layers) <= MAX_LAYERS:
        raise ValueError(f"num_layers (--num-layers) must be in [1, {MAX_LAYERS}], got {num_layers!r}")
    G, H, K = GATES[mode], int(hidden_size), 2 if bidirectional else 1
    P = int(proj_size) or H
    if layer_norm and mode not in ("LSTM", "GRU"):
        raise ValueError(f"layer_norm (--layer-norm) applies to LSTM and GRU, got mode {mode}")
    if peephole and mode != "LSTM":
        raise ValueError(f"peephole (--peephole) applies to LSTM only, got mode {mode}")
    if proj_size and (mode != "LSTM" or not 0 < P < H):
        raise ValueError(f"proj_size (--proj-size) must be 0, or in [1, hidden_size) for an LSTM, got {proj_size!r} "
                         f"with mode {mode} and hidden_size {H}")
    shapes: Dict[str, Shape] = {}
    for layer in range(int(num_layers)):
        D = int(input_size) if layer == 0 else K * P
        for k in range(K):
            sfx = f"_l{layer}" + ("_reverse" if k == 1 else "")
            shapes[f"{prefix}weight_ih{sfx}"] = (G * H, D)
            shapes[f"{prefix}weight_hh{sfx}"] = (G * H, P)
            if bias:
                shapes[f"{prefix}bias_ih{sfx}"] = (G * H,)
                shapes[f"{prefix}bias_hh{sfx}"] = (G * H,)
            if P != H:
                shapes[f"{prefix}weight_hr{sfx}"] = (P, H)
            if peephole:
                shapes[f"{prefix}weight_ph{sfx}"] = (3 * H,)
            if layer_norm:
                shapes[f"{prefix}ln_weight_ih{sfx}"] = shapes[f"{prefix}ln_weight_hh{sfx}"] = (G * H,)
                if mode == "LSTM":
                    shapes[f"{prefix}ln_weight_c{sfx}"] = shapes[f"{prefix}ln_bias_c{sfx}"] = (H,)
    return shapes


def count(shapes: Dict[str, Shape]) -> int:
    """Total number of values in ``shapes``."""
    total = 0
    for shape in shapes.values():
        n = 1
        for d in shape:
            n *= int(d)
        total += n
    return total
