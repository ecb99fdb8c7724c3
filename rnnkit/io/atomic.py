"""Every output rnnkit writes goes through here: checked before the work, written atomically.

SQLite's rule for a database, applied to models, checkpoints, CSV, JSON and PNG:
the bytes go to a temporary file beside the target, are flushed and fsync'ed,
and only then renamed over the target (``os.replace``). A crash, a kill or a
full disk mid-write leaves the previous file whole, never a truncated one.

Before any work starts, :func:`check_outputs` checks every output path a
command will write (the directory exists and takes a new file, the name is
not empty, not too long and not a directory) and refuses an output that is
also one of the command's inputs (same resolved path or same inode), or two
outputs that are the same file. The errors are :class:`~rnnkit.errors.PathError`
naming the flag.

In a data-parallel run (:mod:`rnnkit.distributed`) only rank 0 writes: on the
other ranks :func:`atomic_write` checks the directory and returns without
writing, so K processes never race to rename over the same file.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import stat
import tempfile
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

from ..distributed import is_writer
from ..errors import PathError
from .jsonable import plain

__all__ = ["atomic_write", "write_text", "write_json", "save_figure", "check_writable", "check_outputs",
           "same_file"]


def _label(path: str, what: Optional[str]) -> str:
    return f"{what} {path}" if what else path


def atomic_write(path, write: Callable[[io.BufferedWriter], Any], *, what: Optional[str] = None) -> str:
    """Call ``write(f)`` on a binary temporary sibling of ``path``, fsync, then rename it over ``path``.

    Any failure (an exception in ``write``, ``ENOSPC``, an interrupt) removes the
    temporary file and leaves ``path`` as it was. An ``OSError`` is re-raised
    naming ``path`` (and ``what``, e.g. ``"--out"``), never the temporary file.
    Returns ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise PathError(f"{_label(path, what)}: directory {directory} does not exist; create it first")
    if not is_writer():           # another rank of a data-parallel run: rank 0 writes this file
        return path
    # the temporary name keeps at most 100 *bytes* of the target's name: a name within the file system's
    # limit (255 bytes) must not fail here because its temporary sibling is longer (é is 2 bytes)
    stem = os.fsdecode(os.fsencode(os.path.basename(path))[:100])
    # the writer's pid in the name lets a later write remove what a killed writer (kill -9) left behind
    tmp = os.path.join(directory, f".{stem}.{os.getpid()}-{secrets.token_hex(6)}.tmp")
    try:
        # os.open with 0o666 lets the umask decide the permissions, as for any new file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror} (writing {_label(path, what)})", path) from e
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:                      # no previous file: the umask's permissions stand
        mode = None
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)   # replacing a private (0600) file must not make it world-readable
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and not isinstance(e, PathError):
            # e.g. "No space left on device": say which file, not the temporary one
            raise OSError(e.errno, f"{e.strerror or e} (writing {_label(path, what)}; the previous file, "
                                   "if any, is unchanged)", path) from e
        raise
    _remove_stale(directory, stem)
    try:  # make the rename itself durable; not possible on every platform
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):     # another user's process, or no way to ask: assume it lives
        return True
    return True


def _remove_stale(directory: str, stem: str) -> None:
    """Delete temporary siblings of this target left by writers that no longer run (killed mid-write).

    A sibling whose writer is alive (another process writing the same file now) is left alone.
    """
    prefix = f".{stem}."
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        tag = name[len(prefix):-len(".tmp")]
        pid = tag.split("-", 1)[0]
        if "-" not in tag or not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def write_text(path, text: str, *, what: Optional[str] = None, encoding: str = "utf-8") -> str:
    """Write ``text`` atomically (newlines as given)."""
    data = text.encode(encoding)
    return atomic_write(path, lambda f: f.write(data), what=what)


def write_json(path, obj: Any, *, what: Optional[str] = None) -> str:
    """Write ``obj`` as indented JSON atomically (NumPy scalars become numbers)."""
    return write_text(path, json.dumps(plain(obj), indent=2) + "\n", what=what)


