"""``rnnkit`` entry point: one sub-command per application, each registered by its own module.

Every application module that offers commands defines ``register(subparsers)``,
adding its sub-command with ``set_defaults(func=...)``; ``func(args) -> int``
calls the library with keyword arguments named like the flags.

User mistakes (:class:`rnnkit.errors.RnnkitError`, bad values) and system
errors (a missing file, no permission, a full disk: any ``OSError``) print one
clear line and exit with status 2; an interrupted run exits 130 (Ctrl-C) or 143 (SIGTERM). Anything else
is a bug and keeps its traceback. With the environment variable
``RNNKIT_DEBUG=1`` the errors keep their traceback too (for developers).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import time
import warnings
from typing import List, Optional

from .. import __version__
from . import mpi
from ..errors import RnnkitError
from ..train.interrupt import last_signal, note_signal
from .builder import RnnkitParser

__all__ = ["main", "build_parser", "main_entry"]

# Modules that contribute sub-commands, in the order `rnnkit --help` lists them.
COMMAND_MODULES = [
    "rnnkit.cli.info",
    "rnnkit.charlm.cli",
    "rnnkit.forecast.cli",
    "rnnkit.translate.cli",
    "rnnkit.bench.cli",
    "rnnkit.cli.export",
    "rnnkit.compare.cli",
    "rnnkit.music.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = RnnkitParser(
        prog="rnnkit",
        description="Recurrent neural networks on NumPy: character language models, forecasting, translation, "
                    "polyphonic music, a comparison of LSTM, GRU and tanh RNN, ONNX export and benchmarks.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _fd_usable(fd: int, mode: str) -> bool:
    """Whether descriptor ``fd`` is open for reading ("r") or writing ("w")."""
    try:
        import fcntl
    except ImportError:                  # Windows: no way to ask; trust Python's own streams
        return True
    try:
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:                      # closed
        return False
    return access == os.O_RDWR or access == (os.O_RDONLY if mode == "r" else os.O_WRONLY)


def _plug_closed_streams() -> None:
    """Give a standard stream that was closed at start (`rnnkit ... >&-`) /dev/null instead.

    Writing to it would otherwise fail with a traceback. The descriptor may even
    have been reused by whatever launched us (pyenv's shim leaves its script open
    as descriptor 2), so the check is on the descriptor's access mode.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        usable = _fd_usable(fd, mode)
        if getattr(sys, name) is not None and usable:
            continue
        if usable:   # the stream was set to None by a host program: leave its descriptor alone
            setattr(sys, name, open(os.devnull, mode, errors="replace"))
            continue
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        setattr(sys, name, open(fd, mode, closefd=False, errors="replace"))


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line, written at once, by rank 0 only in an MPI job (every rank warns alike)."""
    from ..distributed import launched_rank, world
    w = world()
    if (w.rank if w.size > 1 else launched_rank()) != 0:
        return
    try:
        stream = file or sys.stderr
        stream.write(f"rnnkit: warning: {message}\n")
        stream.flush()
    except (OSError, ValueError):   # a closed stream: the warning has nowhere to go
        pass


_STARTED = [0.0]          # when main() began: a checkpoint older than that is not this run's


def _raise_interrupt(signum, frame):
    note_signal(signum)
    raise KeyboardInterrupt


def _interrupted(exc: Optional[BaseException] = None, args=None) -> int:
    """The exit status of a stopped command: 128 + the signal, as shells report it (SIGTERM 143, Ctrl-C 130).

    A train command stopped after its last step, before its model file was written, says how to write it.
    """
    code = 143 if last_signal() == "SIGTERM" else 130
    text = "terminated" if code == 143 else "interrupted"
    if args is not None and hasattr(args, "resume") and hasattr(args, "max_steps"):
        from ..runs import unwritten_model_hint
        hint = unwritten_model_hint(getattr(args, "out", None), since=_STARTED[0])
        text += f"; {hint}" if hint else ""
    prefix = ""
    if exc is not None:
        mpi.agree(exc, text)
        prefix = mpi.report_prefix(exc, code)
    if prefix is not None:          # None: another rank of a data-parallel run says it
        _say(f"rnnkit: {prefix}{text}")
    if exc is not None:
        code = mpi.reported(exc, code)
    return code


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    SIGTERM (what job schedulers send) stops a command like Ctrl-C: training saves a
    checkpoint first (rnnkit.train.interrupt defers both signals there), anything else
    exits 143 without a traceback. The previous handler is restored on return.
    """
    old = None
    note_signal(None)
    _STARTED[0] = time.time()
    if threading.current_thread() is threading.main_thread():
        try:
            old = signal.signal(signal.SIGTERM, _raise_interrupt)
        except (ValueError, OSError):   # no signals here (an embedded interpreter): keep the default
            old = None
    shown = warnings.showwarning
    warnings.showwarning = _one_line_warning       # a warning is a line for the user, not a source listing
    try:
        return _main(argv)
    finally:
        warnings.showwarning = shown
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def _main(argv: Optional[List[str]] = None) -> int:
    _plug_closed_streams()
    try:
        parser = build_parser()        # imports the applications: Ctrl-C can land here too
        with mpi.parsing():            # under an MPI launcher: one rank says it
            args, extra = parser.parse_known_args(argv)
            if extra:                  # the command's own parser names it and suggests the right flag
                getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:          # argparse has printed its usage message already
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return _interrupted()
    try:
        if hasattr(args, "distributed"):   # train commands: join the MPI job (or refuse a bare launch)
            w = mpi.setup(args.distributed)
            if w.size > 1 and str(getattr(args, "threads", "")).strip().lower() == "auto":
                args.threads = mpi.threads_per_process(w)
        if getattr(args, "threads", None) is not None:
            from ..threads import set_threads
            set_threads(args.threads)
        return int(args.func(args) or 0)
    except BrokenPipeError:            # `rnnkit ... | head`: the reader left; stop quietly like other tools
        try:
            sys.stdout = open(os.devnull, "w")   # nothing more to flush into the closed pipe at exit
        except OSError:
            pass
        return 141
    except (RnnkitError, ValueError, OSError) as exc:
        if os.environ.get("RNNKIT_DEBUG", "") not in ("", "0"):  # developers: keep the traceback
            raise
        if isinstance(exc, OSError):  # a missing file, no permission, a full disk (ENOSPC) ...
            text = str(exc.strerror or exc)
            where = f": {exc.filename}" if exc.filename and str(exc.filename) not in text else ""
            message = f"{exc.strerror or exc}{where}"
        else:
            message = str(exc)
        return _failed(exc, message)
    except MemoryError as exc:
        if os.environ.get("RNNKIT_DEBUG", "") not in ("", "0"):
            raise
        return _failed(exc, f"out of memory; choose smaller sizes ({', '.join(_size_flags(args))})")
    except KeyboardInterrupt as exc:
        return _interrupted(exc, args)


