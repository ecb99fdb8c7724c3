"""charlm.train / sample / evaluate / load: learning, files, resume, and the CLI's error handling."""

import os

import numpy as np
import pytest

from rnnkit import charlm
from rnnkit.cli.main import main
from rnnkit.errors import ModelFileError

TEXT = "the quick brown fox jumps over the lazy dog. " * 12
SMALL = dict(hidden=32, layers=1, embedding=8, seq_len=16, batch=4, lr=1e-2, progress=False, plot=False,
             sample_length=20)


@pytest.fixture
def textfile(tmp_path):
    p = tmp_path / "fox.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("fox")
    p = d / "fox.txt"
    p.write_text(TEXT, encoding="utf-8")
    return charlm.train(p, out=d / "fox.npz", max_steps=160, validate_every=80, checkpoint_every=80,
                        **SMALL)


def test_overfits_a_short_text(trained):
    assert trained.history.train[-1][1] < 0.05              # nats/char on the training text
    # the held-out end repeats the sentence; its 4 streams of 13 characters each start cold
    assert trained.valid["loss"] < 0.5
    assert set(trained.valid) >= {"loss", "bits_per_char", "perplexity"}
    out = charlm.sample(trained.model_path, prime="the quick", length=36, temperature=0)
    assert out == " brown fox jumps over the lazy dog. "


def test_files_and_roundtrip(trained):
    assert os.path.exists(trained.model_path) and os.path.exists(trained.checkpoint_path)
    m = charlm.load(trained.model_path)
    assert m.vocab.chars == trained.model.vocab.chars and not m.training
    for (n, a), (_, b) in zip(m.named_parameters(), trained.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)
    assert m.meta["history"]["steps"] == 160 and m.meta["valid"]["loss"] == trained.valid["loss"]
    from_ckpt = charlm.load(trained.checkpoint_path)         # checkpoints can be sampled from too
    assert from_ckpt.config() == m.config()
    # evaluate on the training file: exact single pass, same as a many-stream pass to rounding
    exact = charlm.evaluate(trained.model_path, trained.model.meta["data_source"])
    assert exact["chars"] == len(TEXT) - 1 and exact["loss"] < 0.1


def test_same_seed_same_sample(trained):
    a = charlm.sample(trained.model, prime="the", length=100, temperature=1.0, seed=3)
    assert a == charlm.sample(trained.model_path, prime="the", length=100, temperature=1.0, seed=3)
    assert len(charlm.sample(trained.model, prime="the", length=30, beam=3)) == 30


def test_resumed_run_ends_with_the_same_parameters(tmp_path, textfile):
    kw = dict(SMALL, layers=2, dropout=0.2, validate_every=3, checkpoint_every=2, seed=5)
    straight = charlm.train(textfile, out=tmp_path / "a" / "m.npz", max_steps=7, **kw)
    charlm.train(textfile, out=tmp_path / "b" / "m.npz", max_steps=3, **kw)       # "interrupted" at step 3
    resumed = charlm.train(textfile, out=tmp_path / "b" / "m.npz", max_steps=7, resume=True, **kw)
    assert resumed.history.steps == 7
    for (n, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)


def test_resume_with_other_model_flags_is_refused(tmp_path, textfile):
    out = tmp_path / "m.npz"
    charlm.train(textfile, out=out, max_steps=2, **SMALL)
    with pytest.raises(Exception, match="--hidden 32"):
        charlm.train(textfile, out=out, max_steps=4, resume=True, **dict(SMALL, hidden=16))


def test_cosine_lr_decay_anneals_over_the_steps(tmp_path, textfile):
    run = charlm.train(textfile, out=tmp_path / "m.npz", max_steps=6, lr_decay="cosine", **SMALL)
    lr, low = SMALL["lr"], SMALL["lr"] / 20
    expected = [low + (lr - low) * (1 + np.cos(np.pi * k / 6)) / 2 for k in range(6)]
    np.testing.assert_allclose([v for _, v in run.history.lr], expected, rtol=1e-12)
    assert run.model.meta["settings"]["lr_decay"] == "cosine"
    with pytest.raises(Exception, match=r"needs --epochs or --max-steps"):
        charlm.train(textfile, out=tmp_path / "t.npz", max_minutes=1, lr_decay="cosine", **SMALL)
    with pytest.raises(Exception, match=r"lr_decay \(--lr-decay\): expected 'none' or 'cosine'"):
        charlm.train(textfile, out=tmp_path / "t.npz", max_steps=2, lr_decay="linear", **SMALL)


def test_default_corpus_run(tmp_path):
    run = charlm.train(out=tmp_path / "d.npz", max_steps=2, **dict(SMALL, batch=64, seq_len=8))
    assert run.model.meta["data_source"].startswith("pydoc_data.topics")
    assert len(run.model.vocab) > 80 and np.isfinite(run.valid["loss"])


