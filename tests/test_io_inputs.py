"""rnnkit.io.inputs: user files are checked and read with a limit; nothing endless is read whole."""

import os
import threading
import time

import numpy as np
import pytest

from rnnkit.errors import PathError
from rnnkit.io.inputs import DEFAULT_MAX_INPUT_BYTES, check_input, max_input_bytes, read_bytes, read_text


def _within(seconds, fn, *args, **kwargs):
    """fn(*args) in a daemon thread: its exception, or a failure if it has not returned within ``seconds``."""
    box = {}

    def run():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:          # noqa: BLE001 - handed back to the test
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__name__} blocked for {seconds} s"
    return box, time.monotonic() - t0


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)           # opening it for reading would wait for a writer forever
    for fn in (check_input, read_bytes, read_text):
        box, took = _within(5, fn, str(fifo), "TEXTFILE")
        assert isinstance(box.get("error"), PathError), box
        assert "TEXTFILE" in str(box["error"]) and "is a FIFO" in str(box["error"])
        assert took < 5


def test_endless_device_is_refused():
    box, _ = _within(5, read_text, "/dev/zero", "--data")
    assert isinstance(box.get("error"), PathError), box
    assert str(box["error"]).startswith("--data /dev/zero: is a device")


def test_directory_and_missing_and_empty_paths(tmp_path):
    with pytest.raises(PathError, match="is a directory"):
        read_bytes(tmp_path, "DATA")
    with pytest.raises(PathError, match="no such file"):
        read_bytes(tmp_path / "nope.csv", "DATA")
    with pytest.raises(PathError, match="the path is empty"):
        read_bytes("", "DATA")


def test_file_over_the_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 11)
    monkeypatch.setenv("RNNKIT_MAX_INPUT_BYTES", "10")
    assert max_input_bytes() == 10
    with pytest.raises(PathError) as info:
        read_text(path, "TEXTFILE")
    assert "more than the input limit" in str(info.value) and "RNNKIT_MAX_INPUT_BYTES" in str(info.value)
    path.write_bytes(b"x" * 10)                                  # exactly at the limit is fine
    assert read_text(path, "TEXTFILE") == "x" * 10
    with pytest.raises(PathError, match="more than the input limit"):
        read_bytes(path, "TEXTFILE", max_bytes=9)             # the argument wins over the variable


def test_file_growing_past_the_limit_while_read_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "growing.txt"
    path.write_bytes(b"x" * 5)
    import rnnkit.io.inputs as inputs
    real = inputs.check_input

    def check_then_grow(p, what, max_bytes=None):
        size = real(p, what, max_bytes)
        with open(p, "ab") as f:                                 # it grows between the check and the read
            f.write(b"y" * 100)
        return size
    monkeypatch.setattr(inputs, "check_input", check_then_grow)
    with pytest.raises(PathError, match="grew past the input limit"):
        read_bytes(path, "TEXTFILE", max_bytes=10)


@pytest.mark.parametrize("value", ["ten", "0", "-5"])
def test_bad_limit_variable_is_refused(monkeypatch, value):
    monkeypatch.setenv("RNNKIT_MAX_INPUT_BYTES", value)
    with pytest.raises(PathError, match="RNNKIT_MAX_INPUT_BYTES"):
        max_input_bytes()


def test_default_limit(monkeypatch):
    monkeypatch.delenv("RNNKIT_MAX_INPUT_BYTES", raising=False)
    assert max_input_bytes() == DEFAULT_MAX_INPUT_BYTES == 1 << 30


