"""Training progress on the terminal: a tqdm bar when tqdm is installed, else a line every few seconds.

tqdm is an optional extra (``pip install 'rnnkit[progress]'``). Both displays
show the step, a smoothed training loss, units per second (tokens, samples ...)
and, when the number of steps is known, the time left.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from ..distributed import world

__all__ = ["Progress", "format_duration", "say"]


def say(message: str) -> None:
    """A note on stderr that does not break a running tqdm bar (applications' progress lines use this)."""
    if not world().is_root:       # a data-parallel run prints from rank 0 only
        return
    try:
        from tqdm import tqdm
        tqdm.write(message, file=sys.stderr)
    except ImportError:
        print(message, file=sys.stderr, flush=True)


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1m15s"``, ``3725`` -> ``"1h02m"``."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _tqdm_class():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Progress display for :func:`rnnkit.train.fit`.

    Parameters
    ----------
    total : number of steps the run will reach, if known (for the ETA).
    initial : steps already done (a resumed run).
    unit : what ``units`` counts ("tok", "seq", ...).
    enabled : False shows nothing but the notes given with ``always=True``.
    use_tqdm : None uses tqdm when it is installed; False forces the plain lines.
    interval : seconds between plain lines.
    stream : where to write (stderr by default).
    """

    def __init__(self, total: Optional[int] = None, *, initial: int = 0, unit: str = "tok", enabled: bool = True,
                 use_tqdm: Optional[bool] = None, interval: float = 5.0, stream: Optional[TextIO] = None):
        self.total, self.step, self.unit, self.enabled = total, initial, unit, enabled
        self.interval = interval
        self.stream = stream
        self._start_step, self._t0 = initial, time.monotonic()
        self._last, self._units = self._t0, 0
        self._loss: Optional[float] = None
        self._rate: Optional[float] = None
        self._bar = None
        tqdm = _tqdm_class() if enabled and use_tqdm is not False else None
        if tqdm is not None:
            self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                             file=stream if stream is not None else sys.stderr)

    def set_total(self, total: Optional[int]) -> None:
        self.total = total
        if self._bar is not None and total is not None and total != self._bar.total:
            self._bar.total = total
            self._bar.refresh()

    def update(self, step: int, loss: float, units: int) -> None:
        """Record a finished step (``step`` = steps done, ``units`` in this step)."""
        if not self.enabled:
            return
        self.step = step
        # smoothed for display only; the History keeps the exact values
        self._loss = loss if self._loss is None else 0.95 * self._loss + 0.05 * loss
        self._units += units
        now = time.monotonic()
        wait = 0.5 if self._bar is not None else self.interval
        if now - self._last < wait:
            if self._bar is not None:
                self._bar.update(step - self._bar.n)
            return
        self._rate = self._units / max(now - self._last, 1e-9)
        self._last, self._units = now, 0
        if self._bar is not None:
            self._bar.set_postfix_str(f"loss {self._loss:.4f}, {self._rate:,.0f} {self.unit}/s", refresh=False)
            self._bar.update(step - self._bar.n)
        else:
            self._print(self._line())

    def _line(self) -> str:
        parts = [f"step {self.step}" + (f"/{self.total}" if self.total else "")]
        if self._loss is not None:
            parts.append(f"loss {self._loss:.4f}")
        if self._rate is not None:
            parts.append(f"{self._rate:,.0f} {self.unit}/s")
        done = self.step - self._start_step
        if self.total and done > 0:
            left = (time.monotonic() - self._t0) / done * max(self.total - self.step, 0)
            parts.append(f"ETA {format_duration(left)}")
        return "  ".join(parts)

    def note(self, message: str, always: bool = False) -> None:
        """Print a line (validation results, checkpoints) without breaking the bar.

        ``always=True`` prints it even when the display is off: what the user must
        know after an interrupt (where the checkpoint is, how to resume).
        """
        if not (self.enabled or always):
            return
        if self._bar is not None:
            self._bar.write(message, file=self.stream if self.stream is not None else sys.stderr)
        else:
            self._print(message)

    def _print(self, message: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        print(message, file=stream, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.step > self._start_step:
            self._print(self._line())
