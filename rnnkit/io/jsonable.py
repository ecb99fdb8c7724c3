"""The one JSON normaliser: NumPy scalars to Python numbers, recursively.

Model files, checkpoints, training histories and results written as JSON all
pass their dicts through here, so a ``np.float32`` loss or an ``np.int64``
step never reaches ``json.dumps`` (which refuses them).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["to_json", "plain"]


def plain(value: Any) -> Any:
    """NumPy scalars (and 0-d arrays) to Python numbers, tuples to lists, recursively; the rest as it is."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def to_json(value: Any, where: str) -> Any:
    """A JSON-ready copy of ``value``, refusing anything JSON cannot hold.

    Like :func:`plain`, but strict: keys must be strings and every leaf must be
    None, a bool, a number or a string. ``where`` names the value in the
    message (``config['vocab'][3]``).
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings for JSON, got {k!r}")
            out[k] = to_json(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-able; store arrays in `arrays`, "
                    "and plain numbers, strings, lists and dicts in config/meta")
