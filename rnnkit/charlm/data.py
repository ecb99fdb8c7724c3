"""Text in, integer ids out: reading, the character vocabulary, splits and stream batching.

Batching is char-rnn's: the id sequence ``c_0 .. c_M`` is cut into N equal,
contiguous *streams* (one per batch column), and each training batch is the
next ``seq_len`` characters of every stream,

    x[t, n] = c[n*L + s + t],   y[t, n] = c[n*L + s + t + 1],   t < seq_len,

for the chunk starting at offset ``s`` (L = stream length). Because chunk k+1
of column n continues exactly where chunk k stopped, the model's final state
after chunk k is the right initial state for chunk k+1 (stateful truncated
BPTT): the state is carried forward, the gradient stops at the boundary.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, List, NamedTuple, Sequence, Tuple

import numpy as np

from ..checks import check_count, check_real
from ..errors import DataError, HyperparameterError
from ..estimator import flag_of
from ..io.inputs import check_input, read_text as _read_checked, wide_encoding
from ..vocab import Vocab as _Vocab

__all__ = ["Vocab", "read_text", "split_text", "stream_matrix", "Chunk", "Chunks", "describe_chars"]


def describe_chars(chars: Iterable[str], limit: int = 8) -> str:
    """``'é' (U+00E9), '\\t' (U+0009)``: readable even for control characters."""
    chars = list(chars)
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


class Vocab(_Vocab):
    """The characters a model knows, in sorted order; id ``i`` is ``chars[i]`` (``itos``).

    Built from the whole training file (so the validation split never meets an
    unknown character) and saved with the model. The shared :class:`rnnkit.vocab.Vocab`
    with single characters as tokens: encoding takes a string and returns an
    int32 array, decoding returns a string.
    """

    what = "characters"

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        if not chars:
            raise DataError("vocabulary is empty: the text has no characters")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise DataError("vocabulary: expected single characters")
        super().__init__(chars)
        # ids for ASCII/BMP text: a code-point lookup table turns encoding into one fancy index
        top = max(ord(c) for c in chars)
        self._table = np.full(top + 1, -1, dtype=np.int32)
        self._table[[ord(c) for c in chars]] = np.arange(len(chars), dtype=np.int32)

    @property
    def chars(self) -> List[str]:
        return self.itos

    @property
    def index(self):
        return self.stoi

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls(sorted(set(text)))

    def encode(self, text: str, what: str = "text") -> np.ndarray:
        """Ids (int32) of ``text``; a character outside the vocabulary is a :class:`DataError`."""
        if not text:
            return np.zeros(0, dtype=np.int32)
        try:
            raw = text.encode("utf-32-le")
        except UnicodeEncodeError as e:       # a lone surrogate (text decoded with errors="surrogateescape")
            raise DataError(f"{what}: character {e.start:,} is a lone surrogate (U+{ord(text[e.start]):04X}), not a "
                            "Unicode character; decode the text with errors='replace', or fix its encoding") from None
        codes = np.frombuffer(raw, dtype=np.uint32)                          # code points, no Python loop
        inside = codes < len(self._table)
        ids = np.full(codes.shape, -1, dtype=np.int32)
        ids[inside] = self._table[codes[inside]]
        if (ids < 0).any():
            bad = self.unknown(text)
            crlf = "\r" in bad and "\n" in self.chars and "\r\n" in text
            fix = ("it has Windows line endings (\\r\\n) and the model was trained on \\n alone: convert them to \\n "
                   "(dos2unix for a file) or train on text with the same line endings" if crlf else
                   "remove or replace them")
            fix += "; remove or replace the others" if crlf and len(bad) > 1 else ""
            raise DataError(
                f"{what} has {len(bad)} character(s) that are not in the model's vocabulary: "
                f"{describe_chars(bad)}; the model knows {len(self)} characters "
                f"({''.join(self.chars[:60])!r}{'...' if len(self) > 60 else ''}); {fix}")
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        chars = self.chars
        return "".join(chars[i] for i in ids)


def read_text(path, encoding: str = "utf-8", what: str = "TEXTFILE") -> str:
    """The contents of a text file, read with the input limits of :mod:`rnnkit.io.inputs`.

    Refused before reading: a directory, a missing file, a FIFO or device
    (``/dev/zero``), a file over the input limit. Refused after: an empty file,
    a binary file (NUL bytes), and bytes that do not decode in ``encoding``
    (the message names the line and column and suggests ``--encoding``).
    A leading byte-order mark is dropped.
    """
    path = os.fspath(path)
    size = check_input(path, what)
    if size == 0:
        raise DataError(f"{what} {path}: is empty; give a file with text in it")
    # UTF-16/32 text has NULs too, but then its BOM says so and the decoder handles it
    wide = encoding.lower().replace("-", "").replace("_", "") in ("utf16", "utf32", "utf16le", "utf16be",
                                                                   "utf32le", "utf32be")
    if not wide:
        with open(path, "rb") as f:
            head = f.read(65536)
        if b"\x00" in head:
            wide = wide_encoding(head)
            if wide:
                raise DataError(f"{what} {path}: looks like {wide.upper()} text (NUL bytes between its characters); "
                                f"pass --encoding {wide}")
            raise DataError(f"{what} {path}: looks like a binary file (it contains NUL bytes), not text; "
                            "pass a plain-text file")
    text = _read_checked(path, what, encoding)
    if text.startswith("\ufeff"):
        text = text[1:]            # a BOM is file metadata, not a character of the text
    if not text:
        raise DataError(f"{what} {path}: has no characters after decoding; pass a text file")
    return text


def split_text(text: str, validation_fraction: float = 0.1, test_fraction: float = 0.0) -> Tuple[str, str, str]:
    """Contiguous ``(train, validation, test)``: train first, then validation, then test at the very end.

    With the defaults validation is the last 10% and there is no test split.
    """
    check_real(flag_of("validation_fraction"), validation_fraction, 0.0, 1.0, high_open=True)
    check_real(flag_of("test_fraction"), test_fraction, 0.0, 1.0, high_open=True)
    if validation_fraction + test_fraction >= 1.0:
        raise HyperparameterError(f"{flag_of('validation_fraction')} + {flag_of('test_fraction')} must be below 1 "
                                  f"so something is left to train on, got {validation_fraction} + {test_fraction}")
    n = len(text)
    n_test = int(round(n * test_fraction))
    n_valid = int(round(n * validation_fraction))
    a, b = n - n_valid - n_test, n - n_test
    return text[:a], text[a:b], text[b:]


def stream_matrix(ids: np.ndarray, streams: int, what: str = "text") -> Tuple[np.ndarray, np.ndarray]:
    """Inputs and targets laid out as ``streams`` contiguous columns: two (L, N) arrays.

    Column n holds ``ids[n*L : (n+1)*L]`` and its targets the same shifted by
    one; the last ``len(ids) - 1 - N*L`` characters (fewer than N) are dropped.
    """
    streams = check_count(flag_of("batch_size"), streams, 1)
    L = (len(ids) - 1) // streams
    if L < 1:
        smaller = f", a smaller --batch-size (at most {len(ids) - 1})" if len(ids) >= 2 else ""
        raise DataError(f"the {what} has {len(ids)} characters, too few for {streams} parallel "
                        f"stream{'s' if streams != 1 else ''} (each needs at least 2); use a longer text{smaller}, "
                        "or other split fractions")
    x = ids[: streams * L].reshape(streams, L).T                   # (L, N)
    y = ids[1: streams * L + 1].reshape(streams, L).T              # (L, N)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


class Chunk(NamedTuple):
    """One TBPTT chunk: input ids (T, N) and target ids (T, N)."""

    x: np.ndarray
    y: np.ndarray


class Chunks:
    """The consecutive ``seq_len``-row chunks of stream matrices (the last may be shorter).

    A sized, re-iterable sequence of views (no copies), so a training loop can
    count an epoch's batches and skip the ones a checkpoint already covers.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, seq_len: int):
        self.x, self.y, self.seq_len = x, y, check_count(flag_of("seq_len"), seq_len, 1)

    def __len__(self) -> int:
        return -(-self.x.shape[0] // self.seq_len)

    def __iter__(self) -> Iterator[Chunk]:
        T = self.seq_len
        for s in range(0, self.x.shape[0], T):
            yield Chunk(self.x[s: s + T], self.y[s: s + T])
