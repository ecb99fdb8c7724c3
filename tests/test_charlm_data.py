"""Character model data: reading text, the vocabulary, splits and stream batching."""

import os

import numpy as np
import pytest

from rnnkit.charlm.corpus import default_corpus
from rnnkit.charlm.data import Chunks, Vocab, read_text, split_text, stream_matrix
from rnnkit.errors import DataError, HyperparameterError, PathError


def test_vocab_roundtrip_and_sorted_ids():
    text = "hello, wörld 😀\n"
    v = Vocab.from_text(text)
    assert v.chars == sorted(set(text))
    ids = v.encode(text)
    assert ids.dtype == np.int32 and v.decode(ids) == text
    assert ids[0] == v.chars.index("h")


def test_vocab_unknown_characters_are_named():
    v = Vocab.from_text("abc")
    with pytest.raises(DataError, match=r"not in the model's vocabulary: 'z' \(U\+007A\)"):
        v.encode("abz", what="the prime text")
    with pytest.raises(DataError, match="U\\+00E9"):
        v.encode("é")          # above the lookup table's range
    assert v.unknown("azy") == ["y", "z"]


def test_a_lone_surrogate_is_named_not_a_unicode_error():
    text = "ab\udc80c"                                  # what errors="surrogateescape" makes of a stray byte
    with pytest.raises(DataError, match=r"^the text: character 2 is a lone surrogate \(U\+DC80\), not a Unicode "
                                        r"character; decode the text with errors='replace', or fix its encoding$"):
        Vocab.from_text(text).encode(text, what="the text")


def test_windows_line_endings_are_named_with_the_fix():
    v = Vocab.from_text("ab\nc")
    with pytest.raises(DataError, match=r"'\\r' \(U\+000D\).*; it has Windows line endings \(\\r\\n\) and the model "
                                        r"was trained on \\n alone: convert them to \\n \(dos2unix for a file\) or "
                                        r"train on text with the same line endings$"):
        v.encode("ab\r\nc")
    with pytest.raises(DataError, match=r"remove or replace them$"):       # a lone \r is not a line ending
        v.encode("ab\rc")
    with pytest.raises(DataError, match=r"same line endings; remove or replace the others$"):
        v.encode("ab\r\nz")
    with pytest.raises(DataError, match=r"remove or replace them$"):       # \r in a model without line breaks
        Vocab.from_text("abc").encode("ab\rc")


def test_read_text_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        read_text(empty)
    binary = tmp_path / "x.bin"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(DataError, match="binary"):
        read_text(binary)
    with pytest.raises(PathError, match="TEXTFILE .*: is a directory"):
        read_text(tmp_path)
    with pytest.raises(PathError, match="no such file"):
        read_text(tmp_path / "missing.txt")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(PathError, match=r"line 1, column 4: byte b'\\xe9' is not valid utf-8.*--encoding"):
        read_text(latin)
    assert read_text(latin, encoding="latin-1") == "café au lait"
    with pytest.raises(PathError, match="unknown text encoding 'no-such-codec'"):
        read_text(latin, encoding="no-such-codec")


def test_endless_inputs_are_refused_before_reading(tmp_path, monkeypatch):
    with pytest.raises(PathError, match="/dev/zero: is a device, which may never end"):
        read_text("/dev/zero")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)                     # opening it for reading would block forever: it must not be opened
    with pytest.raises(PathError, match="is a FIFO, which may never end"):
        read_text(fifo)
    big = tmp_path / "big.txt"
    big.write_text("abc" * 100)
    monkeypatch.setenv("RNNKIT_MAX_INPUT_BYTES", "100")
    with pytest.raises(PathError, match="more than the input limit"):
        read_text(big)


def test_read_text_drops_bom(tmp_path):
    p = tmp_path / "bom.txt"
    p.write_bytes("\ufeffabc".encode("utf-8"))
    assert read_text(p) == "abc"


def test_split_is_contiguous_with_validation_last():
    text = "".join(chr(65 + i % 26) for i in range(1000))
    tr, va, te = split_text(text)
    assert (len(tr), len(va), te) == (900, 100, "") and tr + va == text
    tr, va, te = split_text(text, 0.1, 0.2)
    assert (len(tr), len(va), len(te)) == (700, 100, 200) and tr + va + te == text
    with pytest.raises(HyperparameterError, match=r"validation_fraction \(--validation-fraction\) \+ test_fraction"):
        split_text(text, 0.5, 0.5)
    with pytest.raises(HyperparameterError, match=r"validation_fraction \(--validation-fraction\) must be in"):
        split_text(text, 1.5)


def test_streams_are_contiguous_and_chunks_tile_them():
    ids = np.arange(103)
    x, y = stream_matrix(ids, 4)                       # L = (103 - 1) // 4 = 25
    assert x.shape == y.shape == (25, 4)
    for n in range(4):
        np.testing.assert_array_equal(x[:, n], np.arange(n * 25, (n + 1) * 25))
    np.testing.assert_array_equal(y, x + 1)            # targets are the next character
    chunks = Chunks(x, y, 7)
    assert len(chunks) == 4 and [c.x.shape[0] for c in chunks] == [7, 7, 7, 4]
    np.testing.assert_array_equal(np.concatenate([c.x for c in chunks]), x)
    assert len(list(chunks)) == 4                      # re-iterable: the loop rebuilds an epoch on resume


def test_stream_and_chunk_errors():
    with pytest.raises(DataError, match="too few for 4 parallel streams .* a smaller --batch-size"):
        stream_matrix(np.arange(3), 4)
    with pytest.raises(DataError, match=r"^the text has 1 characters, too few for 1 parallel stream \(each needs at "
                                        r"least 2\); use a longer text, or other split fractions$"):
        stream_matrix(np.arange(1), 1)                  # once: "a smaller --batch-size (at most 1)" for batch 1
    with pytest.raises(HyperparameterError, match=r"seq_len \(--seq-len\) must be >= 1, got 0"):
        Chunks(np.zeros((3, 1)), np.zeros((3, 1)), 0)


def test_default_corpus_is_real_and_stable():
    text = default_corpus()
    assert len(text) > 300_000
    assert text == default_corpus()
    assert "def " in text and "class" in text
