"""Self-contained, safe model files: arrays plus a JSON header in one ``.npz``.

A model file is a zip archive in NumPy's ``.npz`` layout. Every entry is a
``.npy`` array; one reserved entry, ``__rnnkit_header__``, is a uint8 array
holding UTF-8 JSON::

    {"magic": "rnnkit-model", "format_version": 1, "kind": "charlm",
     "rnnkit_version": "0.1.0", "config": {...}, "meta": {...},
     "arrays": {"name": {"dtype": "<f4", "shape": [3, 4], "sha256": "..."}}}

``config`` is what an application needs to rebuild its model, ``meta`` anything
else JSON-able (vocabulary, training history). Files are read with
``np.load(..., allow_pickle=False)``: loading never unpickles, so it never runs
code from the file. Each array's SHA-256 covers its dtype, shape and bytes, so
a corrupted or edited array is reported by name instead of loading silently.

Writes are atomic: the archive goes to a temporary file in the target's
directory, is flushed and fsync'ed, then renamed over the target with
``os.replace``. A crash or error mid-write leaves any previous file intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

import numpy as np

from .. import __version__
from ..errors import ModelFileError

__all__ = ["ModelFile", "save_model_file", "load_model_file", "FORMAT_VERSION", "MAGIC", "HEADER_KEY"]

MAGIC = "rnnkit-model"
FORMAT_VERSION = 1  # the newest format this rnnkit writes and reads
HEADER_KEY = "__rnnkit_header__"


@dataclass
class ModelFile:
    """The contents of a model file (see the module docstring)."""

    kind: str
    config: Dict[str, Any]
    arrays: Dict[str, np.ndarray]
    meta: Dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    rnnkit_version: str = __version__


def array_sha256(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype (with byte order), shape and C-order bytes."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}|{list(a.shape)}|".encode())
    h.update(a.reshape(-1).view(np.uint8) if a.dtype.itemsize else b"")
    return h.hexdigest()


def _to_json(value: Any, where: str) -> Any:
    """A JSON-ready copy: NumPy scalars become Python numbers; anything else unknown is refused."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings for JSON, got {k!r}")
            out[k] = _to_json(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-able; store arrays in `arrays`, "
                    "and plain numbers, strings, lists and dicts in config/meta")


def save_model_file(path, *, kind: str, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                    meta: Optional[Mapping[str, Any]] = None, compress: bool = False) -> None:
    """Write a model file atomically (see the module docstring).

    ``config`` and ``meta`` must be JSON-able (tuples come back as lists); array
    names are non-empty strings and arrays must not hold Python objects.
    ``compress`` deflates the arrays (smaller, slower). The path is used as
    given; ``.npz`` is the conventional extension.
    """
    path = os.fspath(path)
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind: expected a non-empty string, got {kind!r}")
    if not isinstance(config, Mapping):
        raise TypeError(f"config: expected a dict, got {type(config).__name__}")
    if meta is not None and not isinstance(meta, Mapping):
        raise TypeError(f"meta: expected a dict or None, got {type(meta).__name__}")
    clean: Dict[str, np.ndarray] = {}
    for name, a in arrays.items():
        if not isinstance(name, str) or not name or name == HEADER_KEY:
            raise ValueError(f"array name: expected a non-empty string other than {HEADER_KEY!r}, got {name!r}")
        a = np.asarray(a)
        if a.dtype.hasobject:
            raise ModelFileError(f"array {name!r} holds Python objects (dtype {a.dtype}); model files "
                                 "store numeric and string arrays only, so convert it first")
        clean[name] = a
    header = {
        "magic": MAGIC,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "rnnkit_version": __version__,
        "config": _to_json(dict(config), "config"),
        "meta": _to_json(dict(meta or {}), "meta"),
        "arrays": {n: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": array_sha256(a)}
                   for n, a in clean.items()},
    }
    header_bytes = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    _atomic_write(path, lambda f: _write_npz(f, {HEADER_KEY: header_bytes, **clean}, compress))


def _write_npz(f, arrays: Mapping[str, np.ndarray], compress: bool) -> None:
    """The .npz layout of ``np.savez``, written entry by entry (any array name works)."""
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(f, mode="w", compression=mode, allowZip64=True) as zf:
        for name, a in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, a, allow_pickle=False)


