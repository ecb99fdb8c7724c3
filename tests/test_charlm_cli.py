"""`rnnkit charlm train|sample|eval` through main(argv): real runs on tiny texts; every mistake exit 2 and one line."""

import os

import numpy as np
import pytest

from rnnkit import charlm
from rnnkit.cli.main import main
from rnnkit.io.modelfile import save_model_file

TEXT = "the quick brown fox jumps over the lazy dog. " * 12
FAST = ["--hidden-size", 16, "--num-layers", 1, "--embedding-size", 4, "--seq-len", 16, "--batch-size", 4,
        "--sample-length", 10, "--no-progress", "--no-plot"]


@pytest.fixture
def textfile(tmp_path):
    p = tmp_path / "fox.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


@pytest.fixture
def model_file(tmp_path, textfile):
    out = tmp_path / "ok.npz"
    charlm.train(textfile, out=out, max_steps=1, hidden_size=16, num_layers=1, embedding_size=4, seq_len=16,
                 batch_size=4, progress=False, plot=False, sample_length=0)
    return out


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _refused(capsys, expect, *argv):
    """Exit status 2 and one line naming the mistake."""
    code, out, err = _cli(capsys, *argv)
    assert code == 2 and expect in err, err
    assert err.count("\n") == 1 and err.startswith("rnnkit: error: "), err
    assert ".tmp" not in err
    return out


