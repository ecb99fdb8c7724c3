"""The recurrent variants' test cases and an independent step-by-step PyTorch twin of them."""

from __future__ import annotations

import numpy as np

from recurrent_cases import make_case

# (cell kind, constructor keywords): every variant alone, then combinations that share a code path
VARIANTS = [
    ("lstm", dict(proj_size=3)),
    ("lstm", dict(variational_dropout=0.3)),
    ("gru", dict(variational_dropout=0.3)),
    ("rnn_tanh", dict(variational_dropout=0.3)),
    ("lstm", dict(weight_drop=0.4)),
    ("gru", dict(weight_drop=0.4)),
    ("lstm", dict(zoneout=0.3)),
    ("lstm", dict(zoneout=0.2, zoneout_cell=0.5)),
    ("gru", dict(zoneout=0.3)),
    ("rnn_tanh", dict(zoneout=0.3)),
    ("lstm", dict(peephole=True)),
    ("lstm", dict(layer_norm=True)),
    ("gru", dict(layer_norm=True)),
    ("lstm", dict(layer_norm=True, proj_size=3, variational_dropout=0.3, weight_drop=0.4, zoneout=0.3)),
    ("gru", dict(layer_norm=True, variational_dropout=0.3, zoneout=0.3)),
    ("lstm", dict(proj_size=3, variational_dropout=0.3, weight_drop=0.4, zoneout=0.3, dropout=0.2)),
    ("lstm", dict(peephole=True, proj_size=3, variational_dropout=0.3, zoneout=0.2, zoneout_cell=0.4)),
    ("gru", dict(variational_dropout=0.3, weight_drop=0.4, zoneout=0.3, dropout=0.2)),
]
VARIANT_IDS = [kind + "-" + "-".join(f"{k}{v}" for k, v in kw.items()) for kind, kw in VARIANTS]


def make_variant_case(kind, kw, varlen=True, given_state=True, dtype=np.float64, seed=0, T=4, N=3, D=3, H=4,
                      num_layers=2, bidirectional=True, batch_first=False):
    """:func:`recurrent_cases.make_case` with the variant switched on (shapes follow proj_size)."""
    layer, x, state, lengths, dy, d_state = make_case(kind, num_layers, bidirectional, varlen, given_state,
                                                      dtype=dtype, seed=seed, T=T, N=N, D=D, H=H,
                                                      batch_first=batch_first, **kw)
    rng = np.random.default_rng(seed + 100)
    for name, p in layer.named_parameters():                  # the cells' own weights: random, not 1 and 0
        if name.startswith(("ln_", "weight_ph")):
            p.data[...] = rng.uniform(0.5, 1.5, p.shape) if "ln_weight" in name else rng.uniform(-0.5, 0.5, p.shape)
    return layer, x, state, lengths, dy, d_state


def torch_twin_forward(layer, cache, x, state, lengths):
    """The layer's forward, written out step by step in torch autograd from its equations.

    Uses the masks the rnnkit forward drew (read from its cache), so training-mode runs compare
    exactly. ``x`` and ``state`` are torch leaf tensors (T, N, D) / (L*K, N, .). Returns
    ``(output, [final state per component])``.
    """
    import torch

    K, L = layer.num_directions, layer.num_layers
    params = {n: torch.tensor(p.data, requires_grad=True) for n, p in layer.named_parameters()}
    T, N = x.shape[:2]
    sizes = layer._state_sizes()
    states0 = state if isinstance(state, tuple) else (state,)
    inp = x
    finals = [[None] * (L * K) for _ in sizes]
    for l in range(L):
        if cache.dropout_masks[l] is not None:
            inp = inp * torch.tensor(cache.dropout_masks[l])
        if cache.input_masks[l] is not None:
            inp = inp * torch.tensor(cache.input_masks[l])[None]
        outs = []
        for k in range(K):
            sfx = layer._suffix(l, k)
            W_ih, W_hh = params["weight_ih" + sfx], params["weight_hh" + sfx]
            b_ih, b_hh = params["bias_ih" + sfx], params["bias_hh" + sfx]
            if cache.weight_masks[l][k] is not None:
                W_hh = W_hh * torch.tensor(cache.weight_masks[l][k])
            W_hr = params.get("weight_hr" + sfx)
            variant = getattr(cache.scans[l][k], "variant", None)     # the plain fused cache has none
            h_mask = None if variant is None or variant.h_mask is None else torch.tensor(variant.h_mask)
            zone = None if variant is None else variant.zoneout
            s = [s0[l * K + k] for s0 in states0]
            ys = [None] * T
            order = range(T - 1, -1, -1) if k == 1 else range(T)
            ln = "ln_weight_ih" + sfx in params
            for t in order:
                h = s[0]
                hm = h if h_mask is None else h * h_mask
                xw = inp[t] @ W_ih.T
                hw = hm @ W_hh.T
                if ln:                                         # Ba et al.: normalise each product, then the biases
                    norm = lambda v: torch.nn.functional.layer_norm(v, v.shape[1:], eps=1e-5)
                    xw = norm(xw) * params["ln_weight_ih" + sfx]
                    hw = norm(hw) * params["ln_weight_hh" + sfx]
                xw, hw = xw + b_ih, hw + b_hh
                if layer.mode == "LSTM":
                    i, f, g, o = (xw + hw).chunk(4, dim=1)
                    W_ph = params.get("weight_ph" + sfx)
                    if W_ph is not None:                       # peepholes [p_i, p_f, p_o]: i, f see c, o sees c'
                        p_i, p_f, p_o = W_ph.chunk(3)
                        i, f = i + p_i * s[1], f + p_f * s[1]
                    c = torch.sigmoid(f) * s[1] + torch.sigmoid(i) * torch.tanh(g)
                    if W_ph is not None:
                        o = o + p_o * c
                    c_out = c
                    if ln:
                        c_out = torch.nn.functional.layer_norm(c, c.shape[1:], params["ln_weight_c" + sfx],
                                                               params["ln_bias_c" + sfx], eps=1e-5)
                    hn = torch.sigmoid(o) * torch.tanh(c_out)
                    if W_hr is not None:
                        hn = hn @ W_hr.T
                    new = [hn, c]
                elif layer.mode == "GRU":
                    xr, xz, xn = xw.chunk(3, dim=1)
                    hr, hz, hn_ = hw.chunk(3, dim=1)
                    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                    n = torch.tanh(xn + r * hn_)
                    new = [(1 - z) * n + z * h]
                else:
                    new = [torch.tanh(xw + hw)]
                if zone is not None:
                    new = [a if d is None else a + torch.tensor(d[t]) * (b - a) for a, b, d in zip(new, s, zone)]
                if lengths is not None:
                    m = torch.tensor((t < lengths)[:, None])
                    new = [torch.where(m, a, b) for a, b in zip(new, s)]
                    ys[t] = new[0] * m
                else:
                    ys[t] = new[0]
                s = new
            for j in range(len(sizes)):
                finals[j][l * K + k] = s[j]
            outs.append(torch.stack(ys))
        inp = torch.cat(outs, dim=2)
    return inp, [torch.stack(f) for f in finals], params
