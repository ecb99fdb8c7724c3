"""Model files: round trip, every load error with its message, atomic writes, no pickles."""

import io
import json
import os
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from rnnkit.errors import ModelFileError, PathError
from rnnkit.io import modelfile
from rnnkit.io.modelfile import (FORMAT_VERSION, HEADER_KEY, HEADER_SHA_KEY, MAGIC, array_sha256,
                                 header_sha256, load_model_file, save_model_file)


def _arrays():
    rng = np.random.default_rng(0)
    return {
        "rnn.weight_ih_l0": rng.standard_normal((8, 3)),
        "rnn.bias_hh_l0_reverse": rng.standard_normal(8).astype(np.float32),
        "embedding": rng.integers(-5, 5, (4, 2)),
        "mask": np.array([True, False, True]),
        "vocab": np.array(["a", "bc", "\u00e9"]),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 4)),
        "file": np.ones(2),  # the name of np.savez's first argument: must still work
        "transposed": np.arange(12.0).reshape(3, 4).T,  # Fortran order on disk
        "big_endian": np.arange(3, dtype=">f8"),
    }


def _write_raw(path, header, arrays, allow_pickle=False, seal=True, compress=False):
    """A zip in .npz layout with an arbitrary header, for crafting bad files.

    ``seal`` adds the header checksum, so the file fails (only) for the reason a test crafts.
    """
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=mode) as zf:
        if header is not None:
            if seal:
                header = dict(header, **{HEADER_SHA_KEY: header_sha256(header)})
            raw = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
            with zf.open(HEADER_KEY + ".npy", "w") as fh:
                np.lib.format.write_array(fh, raw)
        for name, a in arrays.items():
            with zf.open(name + ".npy", "w") as fh:
                np.lib.format.write_array(fh, a, allow_pickle=allow_pickle)


def _header(arrays, **over):
    h = {"magic": MAGIC, "format_version": FORMAT_VERSION, "kind": "charlm", "rnnkit_version": "0.1.0",
         "config": {}, "meta": {},
         "arrays": {n: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": array_sha256(a)}
                    for n, a in arrays.items()}}
    h.update(over)
    return h


def test_round_trip_keeps_values_dtypes_config_and_meta(tmp_path):
    path = tmp_path / "m.npz"
    arrays = _arrays()
    config = {"hidden_size": 16, "layers": [1, 2], "nested": {"dropout": 0.25, "name": "lstm"}, "none": None}
    meta = {"vocab": ["a", "b"], "history": {"train": [[1, 2.5], [2, float("inf")]]}, "n": np.int64(7)}
    save_model_file(path, kind="charlm", config=config, arrays=arrays, meta=meta)
    m = load_model_file(path, expected_kind="charlm")
    assert m.kind == "charlm" and m.format_version == FORMAT_VERSION and m.rnnkit_version
    assert m.config == config
    assert m.meta == {**meta, "n": 7}
    assert set(m.arrays) == set(arrays)
    for name, a in arrays.items():
        assert m.arrays[name].dtype == a.dtype, name
        assert m.arrays[name].shape == a.shape, name
        assert np.array_equal(m.arrays[name], a), name


def test_compressed_round_trip_and_str_path(tmp_path):
    arrays = {"w": np.linspace(0, 1, 1000)}
    save_model_file(str(tmp_path / "c.npz"), kind="layer", config={}, arrays=arrays, compress=True)
    assert np.array_equal(load_model_file(str(tmp_path / "c.npz")).arrays["w"], arrays["w"])


def test_save_refuses_object_arrays_and_non_json(tmp_path):
    with pytest.raises(ModelFileError, match="'bad' holds Python objects"):
        save_model_file(tmp_path / "o.npz", kind="layer", config={},
                        arrays={"bad": np.array([{}, 1], dtype=object)})
    with pytest.raises(TypeError, match=r"config\['f'\].*not JSON-able"):
        save_model_file(tmp_path / "o.npz", kind="layer", config={"f": object()}, arrays={})
    with pytest.raises(ValueError, match="array name"):
        save_model_file(tmp_path / "o.npz", kind="layer", config={}, arrays={HEADER_KEY: np.zeros(1)})
    with pytest.raises(ValueError, match="kind"):
        save_model_file(tmp_path / "o.npz", kind="", config={}, arrays={})
    assert not os.path.exists(tmp_path / "o.npz")


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match=r"nope\.npz: no such file; check the path"):
        load_model_file(tmp_path / "nope.npz")


