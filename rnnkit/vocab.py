"""The one vocabulary of the toolkit: tokens <-> integer ids.

``Vocab(itos)`` maps id ``i`` to ``itos[i]`` and back (``stoi``). The
applications specialise it thinly: :class:`rnnkit.charlm.data.Vocab` holds
single characters (every one known, encoding is a table lookup) and
:class:`rnnkit.translate.data.Vocab` holds word or character tokens after the
specials <pad>, <sos>, <eos>, <unk> (unknown tokens read as <unk>). Model files
store a vocabulary as its ``itos`` list of strings.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, List, Mapping, Optional, Sequence

from .errors import DataError

__all__ = ["Vocab", "ranked_tokens"]


def ranked_tokens(counts: Mapping[str, int], *, min_freq: int = 1, max_size: Optional[int] = None,
                  exclude: Sequence[str] = ()) -> List[str]:
    """Tokens counted at least ``min_freq`` times, most frequent first (ties alphabetical), at most ``max_size``."""
    skip = set(exclude)
    tokens = sorted((t for t, c in counts.items() if c >= min_freq and t not in skip), key=lambda t: (-counts[t], t))
    return tokens if max_size is None else tokens[:max(0, max_size)]


class Vocab:
    """Token <-> id maps: ``itos[i]`` is token ``i``, ``stoi[token]`` its id.

    ``unk_id``: the id unknown tokens read as (None: an unknown token is a :class:`DataError`).
    """

    unk_id: Optional[int] = None
    what = "tokens"          # what the entries are, in messages

    def __init__(self, itos: Sequence[str]):
        itos = list(itos)
        if not itos:
            raise DataError(f"vocabulary is empty: no {self.what}")
        if any(not isinstance(t, str) for t in itos):
            raise DataError(f"vocabulary: expected strings ({self.what})")
        if len(set(itos)) != len(itos):
            raise DataError(f"vocabulary: {self.what} must be distinct")
        self.itos: List[str] = itos
        self.stoi = {t: i for i, t in enumerate(itos)}

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], *, min_freq: int = 1, max_size: Optional[int] = None,
                    reserved: Sequence[str] = ()) -> "Vocab":
        """``reserved`` first, then the counted tokens by :func:`ranked_tokens` (``max_size`` counts all)."""
        room = None if max_size is None else max_size - len(reserved)
        return cls(list(reserved) + ranked_tokens(counts, min_freq=min_freq, max_size=room, exclude=reserved))

    @classmethod
    def from_sequences(cls, sequences: Iterable[Sequence[str]], **kwargs) -> "Vocab":
        return cls.from_counts(Counter(t for s in sequences for t in s), **kwargs)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token) -> bool:
        return token in self.stoi

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self.itos == other.itos

    __hash__ = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} {self.what})"

    def unknown(self, tokens: Iterable[str]) -> List[str]:
        """The distinct tokens outside the vocabulary, sorted."""
        return sorted(set(tokens) - self.stoi.keys())

    def encode(self, tokens: Sequence[str]) -> List[int]:
        """The ids of ``tokens`` (unknown ones: ``unk_id``, or a :class:`DataError` naming them)."""
        if self.unk_id is None:
            bad = self.unknown(tokens)
            if bad:
                raise DataError(f"{len(bad)} {self.what} not in the vocabulary: {bad[:8]}")
            return [self.stoi[t] for t in tokens]
        unk = self.unk_id
        return [self.stoi.get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> List[str]:
        itos = self.itos
        return [itos[int(i)] for i in ids]
