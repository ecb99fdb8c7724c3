"""CharModel: the estimator contract (clone, fit/save/load, resume bit for bit) and the safety checks."""

import tracemalloc

import numpy as np
import pytest

import rnnkit
from rnnkit.charlm import CharModel
from rnnkit.errors import HyperparameterError, ModelFileError, NotFittedError, PathError
from rnnkit.io.modelfile import load_model_file, save_model_file

TEXT = "the quick brown fox jumps over the lazy dog. " * 12
TINY = dict(hidden_size=16, num_layers=1, embedding_size=4, seq_len=8, batch_size=4, learning_rate=1e-2,
            sample_length=0)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("est")
    est = CharModel(max_steps=4, validate_every=2, **TINY).fit(TEXT, checkpoint_path=d / "m.ckpt.npz")
    est.save(d / "m.npz")
    return est, d


def _params(est):
    return {n: p.data for n, p in est.model_.named_parameters()}


def test_sklearn_clone_and_params():
    from sklearn.base import clone
    est = CharModel(hidden_size=12, cell="gru", random_state=3)
    copy = clone(est)
    assert copy is not est and copy.get_params() == est.get_params()
    assert est.set_params(hidden_size=7) is est and est.hidden_size == 7
    assert repr(CharModel(hidden_size=12)) == "CharModel(hidden_size=12)"
    with pytest.raises(ValueError, match="invalid parameter 'hidden'"):
        est.set_params(hidden=3)


def test_fit_returns_self_and_save_load_round_trip(fitted, tmp_path):
    est, d = fitted
    assert isinstance(est.history_.steps, int) and est.history_.steps == 4
    again = rnnkit.load(d / "m.npz")
    assert type(again) is CharModel and again.get_params() == est.get_params()
    for name, a in _params(est).items():
        np.testing.assert_array_equal(_params(again)[name], a, err_msg=name)
    assert again.score(TEXT[:200]) == est.score(TEXT[:200])
    assert set(est.score(TEXT[:200])) == {"loss", "bits_per_char", "perplexity", "chars"}
    assert est.score(TEXT[:200])["chars"] == 199
    # a checkpoint can be used wherever a model file can
    from_ckpt = CharModel.load(d / "m.ckpt.npz")
    assert len(from_ckpt.sample(prime="the ", length=20, random_state=1)) == 20


def test_not_fitted_and_bad_input():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        CharModel().sample(length=3)
    with pytest.raises(Exception, match="expected a str, got bytes"):
        CharModel(max_steps=1, **TINY).fit(TEXT.encode())


def test_resume_is_bit_for_bit(tmp_path):
    kw = dict(TINY, num_layers=2, dropout=0.2, validate_every=3, checkpoint_every=2, random_state=5)
    straight = CharModel(max_steps=9, **kw).fit(TEXT)
    ckpt = tmp_path / "r.ckpt.npz"
    CharModel(max_steps=4, **kw).fit(TEXT, checkpoint_path=ckpt)               # "interrupted" at step 4
    resumed = CharModel(max_steps=9, **kw).fit(TEXT, checkpoint_path=ckpt, resume=True)
    assert resumed.history_.steps == 9
    for name, a in _params(straight).items():
        np.testing.assert_array_equal(_params(resumed)[name], a, err_msg=name)


def test_resume_with_another_batch_size_names_the_flag(fitted):
    est, d = fitted
    with pytest.raises(PathError, match=r"trained with --batch-size 4, not --batch-size 2; resume with the same"):
        CharModel(max_steps=8, validate_every=2, **dict(TINY, batch_size=2)).fit(
            TEXT, checkpoint_path=d / "m.ckpt.npz", resume=True)
    with pytest.raises(PathError, match=r"--seq-len 8, not --seq-len 5"):
        CharModel(max_steps=8, **dict(TINY, seq_len=5)).fit(TEXT, checkpoint_path=d / "m.ckpt.npz", resume=True)