def save_figure(fig, path, *, what: Optional[str] = None, dpi: int = 110) -> str:
    """Save a matplotlib figure atomically; the format follows the extension (PNG without one)."""
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    fmt = ext if ext in ("png", "pdf", "svg", "jpg", "jpeg") else "png"
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi), what=what)


def check_writable(path, what: str = "path", example: str = "model.npz") -> str:
    """Fail now, not after minutes of training: ``path`` must be a file we can (re)write atomically.

    ``what`` names the argument or flag in the message (``"--out"``, ``"checkpoint_path"``).
    Refuses an empty path, a name longer than the file system allows, a missing
    directory, a directory, and a directory that does not take a new file (the
    atomic write puts a temporary file beside ``path``). Returns ``path``.
    """
    path = os.fspath(path)
    if not path or not path.strip():
        raise PathError(f"{what}: the path is empty; give a file name such as {example}")
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    try:
        limit = os.pathconf(directory if os.path.isdir(directory) else "/", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    # the temporary sibling ".<name>.<12 hex>.tmp" uses only a 100-byte cut of the name, so it always fits
    if len(os.fsencode(name)) > limit:
        raise PathError(f"{what} {path[:60]}...: the file name is {len(os.fsencode(name))} bytes long, more "
                        f"than this file system allows ({limit}); choose a shorter name")
    if not os.path.isdir(directory):
        raise PathError(f"{what} {path}: directory does not exist ({directory}); create it first")
    if os.path.isdir(path):
        raise PathError(f"{what} {path}: is a directory; pass a file path such as {os.path.join(path, example)}")
    if os.path.exists(path) and not os.path.isfile(path):
        raise PathError(f"{what} {path}: is not a regular file (a device, FIFO or socket); pass a file path "
                        f"such as {example}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".rnnkit-write-test.", dir=directory)
    except OSError as e:
        raise PathError(f"{what} {path}: cannot write in {directory} ({e.strerror or e}); "
                        "choose a writable directory") from e
    os.close(fd)
    os.unlink(probe)
    return path


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name one file: the same resolved path, or the same device and inode."""
    a, b = os.fspath(a), os.fspath(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_outputs(outputs: Mapping[str, Any], inputs: Optional[Mapping[str, Any]] = None,
                  examples: Optional[Mapping[str, str]] = None, *, models: Sequence[str] = (),
                  checkpoints: Sequence[str] = (), owns: Optional[Mapping[str, Sequence[bytes]]] = None) -> None:
    """Check every output path before any work (see the module docstring).

    ``outputs`` and ``inputs`` map a flag (``"--out"``, ``"TEXTFILE"``) to a path;
    None values are skipped. ``examples`` gives a sample file name per output
    flag for the messages. An existing rnnkit file is not written over by
    another kind of output: a training checkpoint only by the flags in
    ``checkpoints`` (the run's own, which :func:`rnnkit.runs.prepare_run`
    checks), a model file only by those in ``models`` and ``checkpoints``
    (an export, a CSV or a plot over a model is a slip of the hand). An existing file is replaced only by an
    output of its kind (``examples``' endings, or how the file begins), and for the flags in ``owns`` only when
    it begins as that flag's output does (a JSON report or a CSV table over the user's JSON or CSV data, whose
    names end alike, is refused too).
    """
    outs = {k: os.fspath(v) for k, v in outputs.items() if v is not None}
    ins = {k: os.fspath(v) for k, v in (inputs or {}).items() if v is not None}
    for flag, path in outs.items():
        for in_flag, in_path in ins.items():
            if same_file(path, in_path):
                raise PathError(f"{flag} {path} is also the input {in_flag}: writing it would destroy the input; "
                                "choose another output path")
    seen = {}
    for flag, path in outs.items():
        for other, other_path in seen.items():
            if same_file(path, other_path):
                raise PathError(f"{flag} and {other} are the same file ({path}); give each its own path")
        seen[flag] = path
        check_writable(path, flag, (examples or {}).get(flag, "out.npz"))
        if flag not in checkpoints:
            _check_not_an_rnnkit_file(flag, path, model_output=flag in models)
        if owns and flag in owns:
            _check_own_output(flag, path, tuple(owns[flag]), (examples or {}).get(flag, "out.json"))
        elif examples and flag in examples:
            _check_same_kind(flag, path, examples[flag])


# file name endings that hold the same kind of output: one may replace another
_KINDS = ({".png", ".svg", ".pdf", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp"}, {".mid", ".midi"})
# how each kind's files begin (what rnnkit's writers write; an image is what matplotlib writes)
_STARTS = {".npz": (b"PK\x03\x04", b"PK\x05\x06"), ".mid": (b"MThd",), ".onnx": (b"\x08",),
           ".json": (b"{", b"["), ".csv": (b"date,", b"method,"),
           ".png": (b"\x89PNG", b"%PDF", b"%!PS", b"<?xml", b"<svg", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*",
                    b"RIFF")}


def _check_same_kind(flag: str, path: str, example: str) -> None:
    """Refuse ``flag`` replacing an existing file that is not of the output's kind (``example``'s ending):
    `rnnkit export lm.npz text.txt` would turn a training text into an ONNX graph. The kind is told by the
    name's ending, or else by how the file begins, so an earlier output under any name (``--out mymodel``, a
    plot named ``curve``) is replaced, and a run is resumed, as before; a new file may have any name."""
    if not os.path.isfile(path):
        return
    want = os.path.splitext(example)[1].lower()
    have = os.path.splitext(path)[1].lower()
    same = next((kind for kind in _KINDS if want in kind), {want})
    if have in same:
        return
    starts = next((v for k, v in _STARTS.items() if k in same), ())
    head = _head(path)
    if head is None or (starts and head.lstrip().startswith(starts)):
        return                                   # (unreadable: the write itself will say what is wrong)
    kind = "an image" if ".png" in same else f"a {want}"
    raise PathError(f"{flag} {path} already exists and is not {kind} file (by its name and its contents): "
                    f"writing this output there would replace it; choose another {flag}, such as {example}, or "
                    "remove the file first")


def _check_own_output(flag: str, path: str, starts: Tuple[bytes, ...], example: str) -> None:
    """Refuse ``flag`` replacing an existing file that does not begin as its output does (``starts``)."""
    if not os.path.isfile(path):
        return
    head = _head(path)
    if head is None or head.startswith(starts):
        return                                   # (unreadable: the write itself will say what is wrong)
    raise PathError(f"{flag} {path} already exists and is not an earlier output of {flag} (it does not begin as "
                    f"one does): writing there would replace it; choose another {flag}, such as {example}, or remove "
                    "the file first")


def _head(path: str, size: int = 256) -> Optional[bytes]:
    """The first ``size`` bytes of the file at ``path``, or None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return None


