"""One contract, every application: the same tests run over CharModel, RNNForecaster and Translator.

Each case builds a tiny estimator and its data; the tests check what a user of one application may
expect of the others: scikit-learn's clone, get/set params, fit returning self, save and load through
``rnnkit.load`` (and from a checkpoint), resume bit for bit, and a file of another kind refused.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import ModelFileError

TEXT = ("the quick brown fox jumps over the lazy dog. " * 12)
PAIRS = [(f"{a} {b}", f"{b} {a}") for a in ("one", "two", "three", "four") for b in ("red", "blue", "green")]


def _charlm(**kw):
    from rnnkit.charlm import CharModel
    params = dict(cell="gru", hidden_size=8, num_layers=1, embedding_size=4, seq_len=6, batch_size=3,
                  max_steps=6, validation_fraction=0.2, sample_length=0, checkpoint_every=2)
    params.update(kw)
    return CharModel(**params), (TEXT,)


def _forecast(**kw):
    from rnnkit.forecast import RNNForecaster
    params = dict(lookback=6, horizon=2, hidden_size=5, batch_size=8, epochs=50, max_steps=6)
    params.update(kw)
    t = np.arange(80, dtype=np.float64)
    return RNNForecaster(**params), (np.sin(t / 4.0) + 0.01 * t,)


def _translate(**kw):
    from rnnkit.translate import Translator
    # a constant rate: the cosine's length is the run's budget, which the resume test changes (the cosine's own
    # resume with an unchanged budget is tested in test_translate_train)
    params = dict(embedding_size=6, hidden_size=8, batch_size=4, epochs=None, max_steps=6, bleu_sentences=0,
                  dropout=0.0, lr_decay="none")
    params.update(kw)
    return Translator(**params), (PAIRS,)


CASES = {"charlm": _charlm, "forecaster": _forecast, "translator": _translate}
KINDS = list(CASES)


def _state(est):
    return est._network_state()


def _assert_same(a, b):
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k


@pytest.fixture(autouse=True)
def _one_thread(one_blas_thread):
    yield


@pytest.mark.parametrize("kind", KINDS)
def test_clone_and_params_round_trip(kind):
    from sklearn.base import clone
    est, _ = CASES[kind](random_state=3)
    params = est.get_params(deep=True)
    assert params["random_state"] == 3 and "max_minutes" in params and "progress" in params
    copy = clone(est)
    assert copy is not est and copy.get_params() == params
    assert est.set_params(random_state=4) is est and est.get_params()["random_state"] == 4
    with pytest.raises(ValueError, match="invalid parameter"):
        est.set_params(no_such_setting=1)
    assert repr(est).startswith(type(est).__name__ + "(")


@pytest.mark.parametrize("kind", KINDS)
def test_fit_returns_self_and_save_load_round_trip(kind, tmp_path):
    est, data = CASES[kind]()
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.utils.validation import check_is_fitted
    with pytest.raises(SkNotFitted):                # scikit-learn's own check (it raised AttributeError: no tags)
        check_is_fitted(est)
    assert est.fit(*data) is est
    check_is_fitted(est)
    path = est.save(tmp_path / "m.npz")
    back = rnnkit.load(path)
    assert type(back) is type(est) and back.kind == kind
    assert back.get_params() == est.get_params()
    _assert_same(back, est)
    assert type(est).load(path).get_params() == est.get_params()
    assert back.history_ is not None and back.history_.steps == est.history_.steps


@pytest.mark.parametrize("kind", KINDS)
def test_resume_is_bit_for_bit_and_a_checkpoint_loads_like_a_model(kind, tmp_path):
    whole, data = CASES[kind](max_steps=6)
    whole.fit(*data)
    ck = tmp_path / "run.ckpt.npz"
    part, _ = CASES[kind](max_steps=2)          # mid-epoch for every case: the resume skips the batches done
    part.fit(*data, checkpoint_path=ck)
    from_ck = rnnkit.load(ck)                       # a checkpoint works where a model file does
    assert type(from_ck) is type(part)
    resumed, _ = CASES[kind](max_steps=6)
    resumed.fit(*data, checkpoint_path=ck, resume=True)
    assert resumed.history_.steps == whole.history_.steps == 6
    _assert_same(resumed, whole)


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_of_another_kind_is_refused(kind, tmp_path):
    other = next(k for k in KINDS if k != kind)
    est, data = CASES[other]()
    path = est.fit(*data).save(tmp_path / "other.npz")
    cls = type(CASES[kind]()[0])
    with pytest.raises(ModelFileError, match=f"this is a {other} model file, not a {kind} one"):
        cls.load(path)


@pytest.mark.parametrize("kind", KINDS)
def test_unfitted_estimator_says_so(kind, tmp_path):
    from rnnkit.errors import NotFittedError
    est, _ = CASES[kind]()
    with pytest.raises(NotFittedError, match="not fitted yet"):
        est.save(tmp_path / "m.npz")


# a setting each application must refuse to change on resume (it shapes the weights or the batches)
FIXED = {"charlm": {"batch_size": 2}, "forecaster": {"hidden_size": 6}, "translator": {"batch_size": 3}}


@pytest.mark.parametrize("kind", KINDS)
def test_resume_with_other_settings_or_without_a_checkpoint_is_refused(kind, tmp_path):
    from rnnkit.errors import PathError
    ck = tmp_path / "run.ckpt.npz"
    est, data = CASES[kind](max_steps=2)
    with pytest.raises(PathError, match="no checkpoint"):
        est.fit(*data, checkpoint_path=ck, resume=True)
    est.fit(*data, checkpoint_path=ck)
    (name, value), = FIXED[kind].items()
    other, _ = CASES[kind](max_steps=4, **{name: value})
    flag = "--" + name.replace("_", "-")
    with pytest.raises(PathError, match=f"trained with {flag} .*, not {flag} {value}"):
        other.fit(*data, checkpoint_path=ck, resume=True)


@pytest.mark.parametrize("kind", KINDS)
def test_random_state_may_be_a_generator(kind, tmp_path):
    est, data = CASES[kind](random_state=np.random.default_rng(5))
    path = est.fit(*data, checkpoint_path=tmp_path / "run.ckpt.npz").save(tmp_path / "m.npz")
    assert rnnkit.load(path).get_params()["random_state"] is None


@pytest.mark.parametrize("kind", KINDS)
def test_settings_changed_after_fit_are_refused_at_save_not_at_load(kind, tmp_path):
    from rnnkit.errors import NotFittedError
    est, data = CASES[kind]()
    est.fit(*data).set_params(hidden_size=est.hidden_size + 3)
    with pytest.raises(NotFittedError, match="changed since it was fitted.*fit it again"):
        est.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_a_model_file_with_nan_weights_is_refused(kind, tmp_path):
    """Checksums can be recomputed: a file whose weights hold NaN loaded and scored 'loss nan' with exit 0."""
    from rnnkit.io import load_model_file, save_model_file
    est, data = CASES[kind]()
    path = est.fit(*data).save(tmp_path / "m.npz")
    mf = load_model_file(path)
    name = sorted(mf.arrays)[0]
    mf.arrays[name] = np.full_like(mf.arrays[name], np.nan)
    save_model_file(path, kind=mf.kind, config=mf.config, arrays=mf.arrays, meta=mf.meta)
    with pytest.raises(ModelFileError, match="hold NaN or infinity"):
        rnnkit.load(path)


# -- weight decay: one meaning in every application ------------------------------------------------------------
def _music(**kw):
    from rnnkit.music import MusicModel
    rng = np.random.default_rng(0)
    rolls = [(rng.random((int(rng.integers(5, 9)), 88)) < 0.08).astype(np.uint8) for _ in range(6)]
    params = dict(cell="gru", hidden_size=5, batch_size=2, seq_len=4, max_steps=6, checkpoint_every=2)
    params.update(kw)
    return MusicModel(**params), (rolls,)


WD_CASES = dict(CASES, music=_music)


@pytest.mark.parametrize("kind", list(WD_CASES))
def test_weight_decay_is_adamw_on_the_weight_matrices_and_resumes(kind, tmp_path):
    """--weight-decay trains with AdamW whose decay reaches the parameters of two or more dimensions (weights,
    embeddings) and not the biases and gains; it changes the weights, resumes bit for bit, and another value is
    refused on resume (the optimiser's state carries it)."""
    from rnnkit.errors import HyperparameterError, PathError
    from rnnkit.train.checkpoint import load_checkpoint
    whole, data = WD_CASES[kind](weight_decay=0.3)
    whole.fit(*data)
    plain, _ = WD_CASES[kind]()
    plain.fit(*data)
    sw, sp = _state(whole), _state(plain)
    assert any(not np.array_equal(sw[k], sp[k]) for k in sw if sw[k].ndim > 1)
    ck = tmp_path / "run.ckpt.npz"
    part, _ = WD_CASES[kind](weight_decay=0.3, max_steps=2)
    part.fit(*data, checkpoint_path=ck)
    scalars = load_checkpoint(ck).optimizer_state["scalars"]
    assert scalars["optimizer"] == "AdamW" and scalars["hyperparameters"]["weight_decay"] == 0.3
    shapes = scalars["param_shapes"]
    assert scalars["hyperparameters"]["decay_mask"] == [len(s) > 1 for s in shapes]
    assert 0 < sum(len(s) > 1 for s in shapes) < len(shapes)          # both kinds are there
    resumed, _ = WD_CASES[kind](weight_decay=0.3, max_steps=6)
    resumed.fit(*data, checkpoint_path=ck, resume=True)
    _assert_same(resumed, whole)
    other, _ = WD_CASES[kind](weight_decay=0.1, max_steps=6)
    with pytest.raises(PathError, match="trained with --weight-decay 0.3, not --weight-decay 0.1"):
        other.fit(*data, checkpoint_path=ck, resume=True)
    for bad, message in ((-0.1, r"weight_decay \(--weight-decay\) must be"),
                         (1e4, r"would multiply the weights by 1 - \d+ at every step")):
        est, _ = WD_CASES[kind](weight_decay=bad)
        with pytest.raises(HyperparameterError, match=message):
            est.fit(*data)


def test_a_forecaster_checkpoint_from_adams_l2_decay_is_refused_on_resume(tmp_path, monkeypatch):
    """Before 2026-12-05 the forecaster's weight_decay was Adam's L2 term: such a checkpoint's optimiser state
    cannot continue under AdamW, and the refusal says so instead of a failed state load."""
    from rnnkit.errors import PathError
    from rnnkit.forecast import RNNForecaster
    from rnnkit.optim import Adam
    ck = tmp_path / "old.ckpt.npz"
    old, data = _forecast(weight_decay=0.3, max_steps=2)
    monkeypatch.setattr(RNNForecaster, "_optimizer", lambda self, net: Adam(net.parameters(), lr=self.learning_rate,
                                                                          weight_decay=self.weight_decay))
    old.fit(*data, checkpoint_path=ck)
    monkeypatch.undo()
    for wd in (0.3, 0.0):             # refused at once, whatever weight decay the new command asks for
        new, _ = _forecast(weight_decay=wd, max_steps=4)
        with pytest.raises(PathError, match=r"this checkpoint's run trained with Adam's L2 weight decay "
                                            r"\(--weight-decay 0.3, .*start afresh without --resume"):
            new.fit(*data, checkpoint_path=ck, resume=True)


def test_a_damaged_optimiser_state_in_a_checkpoint_is_a_model_file_error_on_resume(tmp_path):
    from rnnkit.errors import ModelFileError
    from rnnkit.train.checkpoint import load_checkpoint, save_checkpoint
    ck = tmp_path / "run.ckpt.npz"
    est, data = _charlm(max_steps=2)
    est.fit(*data, checkpoint_path=ck)
    state = load_checkpoint(ck)
    state.optimizer_state["scalars"] = [1, 2]
    save_checkpoint(ck, state)
    again, _ = _charlm(max_steps=4)
    with pytest.raises(ModelFileError, match="optimiser state: 'scalars' must be a dict"):
        again.fit(*data, checkpoint_path=ck, resume=True)
