"""The grid of recurrent configurations every layer test runs over, and a random case builder."""

from __future__ import annotations

import itertools

import numpy as np

from rnnkit.nn import GRU, LSTM, RNN

CELL_KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]

# varlen: False (every sequence has T steps), True (mixed lengths, one of T), or "short" (every
# length < T: the last steps are padding for the whole batch, and the reverse direction starts on them)
GRID = list(itertools.product(CELL_KINDS, [1, 2], [False, True], [False, True], [False, True]))
GRID += [(c, l, b, "short", s) for c in CELL_KINDS for l, b, s in [(1, False, False), (2, True, True)]]
GRID_IDS = [f"{c}-L{l}-{'bi' if b else 'uni'}-{'short' if v == 'short' else 'varlen' if v else 'equal'}-"
            f"{'h0' if s else 'zero'}" for c, l, b, v, s in GRID]


def make_layer(kind, input_size, hidden_size, num_layers=1, bidirectional=False, dtype=np.float64,
               seed=0, **kw):
    common = dict(num_layers=num_layers, bidirectional=bidirectional, dtype=dtype, rng=seed, **kw)
    if kind == "lstm":
        return LSTM(input_size, hidden_size, **common)
    if kind == "gru":
        return GRU(input_size, hidden_size, **common)
    return RNN(input_size, hidden_size, nonlinearity=kind[4:], **common)


def make_case(kind, num_layers, bidirectional, varlen, given_state, dtype=np.float64, seed=0,
              T=4, N=3, D=3, H=4, batch_first=False, **layer_kw):
    """A layer with random non-zero biases, inputs, state, lengths and upstream gradients.

    ``varlen``: False, True (mixed lengths, one full) or "short" (every length < T; needs T >= 2).
    ``layer_kw`` go to the layer (the variants: ``proj_size`` P makes h, the outputs and d h P wide).
    """
    rng = np.random.default_rng(seed)
    layer = make_layer(kind, D, H, num_layers, bidirectional, dtype, seed, batch_first=batch_first, **layer_kw)
    P = layer_kw.get("proj_size") or H
    for name, p in layer.named_parameters():
        if name.startswith("bias"):
            p.data[...] = rng.uniform(-0.5, 0.5, p.shape)   # random, non-zero, different ih vs hh
    K = 2 if bidirectional else 1
    x = rng.standard_normal((N, T, D) if batch_first else (T, N, D)).astype(dtype)
    if varlen == "short":
        lengths = np.resize([T - 1, 1, max(1, T // 2)], N)                     # unsorted, all < T
    else:
        lengths = np.resize([T, 1, T - 1, max(1, T // 2)], N) if varlen else None  # unsorted, one full
    state = None
    if given_state:
        h0 = (0.5 * rng.standard_normal((num_layers * K, N, P))).astype(dtype)
        c0 = (0.5 * rng.standard_normal((num_layers * K, N, H))).astype(dtype)
        state = (h0, c0) if kind == "lstm" else h0
    dy = rng.standard_normal((N, T, K * P) if batch_first else (T, N, K * P)).astype(dtype)
    if varlen:
        real = np.arange(T)[:, None] < lengths[None, :]       # (T, N)
        dy *= (real.T if batch_first else real)[:, :, None]
    d_h = rng.standard_normal((num_layers * K, N, P)).astype(dtype)
    d_c = rng.standard_normal((num_layers * K, N, H)).astype(dtype)
    d_state = (d_h, d_c) if kind == "lstm" else d_h
    return layer, x, state, lengths, dy, d_state


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def surrogate_loss(y, state_n, dy, d_state):
    """The scalar whose gradient is (dy, d_state): sum(y * dy) + sum(state_n * d_state)."""
    loss = float((y * dy).sum())
    for s, d in zip(as_tuple(state_n), as_tuple(d_state)):
        loss += float((s * d).sum())
    return loss
