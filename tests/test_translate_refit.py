"""A failed refit leaves the translator as it was; checkpoint_every is a hyperparameter; --out has a default;
stdin is read within the input limit; a beam search too big for the memory is refused before decoding."""

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import DataError, HyperparameterError, PathError
from rnnkit.translate import translator as translator_mod
from rnnkit.translate.translator import Translator

pytestmark = pytest.mark.usefixtures("one_blas_thread")

PAIRS = [("je suis fatigué .", "i am tired ."), ("il est grand .", "he is tall ."),
         ("nous sommes prêts .", "we are ready ."), ("elle est ici .", "she is here .")] * 3
OTHER = [("a b c", "x y z"), ("b c d", "y z w")] * 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _small(**kw):
    params = dict(embedding_size=8, hidden_size=12, batch_size=4, dropout=0.0, epochs=2, bleu_sentences=0,
                  random_state=0, progress=False)
    params.update(kw)
    return Translator(**params)


def _snapshot(tr):
    return ({k: v.copy() for k, v in tr.model_.state_dict().items()}, tr.src_vocab_.itos, tr.tgt_vocab_.itos,
            tr.text_options_, tr.history_, tr.model_)


def _assert_unchanged(tr, before, tmp_path):
    state, src, tgt, opts, history, model = before
    assert tr.model_ is model and tr.history_ is history and tr.text_options_ == opts
    assert tr.src_vocab_.itos == src and tr.tgt_vocab_.itos == tgt
    now = tr.model_.state_dict()
    assert all(np.array_equal(now[k], v) for k, v in state.items())
    tr.save(tmp_path / "again.npz")
    back = Translator.load(tmp_path / "again.npz")
    assert back.src_vocab_.itos == src and back.translate(["il est grand ."])[0][0].text == \
        tr.translate(["il est grand ."])[0][0].text


def test_a_refused_resume_leaves_the_fitted_translator_as_it_was(tmp_path):
    ckpt = tmp_path / "run.ckpt.npz"
    _small(max_steps=2).fit(OTHER, checkpoint_path=ckpt)          # a checkpoint of other data
    tr = _small().fit(PAIRS)
    before = _snapshot(tr)
    with pytest.raises(PathError, match="other data"):
        tr.fit(PAIRS[:5], checkpoint_path=ckpt, resume=True)
    _assert_unchanged(tr, before, tmp_path)


def test_a_refit_failing_mid_way_leaves_the_translator_as_it_was(tmp_path):
    tr = _small().fit(PAIRS)
    before = _snapshot(tr)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tr.fit(OTHER, callbacks=[stop])
    _assert_unchanged(tr, before, tmp_path)
    with pytest.raises(DataError, match="empty after preprocessing"):
        tr.fit(PAIRS + [("", "x")])                                  # fails after the vocabularies are built
    _assert_unchanged(tr, before, tmp_path)


def test_a_first_fit_that_fails_leaves_the_translator_unfitted():
    tr = _small()

    def stop(*args, **kwargs):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        tr.fit(PAIRS, callbacks=[stop])
    assert not tr._is_fitted() and not hasattr(tr, "model_") and not hasattr(tr, "src_vocab_")


def test_checkpoint_every_is_a_constructor_keyword(tmp_path):
    assert "checkpoint_every" in Translator().get_params()
    assert "checkpoint_every" not in inspect.signature(Translator.fit).parameters
    from rnnkit.translate import api
    assert "checkpoint_every" not in inspect.signature(api.train).parameters
    assert "checkpoint_every" not in Translator._resume_fixed
    with pytest.raises(HyperparameterError, match=r"checkpoint_every \(--checkpoint-every\)"):
        _small(checkpoint_every=0).fit(PAIRS)
    seen = {}
    real = Translator._fit_loop

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return real(self, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(Translator, "_fit_loop", spy)
        _small(max_steps=2, epochs=None, checkpoint_every=1).fit(PAIRS, checkpoint_path=tmp_path / "c.ckpt.npz")
    finally:
        mp.undo()
    assert seen["checkpoint_every"] == 1


def test_train_cli_generates_checkpoint_every_and_defaults_out(tmp_path, monkeypatch, capsys):
    from rnnkit.cli.main import main
    (tmp_path / "p.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code = main(["translate", "train", "p.tsv", "--embedding-size", "8", "--hidden-size", "12", "--epochs", "1",
                 "--checkpoint-every", "1", "--bleu-sentences", "0", "--test-fraction", "0", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (tmp_path / "translator.npz").exists() and "saved translator.npz" in out
    assert rnnkit.load("translator.npz").checkpoint_every == 1
    code = main(["translate", "train", "--help"])
    assert "--checkpoint-every" in capsys.readouterr().out


def _cli(args, stdin, env_extra):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", **env_extra)
    return subprocess.run([sys.executable, "-m", "rnnkit"] + args, input=stdin, capture_output=True, env=env,
                          timeout=120)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "m.npz"
    _small().fit(PAIRS).save(path)
    return path


def test_stdin_over_the_input_limit_is_refused(model_file):
    lines = b"il est grand .\n" * 200                               # 3000 bytes
    r = _cli(["translate", str(model_file)], lines, {"RNNKIT_MAX_INPUT_BYTES": "1000"})
    assert r.returncode == 2 and b"Traceback" not in r.stderr
    err = r.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "stdin" in err and "RNNKIT_MAX_INPUT_BYTES" in err
    ok = _cli(["translate", str(model_file)], b"il est grand .\n" * 3, {"RNNKIT_MAX_INPUT_BYTES": "1000"})
    assert ok.returncode == 0 and len(ok.stdout.decode().splitlines()) == 3


def test_an_endless_line_on_stdin_is_refused_without_reading_it_all():
    from rnnkit.translate.api import stdin_lines

    class Zero:                                                        # /dev/zero: one endless line
        read = 0

        def readline(self, n=-1):
            assert n > 0, "readline must be bounded"
            self.read += n
            return "\0" * n

    z = Zero()
    with pytest.raises(DataError, match="stdin: a line longer than"):
        list(stdin_lines(z, max_bytes=1 << 40))
    assert z.read < 4 << 20


def test_a_beam_search_too_big_for_the_memory_is_refused_before_decoding(model_file, monkeypatch):
    tr = Translator.load(model_file)
    monkeypatch.setattr(translator_mod, "available_memory", lambda: 1 << 30)
    called = []
    monkeypatch.setattr(translator_mod, "beam_search", lambda *a, **k: called.append(1))
    with pytest.raises(HyperparameterError) as e:
        tr.translate(["il est grand ."], beam=1000, max_length=10000)
    msg = str(e.value)
    assert "--beam" in msg and "--max-length" in msg and "GiB" in msg and not called
    monkeypatch.undo()
    with pytest.raises(HyperparameterError, match=r"batch_size \(--batch-size\) must be"):
        tr.translate(["il est grand ."], batch_size=0)
    assert len(tr.translate(["il est grand ."], beam=3, max_length=10)[0]) == 1