def test_train_sample_eval(tmp_path, textfile, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "m.npz"
    code, o, e = _cli(capsys, "charlm", "train", textfile, "--out", out, "--max-steps", 6, "--validate-every", 3,
                      *FAST[:-1])
    assert code == 0, e
    assert "validation:" in o and "bits/char" in o and "perplexity" in o
    assert (tmp_path / "m.loss.png").read_bytes()[:4] == b"\x89PNG" and os.path.exists(tmp_path / "m.ckpt.npz")
    code, o, e = _cli(capsys, "charlm", "sample", out, "--prime", "the ", "--length", 50, "--random-state", 1)
    assert code == 0 and o.startswith("the ") and len(o) == len("the ") + 50 + 1
    # options before the positional, and a checkpoint instead of the model file
    _, o2, _ = _cli(capsys, "charlm", "sample", "--prime", "the ", "--length", 50, out, "--random-state", 1)
    assert o2 == o
    code, o3, e = _cli(capsys, "charlm", "sample", tmp_path / "m.ckpt.npz", "--beam", 2, "--length", 12)
    assert code == 0 and len(o3) == 13, e
    code, o, e = _cli(capsys, "charlm", "eval", out, textfile, "--batch-size", 2, "--seq-len", 7)
    assert code == 0 and "bits/char" in o and "perplexity" in o
    # N streams of equal length leave the text's last characters out: said, with the fix
    n = len(open(textfile, encoding="utf-8").read()) - 1               # the characters after the first
    streams = 7 if n % 7 else 6
    code, o, e = _cli(capsys, "charlm", "eval", out, textfile, "--batch-size", streams)
    kept = n // streams * streams
    assert code == 0 and o.startswith(f"{textfile}: {kept:,} characters predicted of {n:,} (the last {n - kept:,} "
                                      f"do not fill the {streams} streams of --batch-size: a smaller --batch-size "
                                      "scores more of the text)\n"), o
    code, o, e = _cli(capsys, "charlm", "eval", out, textfile)
    assert code == 0 and o.startswith(f"{textfile}: {n:,} characters predicted\n"), o


@pytest.mark.parametrize("case", ["empty", "binary", "directory", "undecodable", "short"])
def test_train_bad_input(case, tmp_path, capsys):
    f = tmp_path / "input.txt"
    if case == "empty":
        f.write_bytes(b"")
        expect = "is empty"
    elif case == "binary":
        f.write_bytes(bytes(range(256)) * 4)
        expect = "binary"
    elif case == "directory":
        f, expect = tmp_path, "is a directory"
    elif case == "undecodable":
        f.write_bytes("naïve ".encode("latin-1") * 50)
        expect = "--encoding"
    else:
        f.write_text("ab")
        expect = "too few for 4 parallel streams"
    _refused(capsys, expect, "charlm", "train", f, "--out", tmp_path / "m.npz", "--max-steps", 1, *FAST)
    assert not list(tmp_path.rglob("*.npz"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_endless_textfile_is_refused(kind, tmp_path, capsys):
    path = "/dev/zero"
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)                 # nobody writes: reading it would block forever
    expect = "is a FIFO, which may never end" if kind == "fifo" else "is a device, which may never end"
    _refused(capsys, expect, "charlm", "train", path, "--out", tmp_path / "m.npz", "--max-steps", 1, *FAST)


@pytest.mark.parametrize("flags,expect", [
    (["--learning-rate", 0], "learning_rate (--learning-rate) must be > 0, got 0.0"),
    (["--learning-rate", "nan"], "learning_rate (--learning-rate) must be > 0, got nan"),
    (["--random-state", -1], "random_state (--random-state) must be an integer >= 0, or none for fresh entropy"),
    (["--seq-len", 0], "seq_len (--seq-len) must be >= 1, got 0"),
    (["--resume"], "--resume: there is no checkpoint"),
    (["--out", "{dir}"], "--out {dir}: is a directory"),
    (["--out", ""], "--out: the path is empty"),
    (["--out", "{long}"], "the file name is 300 bytes long"),
    (["--out", "{missing}/m.npz"], "directory does not exist"),
    (["--out", "{text}"], "--out {text} is also the input TEXTFILE: writing it would destroy the input"),
    (["--plot", "{tmp}/m.npz"], "--plot and --out are the same file"),
    (["--plot", "{text}"], "--plot {text} is also the input TEXTFILE"),
    (["--hidden-size", 100_000_000], "need about"),
])
def test_train_bad_flags_fail_before_training(flags, expect, tmp_path, textfile, capsys):
    (tmp_path / "adir").mkdir()
    subst = {"{dir}": str(tmp_path / "adir"), "{long}": str(tmp_path / ("x" * 300)),
             "{missing}": str(tmp_path / "nope"), "{text}": str(textfile), "{tmp}": str(tmp_path)}
    fill = lambda s: [s := s.replace(k, v) for k, v in subst.items()][-1]
    argv = ["charlm", "train", textfile, "--out", tmp_path / "m.npz", "--max-steps", 2] + FAST[:-1]
    _refused(capsys, fill(expect), *argv, *[fill(str(f)) for f in flags])
    assert not list(tmp_path.rglob("*.npz")) and not list(tmp_path.rglob("*.png"))   # nothing trained or written
    assert textfile.read_text() == TEXT


def test_resume_with_another_batch_size_names_the_flag(tmp_path, textfile, capsys):
    argv = ["charlm", "train", textfile, "--out", tmp_path / "m.npz", "--max-steps", 2, *FAST]
    assert _cli(capsys, *argv)[0] == 0
    _refused(capsys, "trained with --batch-size 4, not --batch-size 2", *argv, "--resume", "--batch-size", 2)
    code, out, err = _cli(capsys, *argv[:6], 4, *FAST, "--resume")
    assert code == 0 and "trained 4 steps" in out, err


def test_old_flag_spellings_are_gone(tmp_path, textfile, capsys):
    # --hidden, --batch, --embedding and --lr are prefixes of new flags: no abbreviations, so no silent renames
    for flag in ("--seed", "--layers", "--valid-fraction", "--hidden", "--batch", "--embedding", "--lr"):
        code, _, err = _cli(capsys, "charlm", "train", textfile, "--out", tmp_path / "m.npz", flag, 1, *FAST)
        assert code == 2 and f"unrecognized arguments: {flag} 1" in err, (flag, err)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["missing", "corrupted", "not_a_model", "directory", "other_app", "unknown_prime",
                                  "bad_temperature", "huge_beam", "huge_length", "fifo"])
def test_sample_bad_input(case, tmp_path, model_file, capsys):
    path, extra = model_file, []
    if case == "missing":
        path, expect = tmp_path / "nope.npz", "no such file"
    elif case == "corrupted":
        data = bytearray(open(model_file, "rb").read())
        data[len(data) // 2: len(data) // 2 + 64] = b"\0" * 64
        path = tmp_path / "bad.npz"
        path.write_bytes(bytes(data))
        expect = "re-save or re-copy it"
    elif case == "not_a_model":
        path = tmp_path / "notes.txt"
        path.write_text("hello")
        expect = "not an rnnkit model file"
    elif case == "directory":
        path, expect = tmp_path, "is a directory"
    elif case == "other_app":
        path = tmp_path / "fc.npz"
        save_model_file(path, kind="forecaster", config={"params": {}, "fitted": {}}, arrays={"w": np.ones(2)})
        expect = "this is a forecaster model file, not a charlm one"
    elif case == "unknown_prime":
        extra, expect = ["--prime", "QUICK Ω"], "the prime text (--prime) has 6 character(s) that are not in"
    elif case == "bad_temperature":
        extra, expect = ["--temperature", -1], "temperature (--temperature) must be >= 0, got -1.0"
    elif case == "huge_beam":
        extra, expect = ["--beam", 100_000], "beam (--beam) must be <= 1,000, got 100000"
    elif case == "huge_length":
        extra, expect = ["--length", 10 ** 9], "length (--length) must be <= 10,000,000"
    else:
        path = tmp_path / "pipe"
        os.mkfifo(path)
        expect = "is a FIFO, which may never end"
    out = _refused(capsys, expect, "charlm", "sample", path, *extra)
    assert out == ""                                  # nothing printed before the error


def test_eval_bad_input(tmp_path, model_file, capsys):
    other = tmp_path / "other.txt"
    other.write_text("QUICK BROWN")
    _refused(capsys, "not in the model's vocabulary", "charlm", "eval", model_file, other)
    _refused(capsys, "no such file", "charlm", "eval", model_file, tmp_path / "missing.txt")
    _refused(capsys, "is a device, which may never end", "charlm", "eval", model_file, "/dev/zero")
    _refused(capsys, "batch_size (--batch-size) must be >= 1, got 0", "charlm", "eval", model_file, other,
             "--batch-size", 0)
    fc = tmp_path / "fc.npz"
    save_model_file(fc, kind="translator", config={"params": {}, "fitted": {}}, arrays={"w": np.ones(2)})
    _refused(capsys, "this is a translator model file, not a charlm one", "charlm", "eval", fc, other)


@pytest.mark.parametrize("action", ["train", "sample", "eval"])
def test_help(action, capsys):
    assert main(["charlm", action, "--help"]) == 0
    out = capsys.readouterr().out
    for flag in {"train": ["--hidden-size", "--num-layers", "--batch-size", "--learning-rate", "--random-state",
                           "--validation-fraction", "--progress", "--resume", "--out", "--threads"],
                 "sample": ["--random-state", "--beam", "--top-p"], "eval": ["--batch-size", "--seq-len"]}[action]:
        assert flag in out


def test_progress_prints_the_run_and_a_sample_at_each_validation(tmp_path, textfile, capsys):
    fast = [f for f in FAST if f != "--no-progress"]
    code, out, err = _cli(capsys, "charlm", "train", textfile, "--out", tmp_path / "m.npz", "--max-steps", 2,
                          "--validate-every", 1, *fast, "--progress")
    assert code == 0, err
    assert f"charlm: training on {textfile}" in err and "LSTM 1x16" in err
    assert "--- sample at step 1 ---" in err and "--- sample at step 2 ---" in err
    assert "sample (temperature 0.8):" in out


def test_beam_is_the_number_of_beams_as_in_translate(model_file, capsys):
    code, greedy, e = _cli(capsys, "charlm", "sample", model_file, "--prime", "the ", "--length", 20,
                           "--temperature", 0)
    assert code == 0, e
    code, beam1, e = _cli(capsys, "charlm", "sample", model_file, "--prime", "the ", "--length", 20, "--beam", 1)
    assert code == 0 and beam1 == greedy, e
    out = _refused(capsys, "beam (--beam) must be >= 1, got 0: --beam N searches with N beams (1 = greedy); leave "
                           "--beam out to sample", "charlm", "sample", model_file, "--beam", 0)
    assert out == ""


def test_random_state_none_works_as_on_every_other_command(model_file, capsys):
    runs = [_cli(capsys, "charlm", "sample", model_file, "--length", 30, "--temperature", 3, "--random-state", s)
            for s in ("none", "None", 4, 4)]
    assert all(code == 0 for code, _, _ in runs), runs
    assert runs[2][1] == runs[3][1] and len(runs[0][1]) == 31
    code, _, err = _cli(capsys, "charlm", "sample", model_file, "--random-state", "x")
    assert code == 2 and "--random-state" in err


def test_a_huge_beam_search_is_refused_before_it_starts(model_file, capsys, monkeypatch):
    import rnnkit.charlm.generate as generate
    monkeypatch.setattr(generate, "available_memory", lambda: None)
    out = _refused(capsys, "beam (--beam) 1000 over length (--length) 10,000,000 needs about 74.5 GiB for its "
                           "back-pointers", "charlm", "sample", model_file, "--beam", 1000, "--length", 10 ** 7)
    assert out == ""


def test_checkpoint_every_is_the_estimators_keyword(tmp_path, textfile, capsys):
    assert main(["charlm", "train", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--checkpoint-every CHECKPOINT_EVERY steps between checkpoints" in help_text
    assert "none = only at each epoch's end" in help_text and "(default: 100)" in help_text
    out = tmp_path / "m.npz"
    code, _, err = _cli(capsys, "charlm", "train", textfile, "--out", out, "--max-steps", 2, *FAST,
                        "--checkpoint-every", "none")
    assert code == 0, err
    from rnnkit import load
    assert load(out).get_params()["checkpoint_every"] is None
    _refused(capsys, "checkpoint_every (--checkpoint-every) must be an integer >= 1", "charlm", "train", textfile,
             "--out", tmp_path / "n.npz", "--max-steps", 2, *FAST, "--checkpoint-every", 0)


def test_a_one_character_textfile_is_named(tmp_path, model_file, capsys):
    one = tmp_path / "one.txt"
    one.write_text("t")
    _refused(capsys, f"TEXTFILE {one} has 1 character(s); scoring needs at least 2", "charlm", "eval", model_file,
             one)


@pytest.mark.parametrize("flags,named", [(["--top-k", "2"], "--top-k applies"),
                                         (["--temperature", "0.5", "--random-state", "1"],
                                          "--temperature, --random-state apply")])
def test_beam_refuses_sampling_flags_it_would_ignore(model_file, capsys, flags, named):
    """`sample --beam 3 --top-k 2` dropped --top-k without a word."""
    _refused(capsys, f"beam (--beam) searches for the most likely text; {named} to sampling and would be ignored",
             "charlm", "sample", model_file, "--beam", "3", *flags)


def test_perplexity_stays_readable_when_a_run_diverges():
    from rnnkit.charlm.cli import _perplexity
    assert _perplexity(4.16123) == "4.161" and _perplexity(20.4219) == "20.422"
    assert _perplexity(float(np.exp(700.0))) == "1.01e+304"     # once printed as a 305-digit number
    assert _perplexity(float("inf")) == "inf"