def test_undecodable_byte_is_named_with_line_and_column(tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes("first line\nsecond: caf\u00e9 ok\nthird \xff".encode("latin-1"))
    with pytest.raises(PathError) as info:
        read_text(path, "TEXTFILE")
    msg = str(info.value)
    assert "line 2, column 12" in msg and "\\xe9" in msg and "--encoding" in msg
    assert read_text(path, "TEXTFILE", encoding="latin-1").startswith("first line\nsecond: caf\u00e9")


def test_unknown_encoding_names_the_flag(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abc")
    with pytest.raises(PathError, match="unknown text encoding 'klingon' \\(--encoding\\)"):
        read_text(path, "TEXTFILE", encoding="klingon")


def test_refuse_special_refuses_streams_without_opening_them(tmp_path):
    from rnnkit.io.inputs import refuse_special
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    box, _ = _within(5, refuse_special, str(fifo), "MODEL")
    assert isinstance(box.get("error"), PathError) and "MODEL" in str(box["error"]), box
    with pytest.raises(PathError, match="is a device"):
        refuse_special("/dev/zero", "MODEL")
    big = tmp_path / "big.npz"
    big.write_bytes(b"x" * 100)
    os.environ["RNNKIT_MAX_INPUT_BYTES"] = "10"
    try:                                        # regular files, directories and missing paths pass
        for ok in (big, tmp_path, tmp_path / "missing"):
            refuse_special(ok, "MODEL")
    finally:
        del os.environ["RNNKIT_MAX_INPUT_BYTES"]


def test_a_utf8_byte_order_mark_is_not_text(tmp_path):
    """A BOM became a token of the first sentence (translate) or a JSON error (music)."""
    path = tmp_path / "bom.tsv"
    path.write_bytes(b"\xef\xbb\xbfhello\tbonjour\n")
    assert read_text(path, "PAIRS") == "hello\tbonjour\n"
    assert read_text(path, "PAIRS", encoding="latin-1").startswith("\xef\xbb\xbf")   # another encoding: kept


@pytest.mark.parametrize("flag, fix", [("--encoding", "pass --encoding utf-16"),
                                       (None, "convert it to UTF-8 first (iconv -f utf-16 -t utf-8 u16.tsv)")])
def test_utf16_is_named_with_its_own_fix(tmp_path, flag, fix):
    path = tmp_path / "u16.tsv"
    path.write_bytes("hello\tbonjour\n".encode("utf-16"))
    with pytest.raises(PathError, match="the file looks like UTF-16 text") as e:
        read_text(path, "PAIRS", encoding_flag=flag)
    assert str(e.value).endswith(fix) and "latin1" not in str(e.value)
    assert read_text(path, "PAIRS", encoding="utf-16") == "hello\tbonjour\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_wide_encodings_are_told_from_binary_with_and_without_a_byte_order_mark(tmp_path, encoding, capsys):
    from rnnkit.cli.main import main
    from rnnkit.io.inputs import wide_encoding
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 3
    assert wide_encoding(text.encode(encoding)) == encoding
    assert wide_encoding(text.encode("utf-8")) is None and wide_encoding(bytes(range(256)) * 4) is None
    assert wide_encoding(b"\x00" * 64) is None                   # all NULs: binary
    # 16-bit audio of small samples and an int32 array have the NUL pattern but not the printable bytes
    assert wide_encoding(np.arange(1, 200, dtype="<i2").tobytes() * 10) is None
    assert wide_encoding(np.arange(1, 255, dtype="<i4").tobytes()) is None
    assert wide_encoding("héllo, ça va? ".encode("utf-16-le") * 8) == "utf-16-le"      # Latin-1 letters are text
    path = tmp_path / "t.txt"
    path.write_bytes(text.encode(encoding))                     # a text file saved by a Windows editor, say
    assert main(["charlm", "train", str(path), "--max-steps", "1", "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert f"looks like {encoding.upper()} text (NUL bytes between its characters); pass --encoding {encoding}" \
        in err, err


def test_a_wide_file_that_fails_in_its_own_encoding_is_not_told_to_use_it(tmp_path):
    path = tmp_path / "t16.txt"
    path.write_bytes("hello world\n".encode("utf-16-le") * 20 + b"\x00\xd8" + "x".encode("utf-16-le"))   # a lone surrogate
    with pytest.raises(PathError, match="is not valid utf-16-le; pass the right --encoding") as e:
        read_text(path, "TEXTFILE", encoding="utf-16-le")
    assert "looks like UTF-16-LE" not in str(e.value)
    with pytest.raises(PathError, match="the file looks like UTF-16-LE text: pass --encoding utf-16-le"):
        read_text(path, "TEXTFILE")                                 # in UTF-8 it is worth saying
