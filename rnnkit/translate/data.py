"""Sentence pairs: reading, normalising, tokenising, vocabularies, splits and length-bucketed batches.

The input is the Tatoeba/Anki format: one pair per line, columns separated by a
tab (source, target, optionally an attribution column). Which column is the
source and which the target is chosen by index (0-based), so one file serves
both directions.

Text goes through :func:`normalize_text` (Unicode normal form, typographic
apostrophes, case, punctuation split) and :func:`tokenize` (words or
characters). The options are a :class:`TextOptions` that is saved with the
model, so translation sees exactly the preprocessing the model was trained on.

Batches are time-major like the recurrent layers: ``src`` (S, N), ``tgt_in``
(T, N) = <sos> y_1 .. y_m, ``tgt_out`` (T, N) = y_1 .. y_m <eos>, padded with
<pad> (id 0) after each sequence's end.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..checks import check_count, check_probability
from ..errors import DataError, HyperparameterError
from ..estimator import flag_of
from ..io.inputs import read_text
from ..vocab import Vocab as _Vocab

__all__ = ["batches_per_epoch", "TextOptions", "normalize_text", "tokenize", "detokenize", "read_pairs", "filter_pairs",
           "ENGLISH_PREFIXES", "Vocab", "PAD", "SOS", "EOS", "UNK", "split_indices", "sentence_groups", "sentence_keys",
           "disjoint_from", "Batch", "make_batch",
           "bucket_batches"]

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<sos>", "<eos>", "<unk>"]

# The PyTorch seq2seq tutorial's filter, with and without apostrophes (its normaliser turns "i'm" into "i m").
ENGLISH_PREFIXES = ("i am ", "i m ", "he is", "he s ", "she is", "she s ", "you are", "you re ",
                    "we are", "we re ", "they are", "they re ")

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u200b": None, "\u00ad": None})
# Punctuation becomes its own token, except apostrophes and hyphens inside a word ("j'ai", "peut-être").
_PUNCT = re.compile(r"([^\w\s'\-]|(?<!\w)['\-]|['\-](?!\w))")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class TextOptions:
    """Preprocessing applied to both sides.

    normalize: "nfkc" (default: also turns the narrow no-break spaces that French
        typography puts before ! ? into plain spaces), "nfc", "ascii" (the PyTorch
        tutorial's accent stripping) or "none".
    lowercase: fold case.
    split_punctuation: make each punctuation mark a token of its own.
    tokens: "word" (split at white space) or "char" (every character, spaces included).
    """

    normalize: str = "nfkc"
    lowercase: bool = True
    split_punctuation: bool = True
    tokens: str = "word"

    def __post_init__(self):
        if self.normalize not in ("nfkc", "nfc", "ascii", "none"):
            raise ValueError(f"normalize: expected 'nfkc', 'nfc', 'ascii' or 'none', got {self.normalize!r}")
        if self.tokens not in ("word", "char"):
            raise ValueError(f"tokens: expected 'word' or 'char', got {self.tokens!r}")

    def to_dict(self) -> Dict:
        return asdict(self)


def normalize_text(text: str, opts: TextOptions = TextOptions()) -> str:
    """Apply the normal form, apostrophe folding, case folding and punctuation split; collapse spaces."""
    s = text.translate(_APOSTROPHES)
    if opts.normalize == "ascii":
        s = "".join(c for c in unicodedata.normalize("NFKD", s) if unicodedata.category(c) != "Mn")
    elif opts.normalize != "none":
        s = unicodedata.normalize(opts.normalize.upper(), s)
    if opts.lowercase:
        s = s.lower()
    if opts.split_punctuation:
        s = _PUNCT.sub(r" \1 ", s)
    return _SPACES.sub(" ", s).strip()


def tokenize(text: str, opts: TextOptions = TextOptions()) -> List[str]:
    s = normalize_text(text, opts)
    return list(s) if opts.tokens == "char" else s.split()


def detokenize(tokens: Sequence[str], opts: TextOptions = TextOptions()) -> str:
    return "".join(tokens) if opts.tokens == "char" else " ".join(tokens)


def read_pairs(path: str, *, src_col: int = 0, tgt_col: int = 1, encoding: str = "utf-8",
               what: str = "PAIRS") -> List[Tuple[str, str]]:
    """(source, target) strings from a tab-separated file; every malformed line is reported by number,
    blank lines are skipped.

    The file is read through :func:`rnnkit.io.inputs.read_text` (a regular file
    within the input size limit: FIFOs and devices are refused); ``what`` names
    the argument in messages.
    """
    if src_col == tgt_col:
        raise DataError(f"src_col and tgt_col (--src-col, --tgt-col) are both {src_col}; choose two different "
                        "columns")
    if min(src_col, tgt_col) < 0:
        raise DataError(f"column indices (--src-col, --tgt-col) start at 0, got {src_col} and {tgt_col}")
    text = read_text(path, what, encoding=encoding, encoding_flag=None)   # the CLI has no --encoding
    need = max(src_col, tgt_col) + 1
    pairs = []
    for n, line in enumerate(io.StringIO(text, newline=""), 1):      # \n, \r\n and \r end a line
        line = line.rstrip("\r\n")
        if not line.strip():             # a blank line (one at the end is common) holds no pair
            continue
        cols = line.split("\t")
        if len(cols) == 1:
            raise DataError(f"{path}, line {n}: no tab character; expected tab-separated columns "
                            f"(source and target), got {_clip(line)!r}")
        if len(cols) < need:
            raise DataError(f"{path}, line {n}: {len(cols)} columns, but column {need - 1} is needed "
                            f"(--src-col {src_col}, --tgt-col {tgt_col}; columns count from 0)")
        src, tgt = cols[src_col].strip(), cols[tgt_col].strip()
        for side, value, col in (("source", src, src_col), ("target", tgt, tgt_col)):
            if not value:
                raise DataError(f"{path}, line {n}: the {side} column ({col}) is empty")
        pairs.append((src, tgt))
    if not pairs:
        raise DataError(f"{path}: the file holds no sentence pairs")
    return pairs


def _clip(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[:n] + "..."


def filter_pairs(pairs: Sequence[Tuple[List[str], List[str]]], *, max_words: Optional[int] = None,
                 prefix_filter: Optional[str] = None, opts: TextOptions = TextOptions()) -> List[int]:
    """Indices of the tokenised pairs that pass the filters.

    max_words: keep pairs whose sides have fewer than ``max_words`` words, a
        word being a run of letters or digits ("i'm" is two, "." none), which is
        how the PyTorch tutorial counts (its ``len < MAX_LENGTH``), for word and
        character tokens alike.
    prefix_filter: "source" or "target": keep pairs whose side (the English one)
        starts with one of :data:`ENGLISH_PREFIXES`.
    """
    if prefix_filter not in (None, "source", "target"):
        raise ValueError(f"prefix_filter: expected 'source' or 'target', got {prefix_filter!r}")
    keep = []
    for i, (s, t) in enumerate(pairs):
        s, t = detokenize(s, opts), detokenize(t, opts)
        if max_words is not None and (len(_WORD.findall(s)) >= max_words or len(_WORD.findall(t)) >= max_words):
            continue
        if prefix_filter is not None:
            side = s if prefix_filter == "source" else t
            if not (side.lower().replace("'", " ") + " ").startswith(ENGLISH_PREFIXES):
                continue
        keep.append(i)
    return keep


class Vocab(_Vocab):
    """The shared :class:`rnnkit.vocab.Vocab` with the specials <pad>=0, <sos>=1, <eos>=2, <unk>=3 first;
    unknown tokens read as <unk>."""

    unk_id = UNK

    def __init__(self, itos: Sequence[str]):
        if list(itos[:4]) != SPECIALS:
            raise DataError(f"vocabulary must start with {SPECIALS}, got {list(itos[:4])}")
        super().__init__(itos)

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], *, min_freq: int = 1, max_size: Optional[int] = None) -> "Vocab":
        """Tokens seen at least ``min_freq`` times, most frequent first (ties alphabetical), at most ``max_size`` in all."""
        return cls.from_sequences(sentences, min_freq=min_freq, max_size=max_size, reserved=SPECIALS)

    def encode(self, tokens: Sequence[str]) -> Tuple[List[int], List[str]]:
        """Ids (unknown tokens -> <unk>) and the list of tokens that were unknown."""
        ids = super().encode(tokens)
        return ids, [t for t, i in zip(tokens, ids) if i == UNK]

    def decode(self, ids: Iterable[int]) -> List[str]:
        """Tokens up to (not including) the first <eos>; <pad> and <sos> are dropped."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, SOS):
                out.append(self.itos[i])
        return out


def split_indices(n: int, *, valid: float = 0.1, test: float = 0.1, seed: int = 0, groups=None):
    """A seeded partition of range(n) into (train, valid, test) index arrays.

    Without ``groups`` the pairs are shuffled one by one. With ``groups`` (a group
    id per pair, from :func:`sentence_groups`) whole groups are shuffled and
    dealt to the test side until it holds ``test * n`` pairs, then to the
    validation side, the rest to training: no group is split, so a held-out
    sentence never occurs on the training side.
    """
    check_probability(flag_of("validation_fraction"), valid)
    check_probability(flag_of("test_fraction"), test)
    if valid + test >= 1.0:
        raise HyperparameterError(f"{flag_of('validation_fraction')} + {flag_of('test_fraction')} must be < 1, "
                                  f"got {valid} + {test}: nothing would be left to train on")
    rng = np.random.default_rng(seed)
    n_test, n_valid = int(round(test * n)), int(round(valid * n))
    if groups is None:
        perm = rng.permutation(n)
        return perm[n_test + n_valid:], perm[n_test:n_test + n_valid], perm[:n_test]
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups: expected one group id per pair ({n}), got shape {groups.shape}")
    ids, members = np.unique(groups, return_inverse=True)
    order = rng.permutation(len(ids))                              # groups in a random order
    sizes = np.bincount(members, minlength=len(ids))[order]        # pairs per group, in that order
    ends = np.cumsum(sizes)
    test_groups = order[:int(np.searchsorted(ends, n_test, side="left")) + 1] if n_test else order[:0]
    rest = order[len(test_groups):]
    ends = np.cumsum(np.bincount(members, minlength=len(ids))[rest])
    valid_groups = rest[:int(np.searchsorted(ends, n_valid, side="left")) + 1] if n_valid else rest[:0]
    side = np.zeros(len(ids), np.int8)                             # 0 train, 1 valid, 2 test
    side[valid_groups], side[test_groups] = 1, 2
    rank = np.empty(len(ids), np.int64)
    rank[order] = np.arange(len(ids))
    dealt = np.argsort(rank[members], kind="stable")               # pairs in the groups' random order
    where = side[members][dealt]
    # with one pair per group this is exactly the pair-by-pair split above, for the same seed
    return dealt[where == 0], dealt[where == 1], dealt[where == 2]


def sentence_groups(pairs: Sequence[Tuple[str, str]], opts: TextOptions = TextOptions()) -> np.ndarray:
    """A group id per pair: pairs that share a normalised source or target sentence, directly or through a
    chain of pairs (several French phrasings of one English sentence), get the same id.

    The connected components of the graph whose nodes are sentences and whose edges are pairs (union-find).
    """
    parent: Dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]                          # path halving
            x = parent[x]
        return x

    keys = []
    for src, tgt in pairs:
        a = "S\t" + " ".join(tokenize(src, opts))
        b = "T\t" + " ".join(tokenize(tgt, opts))
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
        keys.append(a)
    roots = {}
    return np.array([roots.setdefault(find(k), len(roots)) for k in keys], dtype=np.int64)


