"""Arrays and models on array-api-strict's second device, for the tests that run the engine off NumPy.

array-api-strict implements the array API standard and nothing more, and its
``Device("device1")`` refuses to be combined with arrays on any other device or
to turn into a NumPy array: a hidden ``np.asarray`` or a forgotten ``device=``
in the engine fails there, on a machine without a GPU.
"""

from __future__ import annotations

import numpy as np

import array_api_strict as xps
from rnnkit.nn.xp import to_device, to_host

DEVICE = xps.Device("device1")


def on_device(a):
    """``a`` (an array, a tuple/list of them, or None) moved to :data:`DEVICE`."""
    if a is None:
        return None
    if isinstance(a, (tuple, list)):
        return type(a)(on_device(v) for v in a)
    return to_device(a, DEVICE, xps)


def on_host(a):
    """``a`` (as :func:`on_device` takes) as NumPy arrays, after checking each is a strict array on :data:`DEVICE`."""
    if a is None:
        return None
    if isinstance(a, (tuple, list)):
        return type(a)(on_host(v) for v in a)
    assert type(a).__module__.startswith("array_api_strict"), f"expected a strict array, got {type(a)}"
    assert a.device == DEVICE, f"expected an array on {DEVICE}, got one on {a.device}"
    return to_host(a)


def device_case(case):
    """A ``(layer, x, state, lengths, dy, d_state)`` case with the layer moved to DEVICE and every array too
    (lengths stay NumPy: the layer checks them on the host and moves them itself)."""
    layer, x, state, lengths, dy, d_state = case
    return layer.to(DEVICE), on_device(x), on_device(state), lengths, on_device(dy), on_device(d_state)


def assert_same(device_value, host_value, what, rtol=1e-12, atol=1e-14):
    """A device result (checked to live on DEVICE) equals the NumPy path's within float64 round-off."""
    for j, (a, b) in enumerate(zip(_flat(on_host(device_value)), _flat(host_value))):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{what}[{j}]")


def _flat(v):
    return list(v) if isinstance(v, (tuple, list)) else [v]
