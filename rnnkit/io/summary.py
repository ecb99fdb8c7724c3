"""What a model file or checkpoint holds, in a few lines: ``rnnkit info MODEL`` prints this.

:func:`summarize` reads the file the safe way (:func:`~rnnkit.io.modelfile.load_model_file`:
no pickle, checksums checked) and returns a JSON-able dict: the kind (for a
checkpoint, the application that wrote it and the step it was taken at), the
configuration with long lists (vocabularies) replaced by their length, the
training history's summary, the number of parameters and the size on disk.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping

from .inputs import refuse_special
from ..errors import ModelFileError, RnnkitError
from .modelfile import load_model_file

__all__ = ["summarize", "format_summary"]

_LONG = 12   # lists longer than this are shown by their length


def _short(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and len(value) > _LONG:
        return f"<{len(value)} items>"
    return value


def _history(h: Any) -> Dict[str, Any]:
    if not isinstance(h, Mapping):
        return {}
    train = h.get("train") or []
    last = train[-1][1] if train and isinstance(train[-1], (list, tuple)) and len(train[-1]) > 1 else None
    return {k: v for k, v in (("steps", h.get("steps")), ("elapsed_s", h.get("elapsed_s")),
                              ("stop_reason", h.get("stop_reason")), ("last_train_loss", last),
                              ("best_val_loss", h.get("best_val_loss")), ("best_step", h.get("best_step")),
                              ("unit", h.get("unit"))) if v is not None}


def summarize(path) -> Dict[str, Any]:
    """A JSON-able summary of the model file or checkpoint at ``path`` (see the module docstring).

    The header's checksums may be right and its fields still malformed (a crafted file):
    anything of the wrong type is a :class:`ModelFileError` naming the file, never a traceback.
    """
    try:
        return _summarize(os.fspath(path))
    except RnnkitError:             # already names the problem (a FIFO, a missing file, a bad checksum)
        raise
    except (TypeError, AttributeError, ValueError, KeyError, IndexError) as e:
        raise ModelFileError(f"{os.fspath(path)}: the header is malformed ({type(e).__name__}: {e}); the file was "
                             "not written by rnnkit or was edited") from None


def _summarize(path: str) -> Dict[str, Any]:
    refuse_special(path, "MODEL")         # a FIFO would block the reader forever
    mf = load_model_file(path)
    out: Dict[str, Any] = {"path": path, "bytes": os.path.getsize(path), "kind": mf.kind,
                           "format_version": mf.format_version, "rnnkit_version": mf.rnnkit_version}
    meta = mf.meta or {}
    if mf.kind == "checkpoint":
        prefix = "model/"
        arrays = {k: a for k, a in mf.arrays.items() if k.startswith(prefix)}
        train = meta.get("train") or {}
        out["application"] = (mf.config or {}).get("kind")
        out["step"], out["epoch"] = train.get("step"), train.get("epoch")
        history = meta.get("history")
    else:
        arrays = mf.arrays
        history = meta.get("history")
    out["parameters"] = int(sum(a.size for a in arrays.values()))
    out["arrays"] = len(arrays)
    config = mf.config or {}
    out["params"] = _short(config.get("params", {}))
    fitted = config.get("fitted")
    if fitted is not None:
        out["fitted"] = _short(fitted)
    out["history"] = _history(history)
    extra = {k: _short(v) for k, v in meta.items() if k not in ("history", "train", "optimizer", "user", "has_best")}
    if extra:
        out["meta"] = extra
    return out


def _lines(d: Mapping[str, Any], indent: str = "  "):
    for k, v in d.items():
        if isinstance(v, Mapping):
            if v:
                yield f"{indent}{k}:"
                yield from _lines(v, indent + "  ")
        else:
            yield f"{indent}{k}: {v}"


def format_summary(s: Mapping[str, Any]) -> str:
    """The summary as the indented text ``rnnkit info`` prints."""
    head = f"{s['path']}: {s['kind']}"
    if s["kind"] == "checkpoint":
        head += f" of a {s.get('application') or 'plain fit()'} run at step {s.get('step')}"
    head += f", {s['parameters']:,} parameters in {s['arrays']} arrays, {s['bytes']:,} bytes " \
            f"(format {s['format_version']}, rnnkit {s['rnnkit_version']})"
    body = {k: s[k] for k in ("params", "fitted", "history", "meta") if s.get(k)}
    return "\n".join([head, *_lines(body)])