def sentence_keys(pairs: Sequence[Tuple[str, str]], opts: TextOptions = TextOptions()) -> set:
    """The normalised source and target sentences of ``pairs``, as the keys :func:`sentence_groups` joins on."""
    keys = set()
    for src, tgt in pairs:
        keys.add("S\t" + " ".join(tokenize(src, opts)))
        keys.add("T\t" + " ".join(tokenize(tgt, opts)))
    return keys


def disjoint_from(pairs: Sequence[Tuple[str, str]], held: Sequence[Tuple[str, str]],
                  opts: TextOptions = TextOptions()) -> List[Tuple[str, str]]:
    """The pairs of ``pairs`` whose normalised source and target sentences both occur nowhere in ``held``.

    For adding training data to a split made by :func:`sentence_groups`: extra pairs that share a
    sentence with the validation or test side (another phrasing of a test reference) are dropped, so
    the held-out sides stay unseen.
    """
    keys = sentence_keys(held, opts)
    return [(s, t) for s, t in pairs
            if "S\t" + " ".join(tokenize(s, opts)) not in keys and "T\t" + " ".join(tokenize(t, opts)) not in keys]


class Batch(NamedTuple):
    src: np.ndarray        # (S, N) source ids, PAD after each length
    src_len: np.ndarray    # (N,) source lengths (>= 1)
    tgt_in: np.ndarray     # (T, N) <sos> y_1 .. y_m, PAD after
    tgt_out: np.ndarray    # (T, N) y_1 .. y_m <eos>, PAD after
    index: np.ndarray      # (N,) positions of these pairs in the list they came from