def test_directory(tmp_path):
    with pytest.raises(ModelFileError, match="is a directory"):
        load_model_file(tmp_path)


def test_text_file(tmp_path):
    p = tmp_path / "notes.npz"
    p.write_text("hello, I am not a model\n")
    with pytest.raises(ModelFileError, match=r"notes\.npz: is not an rnnkit model file \(not a zip"):
        load_model_file(p)


def test_empty_file_and_npy_file(tmp_path):
    (tmp_path / "e.npz").write_bytes(b"")
    with pytest.raises(ModelFileError, match="is empty"):
        load_model_file(tmp_path / "e.npz")
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match="single NumPy .npy array"):
        load_model_file(tmp_path / "a.npy")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file(tmp_path, keep):
    p = tmp_path / "t.npz"
    save_model_file(p, kind="charlm", config={}, arrays=_arrays())
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError, match=r"t\.npz: is truncated or corrupted.*re-save or re-copy"):
        load_model_file(p)


def test_flipped_byte_inside_an_array_is_caught(tmp_path):
    p = tmp_path / "f.npz"
    w = np.arange(4096, dtype=np.float64)
    save_model_file(p, kind="charlm", config={}, arrays={"w": w})
    data = bytearray(p.read_bytes())
    i = bytes(data).index(w.tobytes()[8 * 2000: 8 * 2000 + 16]) + 3
    data[i] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupted"):
        load_model_file(p)


def test_plain_npz_without_header(tmp_path):
    p = tmp_path / "plain.npz"
    np.savez(p, w=np.zeros(3))
    with pytest.raises(ModelFileError, match="not an rnnkit model file \\(no rnnkit header\\)"):
        load_model_file(p)


def test_header_with_wrong_magic(tmp_path):
    p = tmp_path / "x.npz"
    arrays = {"w": np.zeros(3)}
    _write_raw(p, _header(arrays, magic="something-else"), arrays)
    with pytest.raises(ModelFileError, match="not an rnnkit model file"):
        load_model_file(p)


def test_garbled_header(tmp_path):
    p = tmp_path / "g.npz"
    with zipfile.ZipFile(p, "w") as zf:
        with zf.open(HEADER_KEY + ".npy", "w") as fh:
            np.lib.format.write_array(fh, np.frombuffer(b"{not json", dtype=np.uint8))
    with pytest.raises(ModelFileError, match="header cannot be read"):
        load_model_file(p)


def test_newer_format_version(tmp_path):
    p = tmp_path / "new.npz"
    arrays = {"w": np.zeros(3)}
    _write_raw(p, _header(arrays, format_version=FORMAT_VERSION + 1), arrays)
    with pytest.raises(ModelFileError) as e:
        load_model_file(p)
    msg = str(e.value)
    assert str(p) in msg
    assert f"written by a newer rnnkit (format {FORMAT_VERSION + 1})" in msg
    assert f"reads up to format {FORMAT_VERSION}: upgrade rnnkit" in msg


def test_checksum_mismatch_names_the_array(tmp_path):
    p = tmp_path / "tampered.npz"
    arrays = {"a": np.zeros(3), "decoder.weight": np.ones((2, 2))}
    header = _header(arrays)
    tampered = dict(arrays, **{"decoder.weight": np.array([[1.0, 1.0], [1.0, 1.5]])})
    _write_raw(p, header, tampered)
    with pytest.raises(ModelFileError, match=r"tampered\.npz: checksum mismatch for array 'decoder.weight'"):
        load_model_file(p)
    # a changed dtype or shape with the same bytes is a mismatch too, found before reading the data
    _write_raw(p, header, dict(arrays, a=np.zeros(3, dtype=np.float64).view(np.int64)))
    with pytest.raises(ModelFileError, match=r"array 'a' is <i8 \[3\] but the header says <f8 \[3\]"):
        load_model_file(p)


