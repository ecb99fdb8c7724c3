"""The array namespace the engine computes with, and the places where the array API standard has gaps.

The engine (cells, scanner, layers, losses, attention, optimisers) is written against
an array namespace ``xp`` taken from its arrays, as the Python array API standard
(https://data-apis.org/array-api/) describes:

    xp = namespace(W_ih, x)          # numpy, array_api_strict, cupy, torch (through array-api-compat)
    z = xp.matmul(x, xp.permute_dims(W_ih, (1, 0)))

NumPy arrays give NumPy itself (NumPy 2 follows the standard in its main namespace),
so the CPU path pays nothing for the indirection and keeps the compiled numba
kernels, which run only on NumPy arrays (:func:`is_numpy`). Any other array goes
through ``array_api_compat.array_namespace``.

What the standard does not have is handled here, once:

- randomness: no random module. Masks and initial weights are drawn on the host
  from the passed-in ``numpy.random.Generator`` and moved with :func:`to_device`,
  so a run on a device with a seed matches the CPU run with that seed;
- ``np.add.at`` (the embedding's backward, repeated ids accumulate):
  :func:`scatter_add_rows`;
- integer-array indexing: ``xp.take`` (in the standard), used directly;
- model files and printing: :func:`to_host` gives a NumPy array from any device.

``device`` values are whatever the library uses (``"cpu"``, ``cupy.cuda.Device(0)``,
``array_api_strict.Device("device1")``); the strings ``"cpu"`` and ``"cuda"`` /
``"cuda:K"`` name NumPy and CuPy (:func:`resolve_device`).
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from ..errors import RnnkitError

__all__ = ["namespace", "is_numpy", "device_of", "to_device", "to_host", "resolve_device", "scatter_add_rows",
           "host_copy", "assign", "DeviceError"]

# NumPy >= 2.1 has every standard name the engine uses in its main namespace
_NUMPY_IS_STANDARD = all(hasattr(np, name) for name in ("astype", "concat", "permute_dims", "matrix_transpose"))


class DeviceError(RnnkitError):
    """A device was asked for that is not here (the library that drives it is missing, or no such device)."""


def _numpy_namespace():
    if _NUMPY_IS_STANDARD:
        return np
    import array_api_compat.numpy as compat_np    # NumPy < 2.1 lacks a few standard names (astype, concat, ...)
    return compat_np


_NUMPY = _numpy_namespace()


def namespace(*arrays) -> Any:
    """The array namespace of ``arrays`` (``None`` entries and Python scalars are ignored).

    All NumPy (or no arrays at all): NumPy itself. Otherwise the namespace
    array-api-compat finds, which refuses arrays of two different libraries.
    """
    for a in arrays:              # the cells ask once per step: NumPy's answer must cost next to nothing
        if type(a) is not np.ndarray and a is not None:
            break
    else:
        return _NUMPY
    real = [a for a in arrays if a is not None and not isinstance(a, (int, float, bool, np.generic))]
    if all(isinstance(a, np.ndarray) for a in real):
        return _numpy_namespace()
    import array_api_compat
    return array_api_compat.array_namespace(*real)


def is_numpy(*arrays) -> bool:
    """True when every array given is a NumPy array: the compiled kernels may run."""
    for a in arrays:              # a loop, not all(generator): asked on every call of a layer
        if a is not None and not isinstance(a, np.ndarray):
            return False
    return True


def device_of(a) -> Any:
    """The device ``a`` lives on ("cpu" for NumPy arrays)."""
    if isinstance(a, np.ndarray):
        return "cpu"
    import array_api_compat
    return array_api_compat.device(a)


def to_host(a) -> np.ndarray:
    """A NumPy array holding ``a``'s values, from any library and device (a NumPy array is returned as is)."""
    if isinstance(a, np.ndarray) or a is None:
        return a
    if type(a).__module__.startswith("cupy"):
        return a.get()
    if type(a).__module__.startswith("torch"):
        return a.detach().cpu().numpy()
    if type(a).__module__.startswith("array_api_strict"):
        import array_api_strict
        return np.asarray(a.to_device(array_api_strict.Device("CPU_DEVICE")))
    return np.asarray(a)


