"""Copy weights between rnnkit modules and PyTorch ``state_dict``\\ s.

rnnkit's parameter names, shapes and gate order are PyTorch's by design
(``weight_ih_l0``, ``bias_hh_l1_reverse``, ``decoder.weight`` ...), so the
conversion is a one-to-one copy by name. A projected LSTM (``proj_size``) has
PyTorch's ``weight_hr_l{k}[_reverse]`` (P, H) too; the regularisers (variational
dropout, weight drop, zoneout) have no parameters, so their state_dicts are
plain ones. PyTorch is imported only inside these
functions: rnnkit itself never needs it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Mapping

import numpy as np

from ..errors import RnnkitError, ShapeError
from ..nn.module import Module
from ..nn.xp import to_host

__all__ = ["to_torch_state_dict", "load_torch_state_dict"]


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RnnkitError("PyTorch interchange needs torch: pip install torch") from e
    return torch


def _check_module(module, what: str) -> None:
    """An rnnkit :class:`~rnnkit.nn.Module`, or a TypeError that says what to pass (a fitted estimator's network)."""
    if isinstance(module, Module):
        return
    hint = (" (a fitted estimator: pass its network, .model_)" if isinstance(getattr(module, "model_", None), Module)
            else " (an estimator not fitted yet has no network: fit or load it first)" if hasattr(module, "fit")
            else "")
    raise TypeError(f"{what}: expected an rnnkit.nn.Module, got {type(module).__name__}{hint}")


def to_torch_state_dict(module: Module) -> "OrderedDict[str, Any]":
    """The module's parameters as CPU ``torch.Tensor`` copies, keyed by PyTorch's names.

    Dtypes are kept (float32 stays float32), so load the result into a torch
    module of the same dtype (``torch.nn.LSTM(..., dtype=torch.float64)`` for
    a float64 rnnkit layer) or let ``load_state_dict`` cast it. A tied parameter
    appears under each of its names, as in PyTorch's ``state_dict``.
    """
    _check_module(module, "module")
    torch = _torch()
    return OrderedDict((name, torch.from_numpy(np.array(to_host(p.data))))     # host copies, from any device
                       for name, p in module.named_parameters(remove_duplicate=False))


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch.Tensor (or a Parameter)
        t = value.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # NumPy has no bfloat16
            t = t.float()
        return t.numpy()
    return np.asarray(value)


def load_torch_state_dict(module: Module, state_dict: Mapping[str, Any], strict: bool = True) -> None:
    """Copy a PyTorch ``state_dict`` (tensors or arrays) into ``module``'s parameters in place.

    Values are cast to each parameter's dtype. Everything is checked before
    anything is copied: with ``strict`` every parameter must be present and no
    other key allowed; shapes must match. A mismatch raises :class:`ShapeError`
    listing the missing keys, unexpected keys and shape differences together.
    """
    _check_module(module, "module")
    if not isinstance(state_dict, Mapping):
        hint = (" (a PyTorch module: pass its .state_dict())" if hasattr(state_dict, "state_dict") else "")
        raise TypeError(f"state_dict: expected a mapping of names to tensors or arrays, got "
                        f"{type(state_dict).__name__}{hint}")
    arrays: Dict[str, np.ndarray] = {}
    for k, v in state_dict.items():
        try:
            arrays[k] = _to_numpy(v)
        except (TypeError, ValueError) as e:        # a ragged list, an object that is not numbers
            raise ShapeError(f"state_dict[{k!r}]: not an array of numbers ({e})") from None
    try:  # Module.load_state_dict checks everything (tied weights under every name, as torch lists them)
        module.load_state_dict(arrays, strict=strict)
    except ShapeError as e:
        raise ShapeError(f"{e}. For a PyTorch state_dict: build the rnnkit module with the same sizes and "
                         "options (num_layers, bidirectional, bias ...) as the PyTorch one") from None