def test_load_errors(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        charlm.load(tmp_path / "missing.npz")


# -- the CLI -------------------------------------------------------------------

def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_cli_train_sample_eval(tmp_path, textfile, capsys):
    out = tmp_path / "m.npz"
    code, o, e = _cli(capsys, "charlm", "train", textfile, "--out", out, "--hidden", 16, "--layers", 1,
                      "--seq-len", 16, "--batch", 4, "--max-steps", 6, "--validate-every", 3,
                      "--sample-length", 10, "--no-progress")
    assert code == 0, e
    assert "validation:" in o and "bits/char" in o and "perplexity" in o
    assert os.path.exists(tmp_path / "m.loss.png") and os.path.exists(tmp_path / "m.ckpt.npz")
    code, o, e = _cli(capsys, "charlm", "sample", out, "--prime", "the ", "--length", 50, "--seed", 1)
    assert code == 0 and o.startswith("the ") and len(o) == len("the ") + 50 + 1
    _, o2, _ = _cli(capsys, "charlm", "sample", out, "--prime", "the ", "--length", 50, "--seed", 1)
    assert o2 == o
    code, o, e = _cli(capsys, "charlm", "eval", out, textfile)
    assert code == 0 and "bits/char" in o and "perplexity" in o


@pytest.fixture
def model_file(tmp_path, textfile):
    out = tmp_path / "ok.npz"
    charlm.train(textfile, out=out, max_steps=1, **SMALL)
    return out


@pytest.mark.parametrize("case", ["empty", "binary", "directory", "seq_len_0", "undecodable", "short"])
def test_cli_train_bad_input(case, tmp_path, capsys):
    argv = ["charlm", "train", "--out", tmp_path / "m.npz", "--no-progress"]
    f = tmp_path / "input.txt"
    if case == "empty":
        f.write_bytes(b"")
        expect = "is empty"
    elif case == "binary":
        f.write_bytes(bytes(range(256)) * 4)
        expect = "binary"
    elif case == "directory":
        f = tmp_path
        expect = "is a directory"
    elif case == "seq_len_0":
        f.write_text(TEXT)
        argv += ["--seq-len", 0]
        expect = "seq_len (--seq-len): expected a positive integer, got 0"
    elif case == "undecodable":
        f.write_bytes("naïve ".encode("latin-1") * 50)
        expect = "--encoding"
    else:
        f.write_text("ab")
        expect = "too few for 32 parallel streams"
    code, out, err = _cli(capsys, *argv[:2], f, *argv[2:])
    assert code != 0 and expect in err, err


@pytest.mark.parametrize("flags,expect", [
    (["--lr", 0], "lr (--lr) must be > 0, got 0.0"),
    (["--lr", "nan"], "lr (--lr) must be > 0, got nan"),
    (["--seed", -1], "seed (--seed): expected a non-negative integer, got -1"),
    (["--resume"], "no checkpoint to resume from"),
    (["--out", "{dir}"], "out (--out) {dir}: is a directory"),
])
def test_cli_train_bad_flags_fail_before_training(flags, expect, tmp_path, textfile, capsys):
    (tmp_path / "adir").mkdir()
    flags = [str(f).replace("{dir}", str(tmp_path / "adir")) for f in flags]
    argv = ["charlm", "train", textfile, "--out", tmp_path / "m.npz", "--max-steps", 2, "--hidden", 8,
            "--no-progress"] + flags
    code, out, err = _cli(capsys, *argv)
    assert code == 2 and expect.replace("{dir}", str(tmp_path / "adir")) in err, err
    assert not list(tmp_path.rglob("*.ckpt.npz"))             # refused before any training step
    assert ".tmp" not in err


@pytest.mark.parametrize("case", ["missing", "corrupted", "not_a_model", "directory", "unknown_prime",
                                  "bad_temperature"])
def test_cli_sample_bad_input(case, tmp_path, model_file, capsys):
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
    elif case == "unknown_prime":
        extra, expect = ["--prime", "QUICK Ω"], "'Ω' (U+03A9)"
    else:
        extra, expect = ["--temperature", -1], "temperature"
    code, out, err = _cli(capsys, "charlm", "sample", path, *extra)
    assert code != 0 and expect in err, err
    assert out == ""                                  # nothing printed before the error


def test_cli_eval_bad_input(tmp_path, model_file, capsys):
    other = tmp_path / "other.txt"
    other.write_text("QUICK BROWN")
    code, out, err = _cli(capsys, "charlm", "eval", model_file, other)
    assert code != 0 and "not in the model's vocabulary" in err
    code, out, err = _cli(capsys, "charlm", "eval", model_file, tmp_path / "missing.txt")
    assert code != 0 and "no such file" in err
