"""The built-in task: numbers written in English words, translated into French words.

Generated with num2words (an optional extra: ``pip install 'rnnkit[translate]'``), so the
ground truth is exact and no download is needed: 345 -> ("three hundred and
forty-five", "trois cent quarante-cinq"). The word order is nearly monotone,
which makes the learned attention a visible diagonal, and French brings real
reordering in small places ("quatre-vingt-dix-sept" for "ninety-seven",
"vingt et un" for "twenty-one").
"""

from __future__ import annotations

from typing import List, Tuple

from ..errors import DataError, RnnkitError

__all__ = ["number_pairs", "DEFAULT_RANGE"]

DEFAULT_RANGE = (0, 999)
MAX_NUMBERS = 100_000          # pairs the built-in task writes at most (num2words: seconds, tens of MB)


def _num2words():
    try:
        from num2words import num2words
    except ImportError:  # pragma: no cover - depends on the environment
        raise RnnkitError("the built-in task (train without a PAIRS file) needs num2words: "
                          "pip install 'rnnkit[translate]' (or pip install num2words); "
                          "or pass a tab-separated PAIRS file") from None
    return num2words


def check_range(low: int, high: int) -> Tuple[int, int]:
    """``(low, high)`` if the built-in task can write [low, high] (a DataError naming ``--numbers`` if not)."""
    if not 0 <= low <= high:
        raise DataError(f"numbers: expected a range LOW-HIGH with 0 <= LOW <= HIGH, got {low}-{high}")
    if high - low + 1 > MAX_NUMBERS:
        raise DataError(f"numbers: the range {low}-{high} holds {high - low + 1:,} numbers and the built-in task "
                        f"takes at most {MAX_NUMBERS:,} (such as 0-{MAX_NUMBERS - 1}); for more, train on a PAIRS "
                        "file")
    return low, high


def number_pairs(low: int = DEFAULT_RANGE[0], high: int = DEFAULT_RANGE[1], *, src_lang: str = "en",
                 tgt_lang: str = "fr") -> List[Tuple[str, str]]:
    """(source words, target words) for every integer in [low, high]."""
    check_range(low, high)
    to_words = _num2words()
    try:
        return [(to_words(n, lang=src_lang), to_words(n, lang=tgt_lang)) for n in range(low, high + 1)]
    except NotImplementedError as exc:
        raise RnnkitError(f"num2words cannot write numbers in {exc}") from None
