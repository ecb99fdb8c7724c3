"""Attention heatmap: which source tokens each output token looked at (matplotlib, optional)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..io.atomic import save_figure
from ..plotting import require_pyplot

__all__ = ["save_attention_plot"]


def save_attention_plot(path: str, source_tokens: Sequence[str], output_tokens: Sequence[str],
                        weights: np.ndarray, title: str = "") -> str:
    """Write a PNG heatmap of ``weights`` (output steps, source tokens); rows beyond the tokens are <eos>."""
    plt = require_pyplot()
    weights = np.asarray(weights, dtype=float)
    rows = list(output_tokens) + ["<eos>"] * (weights.shape[0] - len(output_tokens))
    fig_w = 2.5 + 0.5 * max(len(source_tokens), 6)
    fig_h = 1.5 + 0.4 * max(len(rows), 4)
    fig, ax = plt.subplots(figsize=(min(fig_w, 20), min(fig_h, 20)))
    im = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source_tokens)))
    ax.set_xticklabels(source_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    try:
        fig.tight_layout()
        return save_figure(fig, path, what="--attention-plot")     # atomic: a crash leaves no half PNG
    finally:
        plt.close(fig)