def test_array_added_or_removed_after_writing(tmp_path):
    p = tmp_path / "x.npz"
    arrays = {"a": np.zeros(3)}
    _write_raw(p, _header(arrays), dict(arrays, extra=np.ones(1)))
    with pytest.raises(ModelFileError, match=r"not listed \['extra'\]"):
        load_model_file(p)
    _write_raw(p, _header(dict(arrays, gone=np.ones(1))), arrays)
    with pytest.raises(ModelFileError, match=r"missing \['gone'\]"):
        load_model_file(p)


def test_object_array_is_refused_without_unpickling(tmp_path):
    p = tmp_path / "evil.npz"

    class Boom:
        def __reduce__(self):  # would run on unpickling
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    evil = np.array([Boom(), 1], dtype=object)
    header = _header({"ok": np.zeros(1)})
    header["arrays"]["evil"] = {"dtype": "|O", "shape": [2], "sha256": "0" * 64}
    _write_raw(p, header, {"ok": np.zeros(1), "evil": evil}, allow_pickle=True)
    with pytest.raises(ModelFileError, match="array 'evil' holds pickled Python objects; rnnkit refuses"):
        load_model_file(p)
    assert not (tmp_path / "pwned").exists()


def test_wrong_kind(tmp_path):
    p = tmp_path / "tr.npz"
    save_model_file(p, kind="translator", config={}, arrays={"w": np.zeros(2)})
    with pytest.raises(ModelFileError, match=r"tr\.npz: this is a translator model file, not a charlm one"):
        load_model_file(p, expected_kind="charlm")
    assert load_model_file(p, expected_kind="translator").kind == "translator"


def _fail_midway(f, arrays, compress):
    f.write(b"PK\x03\x04 half of an archive")
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch, where):
    p = tmp_path / "model.npz"
    save_model_file(p, kind="charlm", config={"v": 1}, arrays={"w": np.ones(3)})
    before = p.read_bytes()
    if where == "write":
        monkeypatch.setattr(modelfile, "_write_npz", _fail_midway)
    else:
        def boom(*a, **k):
            raise OSError(5, f"{where} failed")
        monkeypatch.setattr(modelfile.os, where, boom)
    with pytest.raises(OSError):
        save_model_file(p, kind="charlm", config={"v": 2}, arrays={"w": np.zeros(3)})
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert load_model_file(p).config == {"v": 1}
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(modelfile, "_write_npz", _fail_midway)
    with pytest.raises(OSError):
        save_model_file(tmp_path / "m.npz", kind="charlm", config={}, arrays={})
    assert os.listdir(tmp_path) == []


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(PathError, match="does not exist"):
        save_model_file(tmp_path / "no" / "m.npz", kind="charlm", config={}, arrays={})


def test_overwrite_replaces_contents(tmp_path):
    p = tmp_path / "m.npz"
    save_model_file(p, kind="charlm", config={"v": 1}, arrays={"w": np.ones(3)})
    save_model_file(p, kind="forecaster", config={"v": 2}, arrays={"u": np.zeros(2)})
    m = load_model_file(p)
    assert (m.kind, m.config, list(m.arrays)) == ("forecaster", {"v": 2}, ["u"])


