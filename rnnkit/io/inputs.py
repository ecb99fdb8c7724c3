"""Reading user files with limits: nothing endless or enormous is read whole before a check.

``/dev/zero``, a FIFO or a multi-gigabyte file given by mistake would otherwise
be read into memory without bound. :func:`check_input` refuses anything that is
not a regular file and anything larger than the limit before a byte is read;
:func:`read_bytes` then reads at most ``max_bytes + 1`` bytes, so a file that
grows while it is read is caught too. The limit defaults to
``DEFAULT_MAX_INPUT_BYTES`` (1 GiB) and can be raised with the environment
variable ``RNNKIT_MAX_INPUT_BYTES`` or the ``max_bytes`` argument.
"""

from __future__ import annotations

import codecs
import os
import stat
from typing import Optional

from ..errors import PathError

__all__ = ["DEFAULT_MAX_INPUT_BYTES", "max_input_bytes", "check_input", "refuse_special", "read_bytes", "read_text"]

DEFAULT_MAX_INPUT_BYTES = 1 << 30


def max_input_bytes(max_bytes: Optional[int] = None) -> int:
    """The limit in force: ``max_bytes``, else ``RNNKIT_MAX_INPUT_BYTES``, else 1 GiB."""
    if max_bytes is not None:
        return int(max_bytes)
    env = os.environ.get("RNNKIT_MAX_INPUT_BYTES", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise PathError(f"RNNKIT_MAX_INPUT_BYTES must be a whole number of bytes, got {env!r}") from None
        if value < 1:
            raise PathError(f"RNNKIT_MAX_INPUT_BYTES must be >= 1, got {env!r}")
        return value
    return DEFAULT_MAX_INPUT_BYTES


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def check_input(path, what: str, max_bytes: Optional[int] = None) -> int:
    """The size of ``path`` after checking it is an existing regular file within the limit.

    ``what`` names the argument or flag (``"TEXTFILE"``, ``"--data"``).
    """
    path = os.fspath(path)
    if not path:
        raise PathError(f"{what}: the path is empty; give a file")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PathError(f"{what} {path}: no such file; check the path") from None
    except OSError as e:
        raise PathError(f"{what} {path}: cannot read it ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise PathError(f"{what} {path}: is a directory; give a file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if (
            stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) else "not a regular file"
        raise PathError(f"{what} {path}: is {kind}, which may never end; give a regular file "
                        "(save the stream to a file first)")
    limit = max_input_bytes(max_bytes)
    if st.st_size > limit:
        raise PathError(f"{what} {path}: is {_mib(st.st_size)}, more than the input limit of {_mib(limit)}; "
                        "pass a smaller file or raise the limit with RNNKIT_MAX_INPUT_BYTES")
    return st.st_size


def refuse_special(path, what: str) -> None:
    """Refuse a FIFO, device or socket without opening it (opening a FIFO blocks until a writer comes).

    Regular files, directories and missing paths pass: the caller reports those
    in its own terms. For readers with their own size checks (model files),
    which must not get the input limit of :func:`check_input`.
    """
    try:
        st = os.stat(os.fspath(path))
    except (OSError, ValueError):
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        check_input(path, what)          # raises the one message for streams and devices


def read_bytes(path, what: str, max_bytes: Optional[int] = None) -> bytes:
    """The bytes of a checked input file, never more than the limit."""
    check_input(path, what, max_bytes)
    limit = max_input_bytes(max_bytes)
    # O_NONBLOCK: a FIFO swapped in after the check must not block the open; fstat re-checks what was opened
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PathError(f"{what} {path}: is not a regular file (it changed while being opened); give a file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise PathError(f"{what} {path}: grew past the input limit of {_mib(limit)} while being read; "
                        "pass a smaller file or raise the limit with RNNKIT_MAX_INPUT_BYTES")
    return data


def wide_encoding(head: bytes) -> Optional[str]:
    """``"utf-16"``/``"utf-32"`` (or their ``-le``/``-be`` forms without a byte-order mark) when ``head``, the
    start of a file, looks like text in those encodings: a byte-order mark, or ASCII text whose every second
    (fourth) byte is NUL and whose other bytes are nearly all printable; else None. Such files have NUL bytes
    and would read as binary; 16-bit audio or an int32 array has the NULs but not the printable bytes."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    n = len(head) // 4 * 4
    if n < 8:
        return None
    text = [b for b in head[:n] if b]                                    # the bytes that carry the characters
    printable = sum(1 for b in text if 0x20 <= b < 0x7F or 0x09 <= b <= 0x0D or b >= 0x80)
    if not text or printable < 0.95 * len(text):
        return None
    zeros = [head[i:n:4].count(0) / (n // 4) for i in range(4)]          # the share of NULs at each offset mod 4
    mostly, rarely = (lambda z: z >= 0.9), (lambda z: z <= 0.1)
    if rarely(zeros[0]) and all(mostly(z) for z in zeros[1:]):
        return "utf-32-le"
    if all(mostly(z) for z in zeros[:3]) and rarely(zeros[3]):
        return "utf-32-be"
    if rarely(zeros[0]) and rarely(zeros[2]) and mostly(zeros[1]) and mostly(zeros[3]):
        return "utf-16-le"
    if mostly(zeros[0]) and mostly(zeros[2]) and rarely(zeros[1]) and rarely(zeros[3]):
        return "utf-16-be"
    return None


def read_text(path, what: str, encoding: str = "utf-8", max_bytes: Optional[int] = None,
              encoding_flag: Optional[str] = "--encoding") -> str:
    """The text of a checked input file; an undecodable byte is named with its line and column.

    ``encoding_flag`` is the command's flag for the encoding; None where there is
    none, and then the message says how to convert the file instead.
    """
    data = read_bytes(path, what, max_bytes)
    try:
        if data.startswith(codecs.BOM_UTF8) and codecs.lookup(encoding).name == "utf-8":
            data = data[len(codecs.BOM_UTF8):]        # a byte-order mark (Windows editors) is not text
        return data.decode(encoding)
    except LookupError:
        raise PathError(f"{what}: unknown text encoding {encoding!r} ({encoding_flag or 'encoding'}); try utf-8 "
                        "or latin-1") from None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        name = os.path.basename(os.fspath(path))
        wide = wide_encoding(data[:65536])
        if wide and codecs.lookup(wide).name != codecs.lookup(encoding).name:       # not the one that failed
            fix = (f"the file looks like {wide.upper()} text: pass {encoding_flag} {wide}" if encoding_flag else
                   f"the file looks like {wide.upper()} text: convert it to UTF-8 first (iconv -f {wide} -t utf-8 "
                   f"{name})")
        else:
            fix = (f"pass the right {encoding_flag} (e.g. latin-1) or fix the file" if encoding_flag else
                   f"convert it to UTF-8 first (e.g. iconv -f latin1 -t utf-8 {name})")
        raise PathError(f"{what} {path}: line {line}, column {col}: byte {data[e.start:e.start + 1]!r} is not "
                        f"valid {encoding}; {fix}") from None
