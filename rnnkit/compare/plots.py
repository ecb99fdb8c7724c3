"""The two figures of ``rnnkit compare``: learning curves, and gradient reach with gate saturation.

Both are drawn from the report dict :func:`rnnkit.compare.compare` returns and
written through :func:`rnnkit.plotting.save_png` (atomic).
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..plotting import require_pyplot, save_png

__all__ = ["plot_curves", "plot_gradients"]

_FLOOR = 1e-30                  # a norm that underflowed to 0 is drawn here on the log scale
_COLOURS = {"lstm": "tab:blue", "gru": "tab:green", "rnn": "tab:red"}


def plot_curves(path, report: Dict[str, Any]) -> str:
    """Validation loss against steps (left) and training seconds (right): one line per run, baseline dashed."""
    plt = require_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3), sharey=True)
    for cell, r in report["cells"].items():
        colour = _COLOURS.get(cell)
        for i, run in enumerate(r["runs"]):
            c = np.array(run["curve"])                                       # (points, 3): step, seconds, loss
            label = f"{cell} ({r['summary']['parameters']:,} p.)" if i == 0 else None
            axes[0].plot(c[:, 0], c[:, 2], color=colour, lw=1, alpha=0.8, label=label)
            axes[1].plot(c[:, 1], c[:, 2], color=colour, lw=1, alpha=0.8)
    for ax, xlabel in zip(axes, ("training step", "training seconds")):
        ax.axhline(report["baseline"], color="grey", ls="--", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"validation {report['metric']}")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{report['task']} T={report['seq_len']}: {report['seeds']} seed(s) per cell; dashed: baseline",
                 fontsize=10)
    return save_png(fig, path, what="--plot")


def plot_gradients(path, report: Dict[str, Any]) -> str:
    """||dL_T/dh_t|| against t (log scale), at initialisation (dashed) and trained (solid); gate saturation."""
    plt = require_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    for cell, r in report["cells"].items():
        d = r["runs"][0].get("diagnostics")
        if not d:
            continue
        colour = _COLOURS.get(cell)
        t = np.arange(len(d["grad_norm_init"]))
        axes[0].semilogy(t, np.maximum(d["grad_norm_init"], _FLOOR), color=colour, ls="--", lw=1,
                         label=f"{cell} at init")
        axes[0].semilogy(t, np.maximum(d["grad_norm_trained"], _FLOOR), color=colour, lw=1.5,
                         label=f"{cell} trained")
        if "saturation_trained" in d:
            s = d["saturation_trained"]
            axes[1].plot(t, np.add(s["high"], s["low"]), color=colour, lw=1.5, label=f"{cell} trained")
            s0 = d["saturation_init"]
            axes[1].plot(t, np.add(s0["high"], s0["low"]), color=colour, ls="--", lw=1, label=f"{cell} at init")
    axes[0].set_xlabel("time step t")
    axes[0].set_ylabel("mean ||dL_T / dh_t||")
    axes[0].set_title(f"how far back the last step's gradient reaches\n(0, underflowed, drawn at {_FLOOR:g})",
                      fontsize=9)
    axes[1].set_xlabel("time step t")
    axes[1].set_ylabel("share of sigmoid gates saturated")
    axes[1].set_title("gates > 0.95 or < 0.05 (the tanh RNN has none)", fontsize=9)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{report['task']} T={report['seq_len']}, seed 0", fontsize=10)
    return save_png(fig, path, what="--grad-plot")
