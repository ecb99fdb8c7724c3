"""Ctrl-C or SIGTERM during training: finish the current step, save a checkpoint, then stop.

:class:`DeferredSigint` replaces Python's SIGINT and SIGTERM handlers while the
loop runs. SIGTERM is what job schedulers (Slurm, Kubernetes, systemd, ``kill``)
send, so it is treated exactly like Ctrl-C. The first signal only sets
``requested``; the loop checks it between steps, tells the user, saves and
raises ``KeyboardInterrupt``. A second signal (of either kind) raises
``KeyboardInterrupt`` at once, wherever the program is.

A second signal that arrives within ``ECHO_SECONDS`` of the first is taken as
the same request delivered twice, not as a second Ctrl-C: a job scheduler that
stops a multi-process job signals every process of it (Slurm's ``scancel``,
``kill`` on a process group), and ``mpiexec`` forwards the signal it got to
every rank as well, so each rank gets the one request twice within
milliseconds. Counting the echo as "stop now" lost the step in flight and the
checkpoint with it.

The handler prints nothing: a signal handler runs between two bytecodes of
whatever the main thread was doing, and if that was a ``print`` or a tqdm
refresh on the same stream, printing again raises ``RuntimeError: reentrant
call``. So the loop prints the note, from ordinary code.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Dict, Optional

__all__ = ["DeferredSigint", "SIGNALS", "ECHO_SECONDS", "note_signal", "last_signal"]

# A repeat of the stop signal sooner than this after the first is the same request (see above); a person
# who reads "Ctrl-C again to stop now" and presses it takes longer.
ECHO_SECONDS = 1.0

# The signals that ask training to stop; SIGTERM does not exist on every platform.
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


_received: Dict[str, Optional[str]] = {"last": None}


def note_signal(signum: Optional[int]) -> None:
    """Record the signal that asked the program to stop (None: forget); the CLI's exit status says which."""
    _received["last"] = None if signum is None else signal.Signals(signum).name


def last_signal() -> Optional[str]:
    """"SIGINT" or "SIGTERM": the last stop signal a handler of rnnkit's received, or None."""
    return _received["last"]


def _raise_now(signum, frame):
    note_signal(signum)
    raise KeyboardInterrupt


class DeferredSigint:
    """Context manager: the first SIGINT/SIGTERM sets ``requested``, the second raises ``KeyboardInterrupt``.

    A repeat within ``echo_seconds`` of the first is ignored (see the module docstring).

    ``signal_name`` is the name of the first signal ("SIGINT" or "SIGTERM").
    ``enabled=False`` does not defer: SIGINT keeps its handler (Python's raises
    ``KeyboardInterrupt``) and a SIGTERM that would kill the process at once
    (``SIG_DFL``) raises ``KeyboardInterrupt`` instead, so it too unwinds the
    stack and lets the caller clean up and exit (130, or 143 for SIGTERM). Outside the main thread,
    where Python cannot set signal handlers, nothing is changed. A signal whose
    handler is ``SIG_IGN`` on entry (a background job's SIGINT) stays ignored.
    Both previous handlers are restored on exit.
    """

    def __init__(self, enabled: bool, echo_seconds: float = ECHO_SECONDS):
        self.enabled = enabled
        self.echo_seconds = echo_seconds
        self._first_at: Optional[float] = None
        self.active = threading.current_thread() is threading.main_thread()
        self.requested = False
        self.signal_name: Optional[str] = None
        self._old: Dict[int, object] = {}

    def _handler(self, signum, frame):
        # Written to be re-entered: the echo of a signal can run this handler again between any two
        # bytecodes of the first call, so the decision rests on _first_at alone, set before anything else.
        now = time.monotonic()
        if self._first_at is not None:
            if now - self._first_at < self.echo_seconds:
                return  # the first request again, forwarded by a launcher or sent to every process
            note_signal(signum)
            raise KeyboardInterrupt
        self._first_at = now
        note_signal(signum)
        self.signal_name = signal.Signals(signum).name
        self.requested = True  # nothing else here: see the module docstring

    def __enter__(self) -> "DeferredSigint":
        if not self.active:
            return self
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if self.enabled and current is not signal.SIG_IGN:
                self._old[signum] = signal.signal(signum, self._handler)
            elif not self.enabled and current is signal.SIG_DFL:
                self._old[signum] = signal.signal(signum, _raise_now)
        return self

    def __exit__(self, *exc) -> bool:
        for signum, old in self._old.items():
            if old is None:  # set from C, not Python: fall back to Python's own behaviour
                old = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, old)
        self._old = {}
        return False