def test_huge_hidden_size_is_refused_with_the_memory_it_needs():
    tracemalloc.start()
    try:
        with pytest.raises(HyperparameterError, match=r"need about [\d,.]+ [GT]iB of memory .* choose smaller sizes"):
            CharModel(max_steps=1, **dict(TINY, hidden_size=100_000_000)).fit(TEXT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2 ** 20                  # refused before building anything


def test_the_memory_estimate_counts_chunks_no_longer_than_the_streams(monkeypatch):
    # --seq-len 10,000,000 on a short text was refused as needing ~50 GiB, yet a chunk never outgrows its
    # stream: it trains like --seq-len of the stream length
    import rnnkit.runs
    monkeypatch.setattr(rnnkit.runs, "available_memory", lambda: 2 ** 30)
    est = CharModel(max_steps=2, **dict(TINY, seq_len=10_000_000)).fit(TEXT)
    assert est.history_.steps == 2
    T = (len(TEXT) * 0.9 - 1) // TINY["batch_size"]                             # the stream length, about
    assert est._activation_bytes(40, 4, stream_len=int(T)) == CharModel(**dict(TINY, seq_len=int(T)))._activation_bytes(
        40, 4)
    with pytest.raises(HyperparameterError, match="need about"):               # the hidden size still counts
        CharModel(max_steps=1, **dict(TINY, seq_len=10_000_000, hidden_size=30_000)).fit(TEXT)


def test_crafted_model_file_is_refused_before_building(fitted, tmp_path):
    est, d = fitted
    mf = load_model_file(d / "m.npz")
    config = dict(mf.config, params=dict(mf.config["params"], hidden_size=10 ** 6))
    crafted = tmp_path / "crafted.npz"
    save_model_file(crafted, kind="charlm", config=config, arrays=mf.arrays, meta={})   # valid checksums
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"the configuration does not match the stored arrays") as info:
            CharModel.load(crafted)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value)
    assert peak < 50 * 2 ** 20                  # a 10^6-unit LSTM would need gigabytes
    # a malformed vocabulary or cell is one line too, not a traceback
    for bad in (dict(mf.config, params=dict(mf.config["params"], cell="transformer")),
                dict(mf.config, fitted={"vocab": 3, "dtype": "float32"})):
        save_model_file(crafted, kind="charlm", config=bad, arrays=mf.arrays, meta={})
        with pytest.raises(ModelFileError, match="configuration is malformed"):
            CharModel.load(crafted)


def test_file_of_another_application_is_refused(tmp_path):
    other = tmp_path / "fc.npz"
    save_model_file(other, kind="forecaster", config={"params": {}, "fitted": {}}, arrays={"w": np.ones(2)})
    with pytest.raises(ModelFileError, match="this is a forecaster model file, not a charlm one"):
        CharModel.load(other)


@pytest.mark.parametrize("params,message", [
    (dict(hidden_size=0), r"hidden_size \(--hidden-size\) must be >= 1, got 0"),
    (dict(batch_size=1.5), r"batch_size \(--batch-size\) must be an integer, got 1.5"),
    (dict(learning_rate=float("nan")), r"learning_rate \(--learning-rate\) must be > 0, got nan"),
    (dict(random_state=-1), r"random_state \(--random-state\) must be an integer >= 0, or none for fresh entropy"),
    (dict(cell="lstmm"), r"cell \(--cell\) must be one of 'lstm', 'gru', 'rnn', got 'lstmm'"),
    (dict(validation_fraction=0.6, test_fraction=0.5), r"validation_fraction \(--validation-fraction\) \+ "),
    (dict(sample_length=10 ** 8), r"sample_length \(--sample-length\) must be <= 10,000,000"),
    (dict(num_layers=5000), r"num_layers \(--num-layers\) must be <= 1000"),
    (dict(validation_fraction=0, validate_every=2),                     # it validated nothing, silently
     r"validate_every \(--validate-every\) 2 has nothing to validate: validation_fraction \(--validation-fraction\) "
     r"is 0"),
])
def test_bad_hyperparameters_name_the_flag(params, message):
    with pytest.raises(HyperparameterError, match=message):
        CharModel(max_steps=1, **dict(TINY, **params)).fit(TEXT)


def test_the_better_of_best_validated_and_final_parameters_is_kept():
    """A budget that stops between validations: the final parameters are validated too, the lower loss wins."""
    est = CharModel(max_steps=5, validate_every=2, validation_fraction=0.2, average_checkpoints=0, **TINY).fit(TEXT)
    h, meta = est.history_, est.meta_
    assert [s for s, _ in h.val_loss] == [2, 4] and meta["final_valid"] is not None
    best, last = h.best_val_loss, meta["final_valid"]["loss"]
    assert meta["valid"]["loss"] == pytest.approx(min(best, last), abs=1e-12)
    assert meta["saved_step"] == (5 if last <= best else h.best_step)
    valid_text = TEXT[len(TEXT) - round(0.2 * len(TEXT)):]
    again = est.score(valid_text, batch_size=4, seq_len=8)         # the kept parameters give the kept score
    assert again["loss"] == pytest.approx(meta["valid"]["loss"], abs=1e-9)


