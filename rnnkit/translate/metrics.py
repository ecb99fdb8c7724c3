"""Corpus BLEU and chrF through sacrebleu (an optional extra: ``pip install 'rnnkit[translate]'``).

Both compare detokenised hypotheses with one reference each. The references
are the targets after the model's own preprocessing (normal form, case,
punctuation split), so the scores measure translation, not casing. BLEU uses
sacrebleu's default 13a tokenisation; on already punctuation-split text it
only splits what is left.
"""

from __future__ import annotations

from typing import Dict, Sequence

from ..errors import RnnkitError

__all__ = ["require_sacrebleu", "corpus_bleu", "corpus_chrf", "scores"]


def require_sacrebleu():
    try:
        import sacrebleu
    except ImportError:  # pragma: no cover - depends on the environment
        raise RnnkitError("BLEU and chrF need sacrebleu: "
                          "pip install 'rnnkit[translate]' (or pip install sacrebleu)") from None
    return sacrebleu


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not references:
        raise ValueError("no sentences to score")


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) of the hypotheses against one reference each."""
    _check(hypotheses, references)
    # force: the text is punctuation-split on purpose; without it sacrebleu warns that it looks tokenised
    return float(require_sacrebleu().corpus_bleu(list(hypotheses), [list(references)], force=True).score)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (0-100), character n-gram F-score (Popovic 2015)."""
    _check(hypotheses, references)
    return float(require_sacrebleu().corpus_chrf(list(hypotheses), [list(references)]).score)


def scores(hypotheses: Sequence[str], references: Sequence[str]) -> Dict[str, float]:
    """BLEU, chrF and the exact-match rate (in %)."""
    exact = 100.0 * sum(h == r for h, r in zip(hypotheses, references)) / max(len(references), 1)
    return {"bleu": corpus_bleu(hypotheses, references), "chrf": corpus_chrf(hypotheses, references),
            "exact": exact}