# flags whose values set how much memory a command needs, in the order they are suggested
SIZE_FLAGS = ("--hidden-size", "--num-layers", "--batch-size", "--seq-len", "--beam", "--test-size", "--params",
              "--length", "--bleu-sentences")


def _size_flags(args) -> List[str]:
    """The size flags the command being run has (all of SIZE_FLAGS if its parser is unknown)."""
    parser = getattr(args, "_parser", None)
    if parser is None:
        return list(SIZE_FLAGS)
    have = {f for a in parser._actions for f in a.option_strings}
    return [f for f in SIZE_FLAGS if f in have]


def _failed(exc: BaseException, message: str) -> int:
    """Report a failed command in one line (once per data-parallel job, see :mod:`rnnkit.cli.mpi`); status 2."""
    mpi.agree(exc, message)
    prefix = mpi.report_prefix(exc, 2)
    if prefix is not None:          # None: another rank of a data-parallel run reports it
        _say(f"rnnkit: error: {prefix}{message}")
    return mpi.reported(exc, 2)


def _say(line: str) -> None:
    """``line`` on stderr in one write: the ranks of an MPI job share the terminal, and print's separate
    write of the newline let another rank's line land in the middle."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def main_entry() -> None:
    """Console-script entry point (in an MPI job, see :func:`rnnkit.cli.mpi.exit_process`)."""
    mpi.exit_process(main())


if __name__ == "__main__":
    main_entry()