def check_model_kind(flag: str, path, kind: Optional[str], doing: str) -> None:
    """Refuse writing over an rnnkit model file at ``path`` of another kind than ``kind`` (None: of any kind);
    ``doing`` says what would destroy it ("training a music model"). A checkpoint, or no model, passes."""
    from .modelfile import file_kind            # modelfile writes through this module
    was = file_kind(path)
    if was is not None and was != "checkpoint" and was != kind:
        raise PathError(f"{flag} {os.fspath(path)} is an rnnkit {was} model file; {doing} there would destroy it: "
                        f"choose another {flag}")


def _check_not_an_rnnkit_file(flag: str, path: str, model_output: bool) -> None:
    """Refuse ``flag`` writing over a training checkpoint, or over a model file unless it writes a model."""
    from .modelfile import file_kind            # modelfile writes through this module
    kind = file_kind(path)
    if kind is None or (kind != "checkpoint" and model_output):
        return
    written = "the model" if model_output else "this output"
    if kind == "checkpoint":
        resume = " (a run is continued with the --out it was started with and --resume)" if model_output else ""
        what = "a training checkpoint, not a model file" if model_output else "a training checkpoint"
        raise PathError(f"{flag} {path} is {what}; writing {written} there would destroy it: choose another "
                        f"{flag}{resume}")
    raise PathError(f"{flag} {path} is an rnnkit {kind} model file; writing {written} there would destroy it: "
                    f"choose another {flag}")