def _pad(seqs: Sequence[Sequence[int]], length: int) -> np.ndarray:
    out = np.full((length, len(seqs)), PAD, dtype=np.int64)            # (T, N)
    for n, s in enumerate(seqs):
        out[:len(s), n] = s
    return out


def make_batch(src_ids: Sequence[Sequence[int]], tgt_ids: Optional[Sequence[Sequence[int]]],
               index: Sequence[int]) -> Batch:
    """A padded batch of the pairs at ``index`` (targets may be None for translation)."""
    index = np.asarray(index, dtype=np.int64)
    srcs = [src_ids[i] for i in index]
    src_len = np.array([len(s) for s in srcs], dtype=np.int64)
    if src_len.min() < 1:
        raise DataError("empty source sentence: nothing to translate")
    src = _pad(srcs, int(src_len.max()))
    if tgt_ids is None:
        return Batch(src, src_len, None, None, index)
    tin = [[SOS] + list(tgt_ids[i]) for i in index]
    tout = [list(tgt_ids[i]) + [EOS] for i in index]
    T = max(len(t) for t in tin)
    return Batch(src, src_len, _pad(tin, T), _pad(tout, T), index)


def batches_per_epoch(n_pairs: int, batch_size: int, pool: int = 50) -> int:
    """How many batches :func:`bucket_batches` makes of ``n_pairs`` pairs (the same every epoch)."""
    size = pool * batch_size
    full, rest = divmod(n_pairs, size)
    return full * pool + -(-rest // batch_size)


def bucket_batches(src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], batch_size: int,
                   rng: np.random.Generator, pool: int = 50, shard=None) -> List[Optional[Batch]]:
    """Batches of similar lengths, in random order.

    The pairs are shuffled, cut into pools of ``pool * batch_size`` pairs, each
    pool sorted by (source, target) length and cut into batches; the batches are
    shuffled. Similar lengths waste little work on padding, while the pools keep
    the batches' contents different from epoch to epoch.

    ``shard`` (a data-parallel run: ``rnnkit.distributed.world().shard``) keeps this
    rank's share of each batch's pairs, None where it is empty; the batches and their
    order are the same on every rank, since they come from the same ``rng``.
    """
    check_count(flag_of("batch_size"), batch_size, 1)
    perm = rng.permutation(len(src_ids))
    chunks = []
    size = pool * batch_size
    for start in range(0, len(perm), size):
        part = perm[start:start + size]
        order = sorted(part, key=lambda i: (len(src_ids[i]), len(tgt_ids[i])))
        chunks.extend(order[j:j + batch_size] for j in range(0, len(order), batch_size))
    if shard is not None:
        parts = [shard(chunks[k]) for k in rng.permutation(len(chunks))]
        return [None if idx is None else make_batch(src_ids, tgt_ids, idx) for idx in parts]
    return [make_batch(src_ids, tgt_ids, chunks[k]) for k in rng.permutation(len(chunks))]
