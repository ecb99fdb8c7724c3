"""Small plotting helpers shared by the applications (matplotlib is an optional extra).

Figures are written to PNG files with the non-interactive Agg backend, so they
work on machines without a display, and always through
:func:`rnnkit.io.atomic.save_figure`: a crash or a full disk while saving
leaves the previous file whole.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

from .errors import RnnkitError
from .io.atomic import save_figure

__all__ = ["require_pyplot", "save_png", "save_loss_curve", "printable"]


def printable(text: str) -> str:
    """``text`` with what matplotlib cannot draw replaced: a file name that is not UTF-8 reaches Python as
    lone surrogates, and matplotlib refused it after a whole training run."""
    return str(text).encode("utf-8", "replace").decode("utf-8")


def require_pyplot():
    """matplotlib.pyplot on the Agg backend, or a clear error saying how to install it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RnnkitError("plots need matplotlib: pip install 'rnnkit[plot]' (or pip install matplotlib)") from exc
    return plt


def save_png(fig, path, what: Optional[str] = None) -> str:
    """Write ``fig`` atomically to exactly ``path``, close it, return the path.

    The format follows the extension (.png, .svg, .pdf, .jpg); a path without a
    known one gets PNG under exactly that name (matplotlib alone would add ".png").
    ``what`` names the flag in error messages (``"--plot"``).
    """
    plt = require_pyplot()
    path = os.fspath(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.tight_layout()
        save_figure(fig, path, what=what, dpi=110)
    finally:
        plt.close(fig)
    return path


def save_loss_curve(path: str, train: Sequence[Tuple[int, float]], valid: Sequence[Tuple[int, float]] = (),
                    ylabel: str = "loss", title: str = "", what: Optional[str] = None) -> str:
    """Plot training (and validation) loss against the step and write a PNG; returns the path."""
    plt = require_pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        s, v = zip(*train)
        ax.plot(s, v, label="train", lw=1)
    if valid:
        s, v = zip(*valid)
        ax.plot(s, v, "o-", label="validation", lw=1.5, ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(printable(title))
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, path, what=what)