# -- corrupted, edited and crafted files: always a ModelFileError naming the file ------------------
def _rewrite(src, dst, edit, extra=()):
    """Copy a zip entry by entry through ``edit(name, data) -> data or None`` (zipfile recomputes CRCs)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
        for name, data in extra:
            zout.writestr(name, data)


def _npy_bytes(a=None, *, header=None, tail=b""):
    """A .npy file: ``a`` written normally, or only a header dict followed by ``tail``."""
    b = io.BytesIO()
    if a is not None:
        np.lib.format.write_array(b, a)
    else:
        np.lib.format.write_array_header_1_0(b, header)
    return b.getvalue() + tail


def test_flipped_byte_in_the_header_json_names_the_file(tmp_path):
    p = tmp_path / "flip.npz"
    save_model_file(p, kind="charlm", config={"hidden_size": 16}, arrays={"w": np.ones(3)})
    data = bytearray(p.read_bytes())
    i = bytes(data).index(b'"hidden_size": 16') + len('"hidden_size": ')
    data[i] = ord("3")  # 16 -> 36: still valid JSON, but the zip CRC no longer matches
    p.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"flip\.npz: is truncated or corrupted \(.*CRC"):
        load_model_file(p)


def test_flipped_byte_in_compressed_data_names_the_file(tmp_path):
    p = tmp_path / "z.npz"
    save_model_file(p, kind="charlm", config={}, arrays={"w": np.arange(4096.0)}, compress=True)
    data = bytearray(p.read_bytes())
    data[len(data) // 3] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"z\.npz: .*re-save or re-copy"):
        load_model_file(p)


@pytest.mark.parametrize("edit", ["config", "vocabulary", "kind"])
def test_edited_header_is_reported_as_tampering(tmp_path, edit):
    src, p = tmp_path / "good.npz", tmp_path / "edited.npz"
    save_model_file(src, kind="charlm", config={"hidden_size": 16}, arrays={"w": np.ones(3)},
                    meta={"vocab": ["a", "b"]})
    old, new = {"config": (b'"hidden_size": 16', b'"hidden_size": 36'),
                "vocabulary": (b'["a", "b"]', b'["a", "c"]'),
                "kind": (b'"kind": "charlm"', b'"kind": "charLM"')}[edit]

    def change(name, data):
        if name == HEADER_KEY + ".npy":
            assert old in data
            return data.replace(old, new)
        return data

    _rewrite(src, p, change)  # a valid zip with correct CRCs: only the header checksum catches it
    with pytest.raises(ModelFileError, match=r"edited\.npz: header checksum mismatch: the config, meta"):
        load_model_file(p)


def test_header_without_checksum_is_refused(tmp_path):
    p = tmp_path / "old.npz"
    arrays = {"w": np.zeros(3)}
    _write_raw(p, _header(arrays), arrays, seal=False)
    with pytest.raises(ModelFileError, match=r"old\.npz: the header has no checksum \(header_sha256\)"):
        load_model_file(p)


def test_header_checksum_ignores_key_order_and_spacing():
    h = _header({"w": np.zeros(3)}, config={"b": 1, "a": [1.5, float("inf")]})
    reordered = json.loads(json.dumps(dict(reversed(list(h.items()))), indent=3))
    assert header_sha256(reordered) == header_sha256(h)
    assert header_sha256(dict(h, **{HEADER_SHA_KEY: "x"})) == header_sha256(h)
    assert header_sha256(dict(h, config={"b": 1, "a": [1.5, 2.0]})) != header_sha256(h)


@pytest.mark.parametrize("shape", [(2 ** 42,), (2 ** 40, 2 ** 20), (2 ** 31,)])
def test_npy_header_declaring_a_huge_shape_allocates_nothing(tmp_path, shape):
    src, p = tmp_path / "good.npz", tmp_path / "huge.npz"
    save_model_file(src, kind="x", config={}, arrays={"w": np.ones(3)})
    huge = _npy_bytes(header={"descr": "<f8", "fortran_order": False, "shape": shape}, tail=np.ones(3).tobytes())
    _rewrite(src, p, lambda name, data: huge if name == "w.npy" else data)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"huge\.npz: is truncated or corrupted \(array 'w': its \.npy "
                                                 r"header declares <f8"):
            load_model_file(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 20


def _patch_central_file_size(path, entry, new_size):
    """Rewrite the uncompressed size that the zip's central directory records for ``entry``."""
    data = bytearray(path.read_bytes())
    name = entry.encode()
    i = 0
    while True:
        i = data.index(b"PK\x01\x02", i)
        (name_len,) = struct.unpack_from("<H", data, i + 28)
        if data[i + 46: i + 46 + name_len] == name:
            struct.pack_into("<I", data, i + 24, new_size)
            break
        i += 4
    path.write_bytes(bytes(data))


