"""A small tmpfs for full-disk tests: ``small_tmpfs(parent)`` mounts one, ``fill(directory)`` fills it.

Mounting needs root (or CAP_SYS_ADMIN) on Linux. Where it is not allowed the
test is skipped with the reason; CI allows exactly these skips (their names
start with ``test_full_disk_``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

__all__ = ["small_tmpfs", "fill"]


@contextlib.contextmanager
def small_tmpfs(parent, size: str = "256k"):
    """Mount a ``size`` tmpfs at ``parent``/tmpfs for the block; skip the test where mounting is refused."""
    if not sys.platform.startswith("linux"):
        pytest.skip("full-disk test: needs Linux to mount a small tmpfs")
    mnt = os.path.join(os.fspath(parent), "tmpfs")
    os.mkdir(mnt)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"full-disk test: cannot run mount ({e})")
    if r.returncode != 0:
        pytest.skip(f"full-disk test: mounting a tmpfs is not permitted here ({r.stderr.strip() or r.returncode})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=30)


def fill(directory) -> str:
    """Fill the file system of ``directory`` with one file until it is full; returns that file's path."""
    path = os.path.join(os.fspath(directory), "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    block = b"\0" * 4096
    try:
        while True:
            os.write(fd, block)
    except OSError as e:
        assert e.errno == 28, e              # ENOSPC, nothing else
    finally:
        os.close(fd)
    return path
