"""Self-contained, safe model files: arrays plus a JSON header in one ``.npz``.

A model file is a zip archive in NumPy's ``.npz`` layout. Every entry is a
``.npy`` array; one reserved entry, ``__rnnkit_header__``, is a uint8 array
holding UTF-8 JSON::

    {"magic": "rnnkit-model", "format_version": 1, "kind": "charlm",
     "rnnkit_version": "0.1.0", "config": {...}, "meta": {...},
     "arrays": {"name": {"dtype": "<f4", "shape": [3, 4], "sha256": "..."}},
     "header_sha256": "..."}

``config`` is what an application needs to rebuild its model, ``meta`` anything
else JSON-able (vocabulary, training history). Loading never unpickles, so it
never runs code from the file. Each array's SHA-256 covers its dtype, shape and
bytes, and ``header_sha256`` covers the rest of the header (its canonical JSON:
sorted keys, no spaces), so an edited array, config or vocabulary is reported
instead of loading silently. The checksums detect corruption and careless
edits, not a forger: anyone can recompute them.

Loading treats the file as untrusted. Before an array is allocated, its ``.npy``
header (dtype, shape) must agree with the JSON header and its size with the
zip entry's uncompressed size, and that size must be one the stored bytes can
really inflate to; object dtypes are refused. So a crafted file cannot make
rnnkit allocate more memory than its data can fill, and every problem,
including a bad CRC or a deeply nested header, is a :class:`ModelFileError`
naming the file.

Writes are atomic: the archive goes to a temporary file in the target's
directory, is flushed and fsync'ed, then renamed over the target with
``os.replace``. A crash or error mid-write leaves any previous file intact.
"""

from __future__ import annotations

import hashlib
import math
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from .. import __version__
from ..errors import ModelFileError
from ..nn.xp import to_host
from .atomic import atomic_write, check_writable
from .jsonable import to_json

__all__ = ["ModelFile", "save_model_file", "load_model_file", "array_sha256", "header_sha256",
           "check_writable", "FORMAT_VERSION", "MAGIC", "HEADER_KEY", "HEADER_SHA_KEY"]

MAGIC = "rnnkit-model"
FORMAT_VERSION = 1  # the newest format this rnnkit writes and reads
HEADER_KEY = "__rnnkit_header__"
HEADER_SHA_KEY = "header_sha256"  # the header field holding the checksum of the rest of the header
# Deflate cannot expand data by more than about 1032:1, so a zip entry claiming a larger
# uncompressed size than this times its stored size is lying (a crafted file).
_MAX_DEFLATE_RATIO = 1100
_READ_CHUNK = 1 << 20  # bytes read from a zip entry at a time


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


def header_sha256(header: Mapping[str, Any]) -> str:
    """SHA-256 of the header's canonical JSON (sorted keys, no spaces), without its own checksum field."""
    rest = {k: v for k, v in header.items() if k != HEADER_SHA_KEY}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


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
        a = np.asarray(to_host(a))     # always host arrays: a model on a GPU is saved from copies on the host
        if a.dtype.hasobject:
            raise ModelFileError(f"array {name!r} holds Python objects (dtype {a.dtype}); model files "
                                 "store numeric and string arrays only, so convert it first")
        clean[name] = a
    header = {
        "magic": MAGIC,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "rnnkit_version": __version__,
        "config": to_json(dict(config), "config"),
        "meta": to_json(dict(meta or {}), "meta"),
        "arrays": {n: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": array_sha256(a)}
                   for n, a in clean.items()},
    }
    header[HEADER_SHA_KEY] = header_sha256(header)
    header_bytes = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: _write_npz(f, {HEADER_KEY: header_bytes, **clean}, compress))


def _write_npz(f, arrays: Mapping[str, np.ndarray], compress: bool) -> None:
    """The .npz layout of ``np.savez``, written entry by entry (any array name works)."""
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(f, mode="w", compression=mode, allowZip64=True) as zf:
        for name, a in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, a, allow_pickle=False)


def _sniff(path: str) -> None:
    """Raise a ModelFileError for anything that is not a readable, complete zip archive."""
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file; check the path (model files are written by "
                             "`fit`/`save` and usually end in .npz)")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, not a model file; pass the .npz file inside it")
    if not os.path.isfile(path):   # opening a FIFO would block forever, a device may never end
        raise ModelFileError(f"{path}: is not a regular file (a FIFO, device or socket); pass a model file")
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


