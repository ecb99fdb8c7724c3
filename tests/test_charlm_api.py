"""charlm.train / sample / evaluate / load: learning, files, resume (the CLI is in test_charlm_cli.py)."""

import os

import numpy as np
import pytest

from rnnkit import charlm
from rnnkit.errors import HyperparameterError, ModelFileError, PathError

TEXT = "the quick brown fox jumps over the lazy dog. " * 12
SMALL = dict(hidden_size=32, num_layers=1, embedding_size=8, seq_len=16, batch_size=4, learning_rate=1e-2,
             progress=False, plot=False, sample_length=20)


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
    assert isinstance(m, charlm.CharModel) and m.get_params() == trained.model.get_params()
    assert m.vocab_.chars == trained.model.vocab_.chars and not m.model_.training
    for (n, a), (_, b) in zip(m.model_.named_parameters(), trained.model.model_.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)
    assert m.history_.steps == 160 and m.meta_["valid"]["loss"] == trained.valid["loss"]
    from_ckpt = charlm.load(trained.checkpoint_path)         # checkpoints can be sampled from too
    assert from_ckpt.get_params() == m.get_params() and from_ckpt.vocab_ == m.vocab_
    # evaluate on the training file: exact single pass, same as a many-stream pass to rounding
    exact = charlm.evaluate(trained.model_path, m.meta_["data_source"])
    assert exact["chars"] == len(TEXT) - 1 and exact["loss"] < 0.1


def test_same_seed_same_sample(trained):
    a = charlm.sample(trained.model, prime="the", length=100, temperature=1.0, random_state=3)
    assert a == charlm.sample(trained.model_path, prime="the", length=100, temperature=1.0, random_state=3)
    assert a == "".join(charlm.sample_stream(trained.model, prime="the", length=100, temperature=1.0,
                                             random_state=3))
    assert len(charlm.sample(trained.model, prime="the", length=30, beam=3)) == 30
    # beam N >= 1 is the number of beams, as in rnnkit translate: 1 is greedy
    assert charlm.sample(trained.model_path, prime="the", length=30, beam=1) == \
        charlm.sample(trained.model_path, prime="the", length=30, temperature=0)
    with pytest.raises(HyperparameterError, match=r"beam \(--beam\) must be >= 1, got 0"):
        charlm.sample(trained.model_path, length=30, beam=0)


def test_resumed_run_ends_with_the_same_parameters(tmp_path, textfile):
    kw = dict(SMALL, num_layers=2, dropout=0.2, validate_every=3, checkpoint_every=2, random_state=5)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = charlm.train(textfile, out=tmp_path / "a" / "m.npz", max_steps=7, **kw)
    charlm.train(textfile, out=tmp_path / "b" / "m.npz", max_steps=3, **kw)       # "interrupted" at step 3
    resumed = charlm.train(textfile, out=tmp_path / "b" / "m.npz", max_steps=7, resume=True, **kw)
    assert resumed.history.steps == 7
    for (n, a), (_, b) in zip(straight.model.model_.named_parameters(), resumed.model.model_.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)


def test_resume_with_other_model_flags_is_refused(tmp_path, textfile):
    out = tmp_path / "m.npz"
    charlm.train(textfile, out=out, max_steps=2, **SMALL)
    with pytest.raises(PathError, match="trained with --hidden-size 32, not --hidden-size 16"):
        charlm.train(textfile, out=out, max_steps=4, resume=True, **dict(SMALL, hidden_size=16))
    with pytest.raises(PathError, match="trained with --batch-size 4, not --batch-size 2"):
        charlm.train(textfile, out=out, max_steps=4, resume=True, **dict(SMALL, batch_size=2))
    other = tmp_path / "other.txt"
    other.write_text(TEXT.upper())
    with pytest.raises(PathError, match="trained on other data"):
        charlm.train(other, out=out, max_steps=4, resume=True, **SMALL)


def test_resume_without_a_checkpoint_is_refused(tmp_path, textfile):
    with pytest.raises(PathError, match=r"--resume: there is no checkpoint .*m\.ckpt\.npz"):
        charlm.train(textfile, out=tmp_path / "m.npz", max_steps=2, resume=True, **SMALL)


def test_old_keyword_names_say_the_new_ones(textfile, tmp_path):
    with pytest.raises(TypeError, match="'hidden'; it is now called hidden_size"):
        charlm.train(textfile, out=tmp_path / "m.npz", hidden=8)


def test_cosine_lr_decay_anneals_over_the_steps(tmp_path, textfile):
    run = charlm.train(textfile, out=tmp_path / "m.npz", max_steps=6, lr_decay="cosine", **SMALL)
    lr, low = SMALL["learning_rate"], SMALL["learning_rate"] / 20
    expected = [low + (lr - low) * (1 + np.cos(np.pi * k / 6)) / 2 for k in range(6)]
    np.testing.assert_allclose([v for _, v in run.history.lr], expected, rtol=1e-12)
    assert charlm.load(run.model_path).lr_decay == "cosine"
    # no budget given: the default one (10 epochs), and the decay over it
    m = charlm.CharModel(lr_decay="cosine", **{k: v for k, v in SMALL.items() if k != "plot"}).fit(TEXT)
    rates = [v for _, v in m.history_.lr]
    assert len(m.history_.epochs) == 10 and rates[0] == lr and rates[-1] < low * 1.01


def test_cosine_lr_decay_with_max_minutes_alone_follows_the_clock(tmp_path, textfile, monkeypatch):
    from rnnkit.train import loop as loop_mod
    clock = iter(np.arange(0.0, 1e6, 0.25))        # a clock that moves a quarter second each time it is read
    monkeypatch.setattr(loop_mod, "_clock", lambda: next(clock))
    run = charlm.train(textfile, out=tmp_path / "m.npz", max_minutes=0.25, lr_decay="cosine", **SMALL)
    lr, low = SMALL["learning_rate"], SMALL["learning_rate"] / 20
    rates = [v for _, v in run.history.lr]
    assert run.history.stop_reason == "max_minutes" and len(rates) > 5
    assert all(a > b for a, b in zip(rates, rates[1:]))            # falls at every step, by the clock
    assert lr > rates[0] > 0.9 * lr and low <= rates[-1] < low + 0.1 * (lr - low)
    with pytest.raises(HyperparameterError, match=r"lr_decay \(--lr-decay\) must be one of 'none', 'cosine'"):
        charlm.train(textfile, out=tmp_path / "t.npz", max_steps=2, lr_decay="linear", **SMALL)


def test_default_corpus_run(tmp_path):
    run = charlm.train(out=tmp_path / "d.npz", max_steps=2, **dict(SMALL, batch_size=64, seq_len=8,
                                                                    num_layers=None, learning_rate=None))
    assert run.model.meta_["data_source"].startswith("pydoc_data.topics")
    assert len(run.model.vocab_) > 80 and np.isfinite(run.valid["loss"])
    assert (run.model.num_layers, run.model.learning_rate) == (1, 5e-3)     # the QUICK preset


def test_load_errors(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        charlm.load(tmp_path / "missing.npz")


def test_loss_curve_is_written_atomically_where_asked(tmp_path, textfile, monkeypatch):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    png.write_bytes(b"old")
    from rnnkit.io import atomic
    calls = []
    real = atomic.atomic_write
    monkeypatch.setattr(atomic, "atomic_write", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    run = charlm.train(textfile, out=tmp_path / "m.npz", max_steps=2, **dict(SMALL, plot=png))
    assert run.plot_path == str(png) and png.read_bytes()[:4] == b"\x89PNG"
    assert str(png) in [str(c) for c in calls]