@pytest.mark.parametrize("how", ["refused_resume", "short_text", "interrupt"])
def test_a_failed_refit_leaves_the_fitted_model_as_it_was(how, tmp_path, monkeypatch):
    est = CharModel(max_steps=2, **TINY).fit(TEXT)
    before = {n: a.copy() for n, a in _params(est).items()}
    model, vocab, history, meta = est.model_, est.vocab_, est.history_, dict(est.meta_)
    other = "A NEW TEXT WITH OTHER CHARACTERS; " * 20                  # another vocabulary
    if how == "refused_resume":
        with pytest.raises(PathError, match="no checkpoint"):
            est.fit(other, checkpoint_path=tmp_path / "missing.ckpt.npz", resume=True)
    elif how == "short_text":
        with pytest.raises(Exception, match="too few for 4 parallel streams"):
            est.fit("xyz")
    else:                        # Ctrl-C in the final validation, after the new network has trained
        import rnnkit.charlm.estimator as module

        def interrupt(*args, **kwargs):
            raise KeyboardInterrupt
        monkeypatch.setattr(module, "evaluate_ids", interrupt)
        with pytest.raises(KeyboardInterrupt):
            est.fit(other, checkpoint_path=tmp_path / "new.ckpt.npz")
        monkeypatch.undo()
    assert est.model_ is model and est.vocab_ is vocab and est.history_ is history and est.meta_ == meta
    for name, a in _params(est).items():
        np.testing.assert_array_equal(a, before[name], err_msg=name)
    est.save(tmp_path / "after.npz")
    back = CharModel.load(tmp_path / "after.npz")
    assert back.vocab_.chars == vocab.chars and back.history_.steps == 2
    for name, a in _params(back).items():
        np.testing.assert_array_equal(a, before[name], err_msg=name)
    assert back.sample(prime="the ", length=15, random_state=2) == est.sample(prime="the ", length=15,
                                                                              random_state=2)


def test_a_refit_checkpoints_its_own_vocabulary_and_then_replaces_the_model(tmp_path):
    from rnnkit.train.checkpoint import load_checkpoint
    est = CharModel(max_steps=2, **TINY).fit(TEXT)
    other = "A NEW TEXT WITH OTHER CHARACTERS; " * 20
    est.fit(other, checkpoint_path=tmp_path / "c.ckpt.npz")
    assert set(est.vocab_.chars) == set(other)
    assert load_checkpoint(tmp_path / "c.ckpt.npz").config["fitted"]["vocab"] == list(est.vocab_.chars)
    assert "_pending" not in est.__dict__


def test_checkpoint_every_documents_none():
    from rnnkit.cli.builder import param_docs
    doc = param_docs(CharModel)["checkpoint_every"]
    assert "none = only at each epoch's end" in doc and "Ctrl-C" in doc


def test_beam_means_the_number_of_beams(fitted):
    est, _ = fitted
    assert est.sample(prime="the ", length=25, beam=1) == est.sample(prime="the ", length=25, temperature=0)
    # beam None (the default) samples: the seed matters
    a = [est.sample(prime="the ", length=40, temperature=2.0, random_state=s) for s in range(4)]
    assert len(set(a)) > 1 and est.sample(prime="the ", length=40, temperature=2.0, random_state=1) == a[1]
    with pytest.raises(HyperparameterError, match=r"^beam \(--beam\) must be >= 1, got 0: .*leave --beam out to "
                                                  r"sample$"):
        est.sample(length=5, beam=0)
    with pytest.raises(HyperparameterError, match=r"beam \(--beam\) must be an integer, got True"):
        est.sample(length=5, beam=True)
    with pytest.raises(HyperparameterError, match=r"temperature \(--temperature\) must be >= 0, got -1"):
        est.sample(length=5, beam=2, temperature=-1)          # ignored by the search, still not accepted
