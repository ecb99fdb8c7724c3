"""rnnkit.io.atomic: the one writer every output goes through, and the output checks made before any work.

The full-disk tests mount a 256 KiB tmpfs (tests/fullfs.py); where mounting is
not permitted they are skipped with the reason (CI allows exactly the skips of
tests named ``test_full_disk_*``).
"""

import errno
import json
import os

import numpy as np
import pytest

from fullfs import fill, small_tmpfs
from rnnkit.cli.main import main
from rnnkit.errors import PathError
from rnnkit.io import atomic
from rnnkit.io.atomic import atomic_write, check_outputs, check_writable, write_json, write_text
from rnnkit.io.modelfile import load_model_file, save_model_file

PREVIOUS = b"the previous, good contents\n"


@pytest.fixture
def previous(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(PREVIOUS)
    return path


def _leftovers(directory, keep=()):
    return sorted(n for n in os.listdir(directory) if n not in keep)


# -- atomic_write ------------------------------------------------------------------
def test_writes_and_replaces(tmp_path):
    path = tmp_path / "a.txt"
    assert write_text(path, "one") == str(path)
    write_text(path, "two")
    assert path.read_text() == "two" and _leftovers(tmp_path) == ["a.txt"]
    write_json(path, {"x": np.float32(1.5), "n": np.int64(3)})
    assert json.loads(path.read_text()) == {"x": 1.5, "n": 3}


@pytest.mark.parametrize("error", [ValueError("bad value mid-write"), KeyboardInterrupt()])
def test_writer_raising_midway_keeps_previous_file(previous, error):
    def half_then_fail(f):
        f.write(b"half of the new")
        raise error
    with pytest.raises(type(error)):
        atomic_write(previous, half_then_fail)
    assert previous.read_bytes() == PREVIOUS
    assert _leftovers(previous.parent) == [previous.name]       # no temporary file left


def test_oserror_midway_names_the_target_not_the_temporary_file(previous):
    def fail(f):
        f.write(b"x")
        raise OSError(errno.EIO, "Input/output error")
    with pytest.raises(OSError) as info:
        atomic_write(previous, fail, what="--out")
    msg = str(info.value)
    assert info.value.filename == str(previous) and ".tmp" not in msg
    assert "--out" in msg and str(previous) in msg and "unchanged" in msg
    assert previous.read_bytes() == PREVIOUS and _leftovers(previous.parent) == [previous.name]


def test_missing_directory_is_a_path_error(tmp_path):
    with pytest.raises(PathError, match="does not exist"):
        write_text(tmp_path / "nope" / "a.txt", "x", what="--out")


def test_full_disk_tmpfs_atomic_write_keeps_previous_file(tmp_path):
    with small_tmpfs(tmp_path) as mnt:
        target = os.path.join(mnt, "results.json")
        with open(target, "wb") as f:
            f.write(PREVIOUS)
        fill(mnt)
        with pytest.raises(OSError) as info:
            write_text(target, "x" * 100_000, what="--json")
        e = info.value
        assert e.errno == errno.ENOSPC and e.filename == target
        assert target in str(e) and "--json" in str(e) and "unchanged" in str(e) and ".tmp" not in str(e)
        with open(target, "rb") as f:
            assert f.read() == PREVIOUS
        assert _leftovers(mnt) == ["filler", "results.json"]      # no temporary file left


def test_full_disk_tmpfs_model_file_too_large(tmp_path):
    # a model file is written through the same writer: a model bigger than the disk leaves the old one whole
    with small_tmpfs(tmp_path) as mnt:
        target = os.path.join(mnt, "model.npz")
        small = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
        save_model_file(target, kind="demo", config={"n": 1}, arrays=small)
        before = open(target, "rb").read()
        big = {"w": np.random.default_rng(0).standard_normal((512, 512))}   # 2 MiB of incompressible data
        with pytest.raises(OSError) as info:
            save_model_file(target, kind="demo", config={"n": 2}, arrays=big)
        e = info.value
        assert e.errno == errno.ENOSPC and e.filename == target and "unchanged" in str(e)
        assert ".tmp" not in str(e)
        assert open(target, "rb").read() == before
        assert load_model_file(target).config == {"n": 1}
        assert _leftovers(mnt) == ["model.npz"]


def test_full_disk_tmpfs_cli_prints_one_line_naming_the_file(tmp_path, capsys):
    # through the CLI: `rnnkit bench --out` on a full disk fails with exit 2 and one line naming --out
    with small_tmpfs(tmp_path) as mnt:
        target = os.path.join(mnt, "bench.json")
        earlier = b'{\n  "suite": "quick"\n}\n'            # an earlier report (another file is refused first)
        with open(target, "wb") as f:
            f.write(earlier)
        fill(mnt)
        code = main(["bench", "--quick", "--no-torch", "--cells", "rnn", "--modes", "inference", "--no-progress",
                     "--target-seconds", "0.01", "--threads", "1", "--out", target])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith("rnnkit: error: No space left on device") and err.count("\n") == 1, err
        assert "--out" in err and target in err and "unchanged" in err and ".tmp" not in err
        with open(target, "rb") as f:
            assert f.read() == earlier
        assert _leftovers(mnt) == ["bench.json", "filler"]


# -- check_outputs / check_writable ------------------------------------------------------
@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("x\n1\n")
    return path


def test_output_equal_to_input_by_path_is_refused(tmp_path, data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for same in (str(data), "data.csv", "./data.csv", os.path.join("..", tmp_path.name, "data.csv")):
        with pytest.raises(PathError, match=r"--out .* is also the input DATA"):
            check_outputs({"--out": same}, inputs={"DATA": str(data)})
    assert data.read_text() == "x\n1\n"


def test_output_equal_to_input_by_symlink_is_refused(tmp_path, data):
    link = tmp_path / "link.csv"
    link.symlink_to(data)
    with pytest.raises(PathError, match="is also the input DATA"):
        check_outputs({"--plot": link}, inputs={"DATA": data})
    with pytest.raises(PathError, match="is also the input DATA"):
        check_outputs({"--plot": data}, inputs={"DATA": link})


def test_output_equal_to_input_by_hard_link_is_refused(tmp_path, data):
    hard = tmp_path / "hard.csv"
    os.link(data, hard)
    assert os.path.realpath(hard) != os.path.realpath(data)     # only the inode tells them apart
    with pytest.raises(PathError, match="is also the input DATA"):
        check_outputs({"--out": hard}, inputs={"DATA": data})


def test_two_outputs_the_same_file_are_refused(tmp_path):
    out = tmp_path / "a.png"
    with pytest.raises(PathError, match=r"--plot and --out are the same file"):
        check_outputs({"--out": out, "--plot": str(tmp_path / "." / "a.png")})


def test_distinct_outputs_and_none_values_pass(tmp_path, data):
    check_outputs({"--out": tmp_path / "m.npz", "--plot": None, "--json": tmp_path / "r.json"},
                  inputs={"DATA": data, "MODEL": None})
    assert _leftovers(tmp_path) == ["data.csv"]                 # the write probe left nothing behind


def test_no_output_writes_over_a_checkpoint_and_only_a_model_over_a_model(tmp_path):
    # rnnkit export MODEL run.ckpt.npz wrote an ONNX file over an interrupted run's checkpoint, and
    # compare/bench --out and --plot did the same with JSON and PNG (exit 0)
    arrays = {"w": np.zeros(3, np.float32)}
    save_model_file(tmp_path / "run.ckpt.npz", kind="checkpoint", config={}, arrays=arrays, meta={})
    save_model_file(tmp_path / "m.npz", kind="charlm", config={}, arrays=arrays, meta={})
    ckpt, model = str(tmp_path / "run.ckpt.npz"), str(tmp_path / "m.npz")
    for flag in ("OUT", "--plot", "--out"):
        with pytest.raises(PathError, match=rf"^{flag} .*run.ckpt.npz is a training checkpoint; writing this output "
                                            rf"there would destroy it: choose another {flag}$"):
            check_outputs({flag: ckpt})
        with pytest.raises(PathError, match=rf"^{flag} .*m.npz is an rnnkit charlm model file; writing this output "
                                            rf"there would destroy it: choose another {flag}$"):
            check_outputs({flag: model})
    check_outputs({"--out": model}, models=("--out",))                          # a model over a model: re-training
    with pytest.raises(PathError, match=r"is a training checkpoint, not a model file; writing the model there .* "
                                        r"continued with the --out it was started with and --resume\)$"):
        check_outputs({"--out": ckpt}, models=("--out",))
    check_outputs({"the checkpoint beside --out": ckpt}, checkpoints=("the checkpoint beside --out",))
    for other in ("a.json", "a.npz"):                  # other files, rnnkit-like names or not, are outputs as ever
        (tmp_path / other).write_bytes(b"PK\x03\x04 not a zip" if other.endswith("npz") else b"{}")
        check_outputs({"--out": tmp_path / other})
    assert load_model_file(ckpt).kind == "checkpoint" and load_model_file(model).kind == "charlm"


def test_an_existing_file_of_another_kind_is_not_replaced_by_an_output(tmp_path):
    # `rnnkit export lm.npz text.txt` turned the training text into an ONNX graph, `--midi data.json` the music
    # data into MIDI, `--attention-plot pairs.tsv` the translation pairs into a PNG (exit 0 each time)
    text = tmp_path / "text.txt"
    text.write_text("the user's corpus\n")
    for flag, example in (("OUT", "model.onnx"), ("--midi", "sample.mid"), ("--plot", "loss.png"),
                          ("--out", "model.npz"), ("--out", "forecast.csv"), ("--out", "compare.json")):
        want = "an image" if example.endswith(".png") else f"a {os.path.splitext(example)[1]}"
        with pytest.raises(PathError, match=rf"^{flag} .*text.txt already exists and is not {want} file \(by its name "
                                            rf"and its contents\): writing this output there would replace it; "
                                            rf"choose another {flag}, such as {example}, or remove the file first$"):
            check_outputs({flag: text}, examples={flag: example})
    assert text.read_text() == "the user's corpus\n"
    # the same kind is replaced as ever (an earlier run's output), any ending of an image for a plot, and a new
    # file may have any name
    for name, example in (("old.onnx", "model.onnx"), ("old.SVG", "loss.png"), ("old.midi", "sample.mid"),
                          ("old.npz", "model.npz")):
        (tmp_path / name).write_bytes(b"earlier output")
        check_outputs({"--out": tmp_path / name}, examples={"--out": example})
    check_outputs({"--out": tmp_path / "new.txt"}, examples={"--out": "model.npz"})
    check_outputs({"--out": text})                      # no example given: no kind to hold it to
    # under another name, an earlier output is told by how it begins: a re-run or a resume replaces it
    for name, content, example in (("mymodel", b"PK\x03\x04...", "model.npz"), ("curve", b"\x89PNG\r\n", "loss.png"),
                                   ("fc.txt", b"date,Close\n", "forecast.csv"), ("a_onnx", b"\x08\x08\x12", "m.onnx"),
                                   ("tune", b"MThd\x00", "sample.mid"), ("res", b"  {\"a\": 1}", "compare.json")):
        (tmp_path / name).write_bytes(content)
        check_outputs({"--out": tmp_path / name}, examples={"--out": example})
        with pytest.raises(PathError, match="already exists and is not"):   # the same bytes do not make a text one
            check_outputs({"--out": text}, examples={"--out": example})


def test_an_output_with_an_own_beginning_replaces_only_an_earlier_one(tmp_path):
    # `compare --out data.json` and `bench --out data.json` replaced the music data (both end in .json)
    data, earlier, fresh = tmp_path / "data.json", tmp_path / "report.txt", tmp_path / "new.json"
    data.write_text('{"train": [[[60]]]}')
    earlier.write_text('{\n  "task": "adding"\n}\n')
    with pytest.raises(PathError, match=r"^--out .*data.json already exists and is not an earlier output of --out "
                                        r"\(it does not begin as one does\): writing there would replace it; choose "
                                        r"another --out, such as compare.json, or remove the file first$"):
        check_outputs({"--out": data}, examples={"--out": "compare.json"}, owns={"--out": (b'{\n  "task": ',)})
    for path in (earlier, fresh):                       # an earlier report under any name, or a new file
        check_outputs({"--out": path}, examples={"--out": "compare.json"}, owns={"--out": (b'{\n  "task": ',)})
    assert data.read_text() == '{"train": [[[60]]]}'


def test_training_never_replaces_a_model_or_finished_run_of_another_application(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("hello world, a corpus of the user's. " * 40)
    music = tmp_path / "music.json"
    music.write_text('{"train": [[[60, 64], [62], []], [[60], [67]]], "valid": [[[60], [61]]], "test": [[[62], [60]]]}')
    lm = tmp_path / "lm.npz"
    small = ["--max-steps", "1", "--hidden-size", "8", "--no-progress"]
    assert main(["charlm", "train", str(text), "--out", str(lm), "--sample-length", "0"] + small) == 0
    before = lm.read_bytes(), (tmp_path / "lm.ckpt.npz").read_bytes()
    capsys.readouterr()
    assert main(["music", "train", str(music), "--out", str(lm)] + small) == 2
    err = capsys.readouterr().err
    assert err == (f"rnnkit: error: --out {lm} is an rnnkit charlm model file; training a music model there would "
                   "destroy it: choose another --out\n"), err
    lm.unlink()                                         # the model gone, its finished run's checkpoint stays
    assert main(["music", "train", str(music), "--out", str(lm)] + small) == 2
    err = capsys.readouterr().err
    assert "(the checkpoint beside --out) holds a finished charlm run, not a music run" in err, err
    assert (tmp_path / "lm.ckpt.npz").read_bytes() == before[1] and not lm.exists()


def test_cli_outputs_refuse_to_replace_a_file_of_another_kind(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("hello world, a corpus of the user's. " * 40)
    assert main(["charlm", "train", str(text), "--out", str(tmp_path / "lm.npz"), "--max-steps", "1",
                 "--hidden-size", "8", "--no-progress", "--no-plot", "--sample-length", "0"]) == 0
    other = tmp_path / "other.txt"
    other.write_text("another text of the user's\n")
    capsys.readouterr()
    for argv in (["export", str(tmp_path / "lm.npz"), str(other)],
                 ["charlm", "train", str(text), "--out", str(other), "--max-steps", "1"],
                 ["compare", "adding", "--out", str(other)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "already exists and is not a" in err and "Traceback" not in err, err
    assert other.read_text() == "another text of the user's\n"
    # names without the usual ending: the second run replaces the first's outputs, and a resume continues
    train = ["charlm", "train", str(text), "--hidden-size", "8", "--no-progress", "--sample-length", "0",
             "--out", str(tmp_path / "mymodel"), "--plot", str(tmp_path / "curve")]
    for argv in (train + ["--max-steps", "1"], train + ["--max-steps", "1"], train + ["--max-steps", "2", "--resume"],
                 ["export", str(tmp_path / "mymodel"), str(tmp_path / "a_onnx")],
                 ["export", str(tmp_path / "mymodel"), str(tmp_path / "a_onnx")]):
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    capsys.readouterr()


def test_cli_outputs_refuse_a_checkpoint_in_one_line(tmp_path, capsys):
    save_model_file(tmp_path / "run.ckpt.npz", kind="checkpoint", config={}, arrays={"w": np.zeros(2)}, meta={})
    before = (tmp_path / "run.ckpt.npz").read_bytes()
    ckpt = str(tmp_path / "run.ckpt.npz")
    for argv in (["bench", "--quick", "--out", ckpt], ["compare", "adding", "--out", ckpt]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and "is a training checkpoint; writing this output there would destroy it" in err
    assert (tmp_path / "run.ckpt.npz").read_bytes() == before


@pytest.mark.parametrize("name,expect", [
    ("", "--out: the path is empty; give a file name such as model.npz"),
    ("   ", "the path is empty"),
    ("a" * 300 + ".npz", "the file name is 304 bytes long, more than this file system allows"),
    ("missing/m.npz", "directory does not exist"),
    (".", "is a directory"),
])
def test_unusable_output_names_are_refused(tmp_path, monkeypatch, name, expect):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PathError) as info:
        check_outputs({"--out": name}, examples={"--out": "model.npz"})
    assert expect in str(info.value) and str(info.value).startswith("--out")
    assert "\n" not in str(info.value)


def test_output_that_is_a_fifo_or_device_is_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(PathError, match="not a regular file"):
        check_writable(fifo, "--out")
    with pytest.raises(PathError, match="not a regular file"):
        check_writable("/dev/null", "--out")


def test_unwritable_directory_is_refused(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)     # root may write anywhere: simulate it
    with pytest.raises(PathError, match=r"--json .*: cannot write in .*Permission denied"):
        check_writable(tmp_path / "r.json", "--json")


@pytest.mark.parametrize("name", ["é" * 127, "a" * 255, "日本" * 40], ids=["2-byte", "ascii", "3-byte"])
def test_longest_names_the_file_system_takes_are_written(tmp_path, name):
    # the temporary sibling must fit too: a 254-byte name of 2-byte characters used to fail in the write
    path = tmp_path / name
    check_writable(path, "--out")
    write_text(path, "x", what="--out")
    assert path.read_text() == "x" and _leftovers(tmp_path) == [name]


def test_replacing_keeps_the_previous_permissions(tmp_path):
    private = tmp_path / "secret.json"
    private.write_text("{}")
    os.chmod(private, 0o600)
    write_json(private, {"a": 1})
    assert os.stat(private).st_mode & 0o777 == 0o600 and json.loads(private.read_text()) == {"a": 1}
    fresh = tmp_path / "new.txt"
    old_umask = os.umask(0o022)
    try:
        write_text(fresh, "x")
    finally:
        os.umask(old_umask)
    assert os.stat(fresh).st_mode & 0o777 == 0o644           # a new file gets the umask's permissions


def test_a_later_write_removes_what_a_killed_writer_left(tmp_path):
    """kill -9 mid-write leaves the temporary sibling; the next write of that file removes it (73 MB each)."""
    import subprocess
    import sys
    target = tmp_path / "m.npz"
    code = ("import os, sys, time\n"
            "from rnnkit.io.atomic import atomic_write\n"
            "def slow(f):\n"
            "    f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n"
            f"atomic_write({str(target)!r}, slow)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    left = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".m.npz.")
    live = tmp_path / f".m.npz.{os.getppid()}-abcdef.tmp"     # a writer that still runs: kept
    live.write_bytes(b"busy")
    write_text(target, "new")
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".tmp")) == [live.name]
    assert target.read_text() == "new"
