"""Fast paths for the recurrent scan: fused, compiled time loops (numba), selected by a backend switch.

The reference implementation stays :mod:`rnnkit.nn.scan`; this package only
adds a faster way to compute the same thing. See :mod:`rnnkit.kernels.backend`
for the switch (``set_backend``, ``RNNKIT_BACKEND``, a layer's ``backend=``)
and :mod:`rnnkit.kernels.fused_scan` for the layout the loops use.

Nothing here imports numba until a scan asks for it.
"""

from .backend import BACKENDS, get_backend, numba_status, resolve_backend, set_backend

__all__ = ["BACKENDS", "set_backend", "get_backend", "resolve_backend", "numba_status"]