def _corrupted(path: str, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: is truncated or corrupted ({what}); re-save or re-copy it")


def _not_ours(path: str) -> ModelFileError:
    return ModelFileError(f"{path}: is a zip/.npz archive but not an rnnkit model file (no rnnkit header); "
                          "pass a file written by rnnkit.io.save_model_file (PyTorch .pt files are zips too: "
                          "convert them with rnnkit.io.load_torch_state_dict)")


def _zip_entries(zf: zipfile.ZipFile, path: str) -> Dict[str, zipfile.ZipInfo]:
    """Array name -> zip entry, after checking each entry is one the writer could have made."""
    entries: Dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        fn = info.filename
        if info.is_dir() or not fn.endswith(".npy"):
            raise ModelFileError(f"{path}: entry {fn!r} is not a .npy array, so the file was not written "
                                 "by rnnkit (or was modified); re-save it with rnnkit.io.save_model_file")
        name = fn[:-len(".npy")]
        if name in entries:
            raise ModelFileError(f"{path}: the archive holds {fn!r} twice; the file was modified after it "
                                 "was written, re-save it")
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{path}: entry {fn!r} is encrypted; rnnkit writes no encrypted files, "
                                 "pass a file written by rnnkit")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(f"{path}: entry {fn!r} uses zip compression method {info.compress_type}; "
                                 "rnnkit writes stored or deflated entries only, re-save the file with rnnkit")
        # The uncompressed size is what gets allocated: it must be one the stored bytes can produce.
        limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED \
            else _MAX_DEFLATE_RATIO * info.compress_size + 1024
        if info.file_size > limit:
            raise ModelFileError(f"{path}: entry {fn!r} claims {info.file_size} bytes but stores only "
                                 f"{info.compress_size}, more than any real data can expand to; the file "
                                 "is corrupted or crafted, do not use it")
        entries[name] = info
    return entries


@dataclass(frozen=True)
class _Layout:
    """Where and how one .npy entry's data lies, from its .npy header."""

    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: Tuple[int, ...]
    fortran_order: bool
    offset: int  # bytes of .npy preamble before the data


def _npy_layout(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, path: str) -> _Layout:
    """Read only the .npy header of an entry and check its size against the zip entry."""
    what = "the rnnkit header" if name == HEADER_KEY else f"array {name!r}"
    with zf.open(info) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]} is not one rnnkit writes")
        except ValueError as e:
            raise ModelFileError(f"{path}: {what} is not a readable .npy array ({e}); the file is corrupted "
                                 "or was not written by rnnkit, re-save or re-copy it") from e
        offset = fh.tell()
    if dtype.hasobject:
        raise ModelFileError(
            f"{path}: {what} holds pickled Python objects; rnnkit refuses to load it because unpickling "
            "can run code. Only use files from a source you trust, written by rnnkit")
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes != info.file_size:
        raise _corrupted(path, f"{what}: its .npy header declares {dtype.str} {list(shape)} ({nbytes} bytes) "
                               f"but the entry holds {max(info.file_size - offset, 0)} bytes of data")
    return _Layout(info, dtype, tuple(shape), bool(fortran_order), offset)


def _read_npy(zf: zipfile.ZipFile, lay: _Layout, what: str, path: str) -> np.ndarray:
    """The entry's array, read straight into one buffer of the size checked by :func:`_npy_layout`."""
    count = math.prod(lay.shape)
    flat = np.empty(count, dtype=lay.dtype)
    with zf.open(lay.info) as fh:
        fh.read(lay.offset)
        if flat.nbytes:
            buf = memoryview(flat.view(np.uint8))
            got = 0
            while got < len(buf):
                n = fh.readinto(buf[got:got + _READ_CHUNK])
                if not n:
                    raise _corrupted(path, f"{what} ends after {got} of {len(buf)} bytes")
                got += n
        fh.read(1)  # reach the end of the entry, where zipfile checks the CRC
    if lay.fortran_order:
        return flat.reshape(lay.shape[::-1]).transpose()
    return flat.reshape(lay.shape)