def test_zip_entry_claiming_more_than_its_data_can_inflate_to_is_refused(tmp_path):
    # Every declared size agrees (JSON header, .npy header, zip directory) on 2 GiB, but the
    # entry stores a few hundred bytes: deflate cannot expand that far, so nothing is allocated.
    p = tmp_path / "bomb.npz"
    declared = {"descr": "<f8", "fortran_order": False, "shape": (2 ** 28,)}
    npy = _npy_bytes(header=declared, tail=b"\0" * 4096)
    header = _header({})
    header["arrays"]["w"] = {"dtype": "<f8", "shape": [2 ** 28], "sha256": "0" * 64}
    _write_raw(p, header, {}, compress=True)
    with zipfile.ZipFile(p, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("w.npy", npy)
    _patch_central_file_size(p, "w.npy", len(npy) - 4096 + 8 * 2 ** 28)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"bomb\.npz: entry 'w\.npy' claims \d+ bytes but stores only"):
            load_model_file(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 20


def test_bad_last_array_is_found_before_any_array_is_read(tmp_path):
    # A real, highly compressible array first, then an entry whose shape disagrees with the header:
    # the layout of every entry is checked before the first one is allocated and hashed.
    p = tmp_path / "x.npz"
    big, small = np.zeros(2 ** 22), np.zeros(3)
    header = _header({"big": big, "small": small})
    _write_raw(p, header, {"big": big, "small": np.zeros(4)}, compress=True)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"array 'small' is <f8 \[4\] but the header says <f8 \[3\]"):
            load_model_file(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < big.nbytes // 4


def test_honest_compressed_file_still_loads(tmp_path):
    p = tmp_path / "zeros.npz"
    save_model_file(p, kind="x", config={}, arrays={"w": np.zeros(2 ** 20)}, compress=True)
    assert os.path.getsize(p) < 2 ** 20 // 50
    assert not load_model_file(p).arrays["w"].any()


def test_entry_without_npy_magic_or_suffix(tmp_path):
    src, p = tmp_path / "good.npz", tmp_path / "raw.npz"
    save_model_file(src, kind="x", config={}, arrays={"w": np.ones(3)})
    _rewrite(src, p, lambda name, data: b"not an npy file" if name == "w.npy" else data)
    with pytest.raises(ModelFileError, match=r"raw\.npz: array 'w' is not a readable \.npy array"):
        load_model_file(p)
    _rewrite(src, p, lambda name, data: None if name == "w.npy" else data, extra=[("w", b"not an npy")])
    with pytest.raises(ModelFileError, match=r"raw\.npz: entry 'w' is not a \.npy array"):
        load_model_file(p)


def test_entry_listed_twice(tmp_path):
    src, p = tmp_path / "good.npz", tmp_path / "dup.npz"
    save_model_file(src, kind="x", config={}, arrays={"w": np.ones(3)})
    with pytest.warns(UserWarning, match="Duplicate name"):
        _rewrite(src, p, lambda name, data: data, extra=[("w.npy", _npy_bytes(np.zeros(3)))])
    with pytest.raises(ModelFileError, match=r"dup\.npz: the archive holds 'w\.npy' twice"):
        load_model_file(p)


def test_deeply_nested_header_json(tmp_path):
    src, p = tmp_path / "good.npz", tmp_path / "nested.npz"
    save_model_file(src, kind="x", config={}, arrays={"w": np.ones(3)})
    nested = _npy_bytes(np.frombuffer(b"[" * 100_000 + b"]" * 100_000, dtype=np.uint8))
    _rewrite(src, p, lambda name, data: nested if name == HEADER_KEY + ".npy" else data)
    with pytest.raises(ModelFileError, match=r"nested\.npz: the rnnkit header cannot be read \(nested too deeply\)"):
        load_model_file(p)


def test_malformed_array_entry_in_the_header(tmp_path):
    p = tmp_path / "m.npz"
    arrays = {"w": np.zeros(3)}
    for bad in (None, {"dtype": "<f8", "shape": [-1], "sha256": "0"}, {"dtype": "<f8", "shape": 3, "sha256": "0"}):
        header = _header(arrays)
        header["arrays"]["w"] = bad
        _write_raw(p, header, arrays)
        with pytest.raises(ModelFileError, match=r"m\.npz: the header's entry for array 'w' is malformed"):
            load_model_file(p)


def test_memory_error_while_reading_becomes_a_model_file_error(tmp_path, monkeypatch):
    p = tmp_path / "m.npz"
    save_model_file(p, kind="x", config={}, arrays={"w": np.ones(3)})

    def no_memory(*a, **k):
        raise MemoryError

    monkeypatch.setattr(modelfile.np, "empty", no_memory)
    with pytest.raises(ModelFileError, match=r"m\.npz: not enough memory to load it"):
        load_model_file(p)