def resolve_device(device) -> Tuple[Any, Any]:
    """``(xp, device)`` for a device given by the user.

    ``None`` or ``"cpu"``: NumPy. ``"cuda"`` or ``"cuda:K"``: CuPy on GPU K, with
    a :class:`DeviceError` naming the ``gpu`` extra when CuPy is missing and the
    device when there is no such GPU. Any other object is taken as a device of a
    namespace the caller already holds; pass such devices with :func:`to_device`.
    """
    if device is None or device == "cpu":
        return _numpy_namespace(), "cpu"
    if isinstance(device, str) and (device == "cuda" or device.startswith("cuda:")):
        index = 0
        if device.startswith("cuda:"):
            try:
                index = int(device[5:])
                if index < 0:
                    raise ValueError(index)
            except ValueError:
                raise DeviceError(f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:K' with K a GPU number") from None
        try:
            import cupy
        except ImportError:
            raise DeviceError(f"device {device!r} needs CuPy: install the 'gpu' extra "
                              "(pip install 'rnnkit[gpu]'), or use --device cpu") from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:    # no driver, no GPU: CUDA's own error says which
            raise DeviceError(f"device {device!r}: CuPy finds no usable GPU here ({e}); use --device cpu") from None
        if index >= count:
            raise DeviceError(f"device {device!r}: this machine has {count} GPU(s) (cuda:0..cuda:{count - 1})")
        return cupy, cupy.cuda.Device(index)
    if isinstance(device, str):
        raise DeviceError(f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:K'")
    return None, device


def to_device(a, device, xp=None):
    """``a`` (NumPy or any library's array) moved to ``device`` of namespace ``xp``.

    ``device`` "cpu" with no ``xp`` gives a NumPy array. For CuPy, ``xp.asarray``
    copies host memory to the GPU; for others the standard's ``to_device`` is used
    when ``a`` is already of that library.
    """
    if a is None:
        return None
    if xp is None:
        xp, device = device_namespace(device)          # "cpu"/"cuda:K" or a library's device object
    if xp is np or xp is _numpy_namespace():
        return to_host(a)
    if getattr(xp, "__name__", "").split(".")[-1] == "cupy":  # cupy, or array-api-compat.cupy
        with device:
            return xp.asarray(to_host(a) if not type(a).__module__.startswith("cupy") else a)
    if isinstance(a, np.ndarray):
        return xp.asarray(a, device=device)
    return a.to_device(device) if device_of(a) != device else a


def numpy_dtype(dtype) -> np.dtype:
    """The NumPy dtype of any library's dtype (``array_api_strict.float32``, ``torch.float64``, ``np.float32``)."""
    if isinstance(dtype, np.dtype):                    # the engine's own case, once per call: no lookups
        return dtype
    inner = getattr(dtype, "_np_dtype", None)          # array_api_strict wraps a NumPy dtype
    if inner is not None:
        return np.dtype(inner)
    if type(dtype).__module__.startswith("torch"):
        return np.dtype(str(dtype).rsplit(".", 1)[-1])
    return np.dtype(dtype)


def parameter_dtype(dtype) -> np.dtype:
    """The NumPy dtype of a layer's ``dtype`` argument (np.float32, "float64", torch.float32 ...), which must be
    float32 or float64; anything else is one ValueError naming what was given."""
    try:
        d = numpy_dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype: expected float32 or float64, got {dtype!r}") from None
    if d not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected float32 or float64, got {d}")
    return d


__all__ += ["parameter_dtype"]


def xp_dtype(xp, dtype):
    """``xp``'s dtype of the same name as ``dtype`` (a NumPy dtype or any library's): ``xp.float32``."""
    if xp is np or xp is _NUMPY:                       # NumPy: the dtype itself (``dtype.name`` costs ~8 us a call)
        return numpy_dtype(dtype)
    return getattr(xp, numpy_dtype(dtype).name)


def device_namespace(device) -> Tuple[Any, Any]:
    """``(xp, device)`` for a device given by the user or a library's device object.

    As :func:`resolve_device`, and for device objects the namespace that owns them:
    ``array_api_strict.Device`` -> array_api_strict, ``cupy.cuda.Device`` -> cupy,
    ``torch.device`` -> array-api-compat's torch.
    """
    xp, device = resolve_device(device)
    if xp is not None:
        return xp, device
    module = type(device).__module__
    if module.startswith("array_api_strict"):
        import array_api_strict
        return array_api_strict, device
    if module.startswith("cupy"):
        import cupy
        return cupy, device
    if module.startswith("torch"):
        import array_api_compat.torch as compat_torch
        return compat_torch, device
    raise DeviceError(f"device {device!r}: not a device of NumPy, CuPy, PyTorch or array-api-strict")


def host_if_needed(a):
    """``a`` as a NumPy array when it is not an array of some library (lists, scalars), else ``a`` as it is."""
    if a is None or isinstance(a, np.ndarray) or hasattr(a, "__array_namespace__") or hasattr(a, "device"):
        return a
    return np.asarray(a)


__all__ += ["numpy_dtype", "xp_dtype", "device_namespace", "host_if_needed"]   # the engine's own (issue 17)


def check_same_device(x, W, what: str = "input") -> None:
    """``x`` lives where the parameter ``W`` does, else one :class:`DeviceError` line saying how to move either."""
    x_np, w_np = type(x) is np.ndarray, type(W) is np.ndarray
    if x_np and w_np:                        # the CPU path: nothing more to look up
        return
    if x_np != w_np or device_of(x) != device_of(W):
        raise DeviceError(f"{what}: on device {device_of(x)!r} ({type(x).__module__}), but the layer's parameters "
                          f"are on {device_of(W)!r} ({type(W).__module__}); move the layer with "
                          f".to(device) or the {what} with rnnkit.nn.xp.to_device")


__all__ += ["check_same_device"]


def scatter_add_rows(xp, target, ids, values):
    """``target[ids[k]] += values[k]`` for every k, repeated ids accumulating (NumPy's ``np.add.at``).

    target: (V, E), ids: (M,) integers, values: (M, E). The standard has no
    scatter; NumPy and CuPy have ``add.at``/``scatter_add``, and any other
    library gets the one-hot product ``onehot(ids)^T values`` (M x V memory),
    which is exact. Returns the updated target (in place where the library allows).
    """
    if isinstance(target, np.ndarray):
        np.add.at(target, ids, values)
        return target
    name = type(target).__module__
    if name.startswith("cupy"):
        import cupy
        if hasattr(cupy.add, "at"):                  # CuPy >= 12; cupyx.scatter_add is deprecated in 14
            cupy.add.at(target, ids, values)
        else:
            import cupyx
            cupyx.scatter_add(target, ids, values)
        return target
    V = target.shape[0]
    onehot = xp.astype(xp.reshape(ids, (-1, 1)) == xp.reshape(xp.arange(V, device=device_of(target)), (1, -1)),
                       values.dtype)                                  # (M, V)
    return target + xp.matmul(xp.permute_dims(onehot, (1, 0)), values)   # (V, E)


def host_copy(a) -> np.ndarray:
    """A NumPy copy of ``a`` from any device, never a view of it (what state dicts and checkpoints keep)."""
    return a.copy() if isinstance(a, np.ndarray) else np.array(to_host(a), copy=True)


def assign(target, values) -> None:
    """``target[...] = values`` in place, ``values`` (host or device) moved to ``target``'s device and dtype.

    NumPy targets take NumPy's casting assignment unchanged; other libraries get
    the values moved and cast first (the standard does not cast on assignment).
    """
    if isinstance(target, np.ndarray):
        target[...] = values
        return
    xp = namespace(target)
    moved = to_device(values if hasattr(values, "__array_namespace__") else np.asarray(values),
                      device_of(target), xp)
    target[...] = xp.astype(moved, target.dtype)
