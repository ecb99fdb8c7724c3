"""Shared test helpers: central finite differences and PyTorch twins of rnnkit layers."""

from __future__ import annotations

import numpy as np


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6, indices=None) -> np.ndarray:
    """Central finite differences of scalar f() with respect to array x (changed in place and restored).

    With ``indices`` (flat positions), only those entries are computed; others are NaN.
    """
    g = np.full(x.shape, np.nan)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in (range(x.size) if indices is None else indices):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def sample_indices(rng: np.random.Generator, size: int, k: int = 6):
    """All positions of a small array, else k random ones (always including the first and last)."""
    if size <= k:
        return np.arange(size)
    return np.unique(np.concatenate([[0, size - 1], rng.choice(size, k - 2, replace=False)]))


def assert_grad_close(analytic, numeric, name, rtol=1e-5, atol=1e-7):
    analytic = np.asarray(analytic)
    sel = ~np.isnan(numeric)
    a, n = analytic[sel], numeric[sel]
    err = np.abs(a - n)
    ok = err <= atol + rtol * np.abs(n)
    if not ok.all():
        i = int(np.argmax(err - rtol * np.abs(n)))
        raise AssertionError(f"{name}: analytic {a[i]!r} vs numeric {n[i]!r} (max abs err {err.max():.3e})")


def torch_twin(layer):
    """A torch.nn.RNN/LSTM/GRU with the same configuration and weights as an rnnkit layer."""
    import torch

    kw = dict(num_layers=layer.num_layers, bias=layer.bias, batch_first=layer.batch_first,
              dropout=layer.dropout, bidirectional=layer.bidirectional)
    if layer.mode.startswith("RNN"):
        t = torch.nn.RNN(layer.input_size, layer.hidden_size, nonlinearity=layer.mode[4:].lower(), **kw)
    else:
        t = getattr(torch.nn, layer.mode)(layer.input_size, layer.hidden_size, **kw)
    t = t.double() if layer.dtype == np.float64 else t.float()
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.state_dict().items()})
    return t
