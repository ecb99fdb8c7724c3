"""Ctrl-C during training: finish the current step, save a checkpoint, then stop.

:class:`DeferredSigint` replaces Python's SIGINT handler while the loop runs.
The first Ctrl-C only sets ``requested``; the loop checks it between steps,
tells the user, saves and raises ``KeyboardInterrupt``. A second Ctrl-C raises
``KeyboardInterrupt`` at once, wherever the program is.

The handler prints nothing: a signal handler runs between two bytecodes of
whatever the main thread was doing, and if that was a ``print`` or a tqdm
refresh on the same stream, printing again raises ``RuntimeError: reentrant
call``. So the loop prints the note, from ordinary code.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["DeferredSigint"]


class DeferredSigint:
    """Context manager: the first Ctrl-C sets ``requested``, the second raises ``KeyboardInterrupt``.

    ``enabled=False`` (or use outside the main thread, where Python cannot set
    signal handlers) leaves Ctrl-C alone: it raises ``KeyboardInterrupt`` as usual.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True  # nothing else here: see the module docstring

    def __enter__(self) -> "DeferredSigint":
        if self.enabled:
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> bool:
        if self.enabled:
            # None: the old handler was not set from Python; Python's own raises KeyboardInterrupt
            signal.signal(signal.SIGINT, self._old if self._old is not None else signal.default_int_handler)
        return False