def _atomic_write(path: str, write) -> None:
    """Call ``write(fileobj)`` on a temporary sibling of ``path``, fsync, then rename it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ModelFileError(f"{path}: directory {directory} does not exist; create it first")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide the permissions, as for any new file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable; not possible on every platform
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _sniff(path: str) -> None:
    """Raise a ModelFileError for anything that is not a readable, complete zip archive."""
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file; check the path (model files are written by "
                             "`fit`/`save` and usually end in .npz)")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, not a model file; pass the .npz file inside it")
    try:
        with open(path, "rb") as f:
            start = f.read(6)
    except OSError as e:
        raise ModelFileError(f"{path}: cannot be read ({e.strerror}); check its permissions") from e
    if not start:
        raise ModelFileError(f"{path}: is empty (an interrupted copy or write?); re-save or re-copy it")
    if start.startswith(b"\x93NUMPY"):
        raise ModelFileError(f"{path}: is a single NumPy .npy array, not an rnnkit model file (.npz); "
                             "save models with rnnkit.io.save_model_file")
    if not start.startswith(b"PK"):
        raise ModelFileError(f"{path}: is not an rnnkit model file (not a zip/.npz archive; a text or "
                             "pickle file?); pass a file written by rnnkit")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: is truncated or corrupted (the zip archive has no end record); "
                             "re-save or re-copy it")


def _read_header(npz, path: str) -> Dict[str, Any]:
    not_ours = (f"{path}: is a zip/.npz archive but not an rnnkit model file (no rnnkit header); "
                "pass a file written by rnnkit.io.save_model_file (PyTorch .pt files are zips too: "
                "convert them with rnnkit.io.load_torch_state_dict)")
    if HEADER_KEY not in npz.files:
        raise ModelFileError(not_ours)
    try:
        raw = npz[HEADER_KEY]
        header = json.loads(np.asarray(raw, dtype=np.uint8).tobytes().decode("utf-8"))
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: the rnnkit header cannot be read ({e}); the file is corrupted, "
                             "re-save or re-copy it") from e
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise ModelFileError(not_ours)
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: invalid format_version {version!r} in the header; the file is "
                             "corrupted, re-save or re-copy it")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written by a newer rnnkit (format {version}); this rnnkit "
                             f"({__version__}) reads up to format {FORMAT_VERSION}: upgrade rnnkit")
    for key, typ in (("kind", str), ("config", dict), ("meta", dict), ("arrays", dict)):
        if not isinstance(header.get(key), typ):
            raise ModelFileError(f"{path}: header field {key!r} is missing or not a {typ.__name__}; "
                                 "the file is corrupted, re-save or re-copy it")
    return header


def load_model_file(path, expected_kind: Optional[str] = None) -> ModelFile:
    """Read and verify a model file; every problem raises :class:`ModelFileError`.

    With ``expected_kind``, a file of another kind is refused with a message
    saying what it is. Every array is checked against the header's dtype, shape
    and SHA-256.
    """
    path = os.fspath(path)
    _sniff(path)
    corrupted = f"{path}: is truncated or corrupted ({{}}); re-save or re-copy it"
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ModelFileError(corrupted.format(e)) from e
    with npz:
        header = _read_header(npz, path)
        kind = header["kind"]
        if expected_kind is not None and kind != expected_kind:
            raise ModelFileError(f"{path}: this is a {kind} model file, not a {expected_kind} one; "
                                 f"pass a {expected_kind} file, or use the {kind} commands for this one")
        listed: Dict[str, Any] = header["arrays"]
        present = [n for n in npz.files if n != HEADER_KEY]
        missing = sorted(set(listed) - set(present))
        extra = sorted(set(present) - set(listed))
        if missing or extra:
            raise ModelFileError(f"{path}: arrays do not match the header (missing {missing}, not listed "
                                 f"{extra}); the file was modified after it was written, re-save it")
        arrays: Dict[str, np.ndarray] = {}
        for name in present:
            try:
                a = npz[name]
            except ValueError as e:
                if "pickle" in str(e).lower() or "object" in str(e).lower():
                    raise ModelFileError(
                        f"{path}: array {name!r} holds pickled Python objects; rnnkit refuses to load "
                        "it because unpickling can run code. Only use files from a source you trust, "
                        "written by rnnkit") from e
                raise ModelFileError(corrupted.format(f"array {name!r}: {e}")) from e
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:  # bad CRC, bad deflate data
                raise ModelFileError(corrupted.format(f"array {name!r}: {e}")) from e
            info = listed[name]
            if (not isinstance(info, dict) or info.get("dtype") != a.dtype.str
                    or info.get("shape") != list(a.shape) or info.get("sha256") != array_sha256(a)):
                raise ModelFileError(f"{path}: checksum mismatch for array {name!r}: the file was "
                                     "modified or corrupted after it was written; re-save or re-copy it")
            arrays[name] = a
    return ModelFile(kind=kind, config=header["config"], arrays=arrays, meta=header["meta"],
                     format_version=header["format_version"],
                     rnnkit_version=str(header.get("rnnkit_version", "")))