def _read_header(zf: zipfile.ZipFile, entries: Mapping[str, zipfile.ZipInfo], path: str) -> Dict[str, Any]:
    if HEADER_KEY not in entries:
        raise _not_ours(path)
    lay = _npy_layout(zf, entries[HEADER_KEY], HEADER_KEY, path)
    if lay.dtype != np.uint8 or len(lay.shape) != 1:
        raise ModelFileError(f"{path}: the rnnkit header is not a byte array (dtype {lay.dtype.str}, shape "
                             f"{list(lay.shape)}); the file is corrupted, re-save or re-copy it")
    raw = _read_npy(zf, lay, "the rnnkit header", path)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise ModelFileError(f"{path}: the rnnkit header cannot be read ({reason}); the file is corrupted, "
                             "re-save or re-copy it") from e
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise _not_ours(path)
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: invalid format_version {version!r} in the header; the file is "
                             "corrupted, re-save or re-copy it")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written by a newer rnnkit (format {version}); this rnnkit "
                             f"({__version__}) reads up to format {FORMAT_VERSION}: upgrade rnnkit")
    saved_sha = header.get(HEADER_SHA_KEY)
    if not isinstance(saved_sha, str):
        raise ModelFileError(f"{path}: the header has no checksum ({HEADER_SHA_KEY}); the file was edited "
                             "or written by a development build of rnnkit, re-save it")
    if saved_sha != header_sha256(header):
        raise ModelFileError(f"{path}: header checksum mismatch: the config, meta (e.g. the vocabulary) or "
                             "array list was modified or corrupted after the file was written; re-save or "
                             "re-copy it")
    for key, typ in (("kind", str), ("config", dict), ("meta", dict), ("arrays", dict)):
        if not isinstance(header.get(key), typ):
            raise ModelFileError(f"{path}: header field {key!r} is missing or not a {typ.__name__}; "
                                 "the file is corrupted, re-save or re-copy it")
    for name, info in header["arrays"].items():
        shape = info.get("shape") if isinstance(info, dict) else None
        if (not isinstance(info, dict) or not isinstance(info.get("dtype"), str)
                or not isinstance(info.get("sha256"), str) or not isinstance(shape, list)
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
            raise ModelFileError(f"{path}: the header's entry for array {name!r} is malformed ({info!r}); "
                                 "the file is corrupted, re-save or re-copy it")
    return header


def file_header(path) -> Optional[Dict[str, Any]]:
    """The verified header of the rnnkit file at ``path`` (its kind, config, meta and array list), or None for
    anything else (no file, another format, a damaged file). Reads no array: cheap for a large file."""
    path = os.fspath(path)
    try:
        if not os.path.isfile(path) or not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as zf:
            return _read_header(zf, _zip_entries(zf, path), path)
    except (ModelFileError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError,
            MemoryError, RecursionError):
        return None


def file_kind(path) -> Optional[str]:
    """The kind of the rnnkit file at ``path`` ("checkpoint", "charlm", ...), or None (see :func:`file_header`)."""
    header = file_header(path)
    return None if header is None else header["kind"]


def load_model_file(path, expected_kind: Optional[str] = None) -> ModelFile:
    """Read and verify a model file; every problem raises :class:`ModelFileError`.

    With ``expected_kind``, a file of another kind is refused with a message
    saying what it is. The header must match its checksum, and every array its
    header entry (dtype, shape, SHA-256); sizes are checked before anything is
    allocated (see the module docstring).
    """
    path = os.fspath(path)
    _sniff(path)
    try:
        with zipfile.ZipFile(path) as zf:
            return _load(zf, path, expected_kind)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError) as e:
        raise _corrupted(path, str(e) or type(e).__name__) from e  # bad CRC, bad deflate data, ...
    except MemoryError as e:
        raise ModelFileError(f"{path}: not enough memory to load it; free memory or load it on a bigger "
                             "machine") from e
    except RecursionError as e:
        raise ModelFileError(f"{path}: the file's structure is nested too deeply; the file is corrupted "
                             "or crafted, do not use it") from e


def _load(zf: zipfile.ZipFile, path: str, expected_kind: Optional[str]) -> ModelFile:
    entries = _zip_entries(zf, path)
    header = _read_header(zf, entries, path)
    kind = header["kind"]
    if expected_kind is not None and kind != expected_kind:
        raise ModelFileError(f"{path}: this is a {kind} model file, not a {expected_kind} one; "
                             f"pass a {expected_kind} file, or use the {kind} commands for this one")
    listed: Dict[str, Any] = header["arrays"]
    present = [n for n in entries if n != HEADER_KEY]
    missing = sorted(set(listed) - set(present))
    extra = sorted(set(present) - set(listed))
    if missing or extra:
        raise ModelFileError(f"{path}: arrays do not match the header (missing {missing}, not listed "
                             f"{extra}); the file was modified after it was written, re-save it")
    # Check every entry's declared layout first, so a bad last entry allocates nothing.
    layouts: Dict[str, _Layout] = {}
    for name in present:
        lay = _npy_layout(zf, entries[name], name, path)
        info = listed[name]
        if lay.dtype.str != info["dtype"] or list(lay.shape) != info["shape"]:
            raise ModelFileError(f"{path}: array {name!r} is {lay.dtype.str} {list(lay.shape)} but the header "
                                 f"says {info['dtype']} {info['shape']}: the file was modified or corrupted "
                                 "after it was written; re-save or re-copy it")
        layouts[name] = lay
    arrays: Dict[str, np.ndarray] = {}
    for name, lay in layouts.items():
        a = _read_npy(zf, lay, f"array {name!r}", path)
        if array_sha256(a) != listed[name]["sha256"]:
            raise ModelFileError(f"{path}: checksum mismatch for array {name!r}: the file was "
                                 "modified or corrupted after it was written; re-save or re-copy it")
        arrays[name] = a
    return ModelFile(kind=kind, config=header["config"], arrays=arrays, meta=header["meta"],
                     format_version=header["format_version"],
                     rnnkit_version=str(header.get("rnnkit_version", "")))
