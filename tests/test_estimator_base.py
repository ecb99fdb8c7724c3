"""The shared estimator base (rnnkit.estimator) on a tiny estimator defined here.

``Tiny`` is a linear regressor y = x W^T + b trained with rnnkit.train.fit
through the base's ``_fit_loop``; its kind is registered for the test by
monkeypatching ``rnnkit.estimator.KINDS``.
"""

import os

import numpy as np
import pytest
from sklearn.base import clone

import rnnkit
from rnnkit import estimator as est_mod
from rnnkit.errors import HyperparameterError, ModelFileError, NotFittedError, PathError
from rnnkit.estimator import (Estimator, checkpoint_beside, fingerprint, flag_of, thin_history)
from rnnkit.io.modelfile import load_model_file, save_model_file
from rnnkit.nn import Linear
from rnnkit.nn.shapes import linear_shapes
from rnnkit.optim import SGD
from rnnkit.train import History


class Tiny(Estimator):
    """y = x W^T + b, fitted by mean squared error.

    Parameters
    ----------
    hidden_size : outputs per sample.
    learning_rate : SGD step size.
    epochs : passes over the data.
    max_steps : stop after this many steps (none: no limit).
    max_minutes : stop after this many minutes (none: no limit).
    random_state : seed (none: fresh entropy).
    progress : progress bar while training.
    """

    kind = "tiny"
    _resume_fixed = ("hidden_size",)
    restored = []                       # every _restore call, to check what happens before it

    def __init__(self, hidden_size=2, learning_rate=0.1, epochs=3, max_steps=None, max_minutes=None,
                 random_state=0, progress=False):
        self.hidden_size = hidden_size
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.max_steps = max_steps
        self.max_minutes = max_minutes
        self.random_state = random_state
        self.progress = progress

    def fit(self, X, *, checkpoint_path=None, resume=False):
        X = np.asarray(X, dtype=np.float64)                      # (M, D)
        seed = self._seed()
        fitted = {"n_features": int(X.shape[1])}
        self._check_memory(self._parameter_shapes(fitted), np.float64)
        net = Linear(X.shape[1], self.hidden_size, dtype=np.float64, rng=seed)
        Y = np.repeat(X.sum(axis=1, keepdims=True), self.hidden_size, axis=1)  # (M, H)

        def step(idx, ctx):
            y, cache = net.forward(X[idx])                       # (B, H)
            net.backward(2 * (y - Y[idx]) / y.size, cache)
            return float(np.mean((y - Y[idx]) ** 2)), len(idx)

        def batches(epoch, rng):
            order = rng.permutation(len(X))
            return [order[i:i + 4] for i in range(0, len(X), 4)]

        self.n_features_ = fitted["n_features"]
        self.net_ = net
        self.history_ = self._fit_loop(net, SGD(net.parameters(), lr=self.learning_rate), step, batches,
                                       seed=seed, checkpoint_path=checkpoint_path, resume=resume,
                                       data_fingerprint=fingerprint(X), epochs=self.epochs,
                                       max_steps=self.max_steps, max_minutes=self.max_minutes,
                                       progress=self.progress)
        return self

    def predict(self, X):
        self._check_fitted()
        return self.net_.forward(np.asarray(X, dtype=np.float64))[0]

    def _fitted_config(self):
        return {"n_features": self.n_features_}

    def _parameter_shapes(self, fitted):
        return linear_shapes("", fitted["n_features"], self.hidden_size)

    def _restore(self, fitted, arrays, meta):
        type(self).restored.append(fitted)
        self.n_features_ = fitted["n_features"]
        self.net_ = Linear(self.n_features_, self.hidden_size, dtype=np.float64)
        self.net_.load_state_dict(arrays)

    def _network_state(self):
        return self.net_.state_dict()


class Other(Tiny):
    """Another application's estimator: files of one are refused by the other."""

    kind = "other"


@pytest.fixture(autouse=True)
def kinds(monkeypatch):
    monkeypatch.setattr(est_mod, "KINDS", {**est_mod.KINDS, "tiny": f"{__name__}:Tiny", "other": f"{__name__}:Other"})
    Tiny.restored = []


@pytest.fixture
def X():
    return np.random.default_rng(1).standard_normal((16, 3))


@pytest.fixture
def saved(tmp_path, X):
    path = tmp_path / "tiny.npz"
    model = Tiny(hidden_size=2, epochs=2).fit(X)
    model.save(path, meta={"note": "hello"})
    return path, model


# -- parameters -------------------------------------------------------------------
def test_get_set_params_and_repr():
    m = Tiny(hidden_size=5)
    assert m.get_params() == m.get_params(deep=True) == {
        "hidden_size": 5, "learning_rate": 0.1, "epochs": 3, "max_steps": None, "max_minutes": None,
        "random_state": 0, "progress": False}
    assert m.set_params(epochs=7, random_state=None) is m and m.epochs == 7 and m.random_state is None
    with pytest.raises(ValueError, match="invalid parameter 'hidden' for Tiny"):
        m.set_params(hidden=3)
    assert repr(m) == "Tiny(epochs=7, hidden_size=5, random_state=None)"


def test_sklearn_clone_copies_params_not_the_fit(X):
    m = Tiny(hidden_size=3, learning_rate=0.05).fit(X)
    c = clone(m)
    assert type(c) is Tiny and c.get_params() == m.get_params()
    assert not hasattr(c, "history_")
    with pytest.raises(NotFittedError, match="not fitted yet"):
        c.predict(X)
    with pytest.raises(NotFittedError):
        c.save("never.npz")


# -- files --------------------------------------------------------------------------
def test_save_load_round_trip(saved, X):
    path, model = saved
    back = Tiny.load(path)
    assert type(back) is Tiny and back.get_params() == model.get_params()
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    assert back.history_.steps == model.history_.steps == 8            # 2 epochs x 4 batches
    assert back.meta_["note"] == "hello" and "history" not in back.meta_
    assert load_model_file(path).kind == "tiny"


def test_save_and_checkpoints_do_not_destroy_other_files(saved, tmp_path, X):
    # save() and fit(checkpoint_path=...) wrote over any file: a script, a checkpoint, another application's model
    path, model = saved
    script = tmp_path / "victim.py"
    script.write_text("print(1)\n")
    with pytest.raises(PathError, match=r"^path .*victim.py already exists and is not a .npz file"):
        model.save(script)
    with pytest.raises(PathError, match=r"^checkpoint_path .*victim.py already exists and is not a .npz file"):
        Tiny(epochs=1).fit(X, checkpoint_path=script)
    other = tmp_path / "other.npz"
    Other(hidden_size=2, epochs=1).fit(X).save(other)
    with pytest.raises(PathError, match=r"^path .*other.npz is an rnnkit other model file; writing a tiny model "
                                        r"there would destroy it: choose another path$"):
        model.save(other)
    with pytest.raises(PathError, match=r"^checkpoint_path .*tiny.npz is an rnnkit tiny model file; writing the "
                                        r"checkpoints there would destroy it"):
        Tiny(epochs=1).fit(X, checkpoint_path=path)
    ckpt = tmp_path / "run.ckpt.npz"
    Tiny(epochs=1).fit(X, checkpoint_path=ckpt)
    with pytest.raises(PathError, match="is a training checkpoint, not a model file"):
        model.save(ckpt)
    assert script.read_text() == "print(1)\n" and load_model_file(other).kind == "other"
    assert load_model_file(ckpt).kind == "checkpoint"
    model.save(path)                                    # its own kind, again: replaced as ever
    Tiny(epochs=1).fit(X, checkpoint_path=ckpt)         # a checkpoint: a new run's replaces it


def test_rnnkit_load_dispatches_by_kind(saved, tmp_path, X):
    path, model = saved
    assert type(rnnkit.load(path)) is Tiny
    other = tmp_path / "other.npz"
    Other(hidden_size=2, epochs=1).fit(X).save(other)
    assert type(rnnkit.load(other)) is Other


def test_rnnkit_load_reads_a_training_checkpoint(tmp_path, X):
    ckpt = tmp_path / "run.ckpt.npz"
    model = Tiny(epochs=2).fit(X, checkpoint_path=ckpt)
    back = rnnkit.load(ckpt)
    assert type(back) is Tiny and back.history_.steps == model.history_.steps
    np.testing.assert_array_equal(back.predict(X), model.predict(X))


def test_wrong_kind_is_refused_by_cls_load(saved):
    path, _ = saved
    with pytest.raises(ModelFileError, match="this is a tiny model file, not a other one"):
        Other.load(path)
    assert Tiny.restored == []


def test_another_applications_checkpoint_is_called_a_checkpoint(tmp_path, X):
    ckpt = tmp_path / "r.ckpt.npz"
    Tiny(epochs=1).fit(X, checkpoint_path=ckpt)
    with pytest.raises(ModelFileError, match=r"r.ckpt.npz: this is the checkpoint of a tiny run, not a other one"):
        Other.load(ckpt)                                        # it was "a tiny model file"


def test_unknown_kind_is_refused(tmp_path):
    path = tmp_path / "alien.npz"
    save_model_file(path, kind="alien", config={"params": {}, "fitted": {}}, arrays={})
    with pytest.raises(ModelFileError, match="kind 'alien', which this rnnkit does not know"):
        rnnkit.load(path)


def _crafted(tmp_path, saved, params=None, fitted=None, arrays=None):
    path, model = saved
    mf = load_model_file(path)
    config = {"params": {**mf.config["params"], **(params or {})}, "fitted": {**mf.config["fitted"], **(fitted or {})}}
    out = tmp_path / "crafted.npz"
    save_model_file(out, kind="tiny", config=config, arrays=mf.arrays if arrays is None else arrays)
    return out, mf.arrays


@pytest.mark.parametrize("change,expect", [
    (dict(params={"hidden_size": 10 ** 8}), "bias is (2,), the configuration says (100000000,)"),
    (dict(fitted={"n_features": 10 ** 9}), "the configuration says (2, 1000000000)"),
    (dict(arrays="extra"), "unexpected ['extra']"),
    (dict(arrays="missing"), "missing ['bias']"),
    (dict(fitted={"n_features": "many"}), "configuration is malformed"),
])
def test_crafted_config_is_refused_before_restore(tmp_path, saved, change, expect):
    if change.get("arrays") == "extra":
        arrays = dict(load_model_file(saved[0]).arrays, extra=np.zeros(3))
        change = {"arrays": arrays}
    elif change.get("arrays") == "missing":
        arrays = {"weight": load_model_file(saved[0]).arrays["weight"]}
        change = {"arrays": arrays}
    path, _ = _crafted(tmp_path, saved, **change)
    for loader in (Tiny.load, rnnkit.load):
        with pytest.raises(ModelFileError) as info:
            loader(path)
        assert expect in str(info.value), str(info.value)
    assert Tiny.restored == []                                 # nothing was built from the crafted config


def test_unknown_params_in_a_file_are_ignored_not_passed(tmp_path, saved):
    path, _ = _crafted(tmp_path, saved, params={"exec_me": "rm -rf /"})
    assert not hasattr(Tiny.load(path), "exec_me")


# -- shared checks ---------------------------------------------------------------------
def test_check_memory_refuses_with_the_number(monkeypatch):
    monkeypatch.setattr(rnnkit.runs, "available_memory", lambda: 1 << 30)
    m = Tiny()
    with pytest.raises(HyperparameterError) as info:
        m._check_memory({"w": (100_000, 10_000)}, np.float32)
    msg = str(info.value)
    assert "need about 14.9 GiB" in msg and "1,000,000,000 parameters" in msg and "1.0 GiB is available" in msg
    assert "--hidden-size" in msg
    m._check_memory({"w": (1000, 1000)}, np.float32)           # 16 MB: fine
    with pytest.raises(HyperparameterError, match="plus activations"):
        m._check_memory({"w": (10, 10)}, np.float32, extra_bytes=2 << 30)


def test_check_memory_through_fit_refuses_before_allocating(monkeypatch, X):
    monkeypatch.setattr(rnnkit.runs, "available_memory", lambda: 1 << 30)
    with pytest.raises(HyperparameterError, match="400,000,000 parameters"):
        Tiny(hidden_size=100_000_000).fit(X)


def test_check_memory_where_memory_is_unknown(monkeypatch):
    monkeypatch.setattr(rnnkit.runs, "available_memory", lambda: None)
    Tiny()._check_memory({"w": (10 ** 6, 10 ** 6)}, np.float32)   # nothing to compare with: no refusal


def test_thin_history_caps_curves():
    h = {"train": [[i, float(i)] for i in range(10_000)], "lr": [[0, 0.1]], "steps": 10_000}
    t = thin_history(h)
    assert len(t["train"]) == 500 and t["train"][0] == [0, 0.0] and t["train"][-1] == [9999, 9999.0]
    assert t["lr"] == [[0, 0.1]] and t["steps"] == 10_000 and len(h["train"]) == 10_000
    assert thin_history(h, points=10)["train"][-1] == [9999, 9999.0] and len(thin_history(h, 10)["train"]) == 10
    assert thin_history(None) is None


def test_saved_model_files_keep_a_thinned_history(tmp_path, saved):
    _, model = saved
    model.history_ = History(train=[(i, 1.0) for i in range(1, 5001)], steps=5000)
    path = tmp_path / "long.npz"
    model.save(path)
    back = Tiny.load(path)
    assert len(back.history_.train) == 500 and back.history_.train[-1] == (5000, 1.0) and back.history_.steps == 5000


def test_seed():
    assert Tiny(random_state=7)._seed() == 7 and Tiny(random_state=np.int64(7))._seed() == 7
    fresh = {Tiny(random_state=None)._seed() for _ in range(5)}
    assert len(fresh) > 1 and all(0 <= s < 2 ** 31 - 1 for s in fresh)
    a = Tiny(random_state=np.random.default_rng(3))._seed()
    assert a == Tiny(random_state=np.random.default_rng(3))._seed()
    for bad in (-1, True, "7", 1.5):
        with pytest.raises(HyperparameterError, match=r"random_state \(--random-state\) must be"):
            Tiny(random_state=bad)._seed()


def test_same_seed_same_fit(X):
    a, b = Tiny(random_state=4).fit(X), Tiny(random_state=4).fit(X)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


# -- resume -------------------------------------------------------------------------------
def test_resume_continues_bit_for_bit(tmp_path, X):
    whole = Tiny(epochs=4).fit(X)
    ckpt = tmp_path / "r.ckpt.npz"
    Tiny(epochs=2).fit(X, checkpoint_path=ckpt)
    resumed = Tiny(epochs=4).fit(X, checkpoint_path=ckpt, resume=True)
    assert resumed.history_.steps == 16
    np.testing.assert_array_equal(resumed.predict(X), whole.predict(X))


def test_resume_with_other_settings_or_data_is_refused(tmp_path, X):
    ckpt = tmp_path / "r.ckpt.npz"
    Tiny(epochs=1).fit(X, checkpoint_path=ckpt)
    with pytest.raises(PathError, match="trained with --hidden-size 2, not --hidden-size 3"):
        Tiny(hidden_size=3, epochs=2).fit(X, checkpoint_path=ckpt, resume=True)
    with pytest.raises(PathError, match="trained on other data"):
        Tiny(epochs=2).fit(X + 1, checkpoint_path=ckpt, resume=True)
    # the optimiser's learning rate comes back from the checkpoint: another one was silently ignored
    with pytest.raises(PathError, match="trained with --max-steps none, not --max-steps 3"):
        type("Fixed", (Tiny,), {"_resume_fixed": ("max_steps",)})(epochs=2, max_steps=3).fit(
            X, checkpoint_path=ckpt, resume=True)            # None is spelled as the CLI takes it
    lr = Tiny().learning_rate
    with pytest.raises(PathError, match=f"trained with --learning-rate {lr}, not --learning-rate {lr * 2}"):
        Tiny(epochs=2, learning_rate=lr * 2).fit(X, checkpoint_path=ckpt, resume=True)
    with pytest.raises(PathError, match="not from a other run"):
        Other(epochs=2).fit(X, checkpoint_path=ckpt, resume=True)


# -- small helpers -----------------------------------------------------------------------
def test_helpers():
    assert flag_of("hidden_size") == "hidden_size (--hidden-size)"
    assert checkpoint_beside("run.npz") == "run.ckpt.npz" and checkpoint_beside("run") == "run.ckpt.npz"
    assert checkpoint_beside(os.path.join("d", "m.npz")) == os.path.join("d", "m.ckpt.npz")
    a = np.arange(3.0)
    assert fingerprint(a, "x") == fingerprint(a.copy(), "x")
    assert fingerprint(a, "x") != fingerprint(a.astype(np.float32), "x") != fingerprint(a, "y")


def test_load_refuses_a_fifo_without_blocking(tmp_path):
    import threading
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    box = {}

    def load():
        try:
            rnnkit.load(fifo)
        except Exception as e:          # noqa: BLE001 - checked below
            box["error"] = e
    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "rnnkit.load blocked on a FIFO"
    assert isinstance(box.get("error"), PathError) and "is a FIFO" in str(box["error"])


# -- the shared run preamble, resume rules and memory room ------------------------
def _checkpoint(path, interrupt_at=None, steps=3, config=None):
    """A real checkpoint of a tiny fit(); interrupted at ``interrupt_at`` (so unfinished) or finished."""
    from rnnkit import optim
    from rnnkit.nn import Linear
    from rnnkit.train import fit

    model = Linear(2, 1, dtype=np.float64, rng=0)
    x = np.ones((4, 2))

    def step_fn(batch, ctx):
        y, cache = ctx.model.forward(x)
        ctx.model.backward(np.ones_like(y), cache)
        return float(y.sum()), 4

    def stop(event, info):
        if event == "step" and info["step"] == interrupt_at:
            raise KeyboardInterrupt

    try:
        fit(model, optim.SGD(model.parameters(), lr=0.1), step_fn, lambda e, r: [0], seed=0, max_steps=steps,
            checkpoint_path=path, checkpoint_every=1, callbacks=[stop], progress=False, config=config)
    except KeyboardInterrupt:
        pass


def test_a_fresh_run_does_not_overwrite_an_unfinished_checkpoint(tmp_path):
    from rnnkit.errors import PathError
    from rnnkit.estimator import prepare_run
    out = tmp_path / "run.npz"
    ckpt = tmp_path / "run.ckpt.npz"
    _checkpoint(ckpt, interrupt_at=2)
    before = ckpt.read_bytes()
    with pytest.raises(PathError, match=r"run\.ckpt\.npz \(the checkpoint beside --out\) holds a run interrupted "
                                        r"at step 2; continue it with --resume, or delete the file"):
        prepare_run(out, resume=False)
    assert ckpt.read_bytes() == before
    assert prepare_run(out, resume=True) == str(ckpt)
    _checkpoint(ckpt)                                   # a finished run's checkpoint may be replaced
    assert prepare_run(out, resume=False) == str(ckpt)
    ckpt.write_bytes(b"not a checkpoint")              # someone else's file: refused, not overwritten
    with pytest.raises(PathError, match=r"beside --out\) is not a readable rnnkit checkpoint .*; move it away"):
        prepare_run(out, resume=False)


@pytest.mark.parametrize("interrupt_at", [2, None])
def test_out_naming_a_checkpoint_is_refused_before_it_is_overwritten(tmp_path, interrupt_at):
    """`--out run.ckpt.npz` once wrote a music or translation model over an interrupted run's checkpoint."""
    from rnnkit.errors import PathError
    from rnnkit.estimator import prepare_run
    ckpt = tmp_path / "run.ckpt.npz"
    _checkpoint(ckpt, interrupt_at=interrupt_at)
    before = ckpt.read_bytes()
    with pytest.raises(PathError, match=r"--out .*run\.ckpt\.npz is a training checkpoint, not a model file; "
                                        r"writing the model there would destroy it: choose another --out"):
        prepare_run(ckpt, resume=False)
    assert ckpt.read_bytes() == before
    model = tmp_path / "model.npz"
    model.write_bytes(b"an old model or anything else: replaced as before")
    assert prepare_run(model, resume=False) == str(tmp_path / "model.ckpt.npz")


def test_another_applications_unfinished_checkpoint_is_not_offered_to_resume(tmp_path):
    from rnnkit.errors import PathError
    from rnnkit.estimator import prepare_run
    out, ckpt = tmp_path / "run.npz", tmp_path / "run.ckpt.npz"
    _checkpoint(ckpt, interrupt_at=2, config={"kind": "charlm"})
    # --resume would be refused (another kind), so the advice is another --out, not --resume
    with pytest.raises(PathError, match=r"holds a charlm run interrupted at step 2, not a forecaster run; choose "
                                        r"another --out for this one"):
        prepare_run(out, resume=False, kind="forecaster")
    with pytest.raises(PathError, match=r"holds a run interrupted at step 2; continue it with --resume"):
        prepare_run(out, resume=False, kind="charlm")


def test_resume_needs_the_checkpoint(tmp_path):
    from rnnkit.errors import PathError
    from rnnkit.estimator import prepare_run
    with pytest.raises(PathError, match=r"--resume: there is no checkpoint .*run\.ckpt\.npz beside --out"):
        prepare_run(tmp_path / "run.npz", resume=True)
    with pytest.raises(PathError, match="is also the input TEXT"):
        prepare_run(tmp_path / "in.txt", resume=False, inputs={"TEXT": tmp_path / "in.txt"})


def test_cgroup_limit_caps_the_available_memory(tmp_path, monkeypatch):
    import rnnkit.runs as est
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("400000\n")
    assert est._cgroup_room(str(tmp_path)) == 600000
    (tmp_path / "memory.max").write_text("max\n")
    assert est._cgroup_room(str(tmp_path)) is None
    monkeypatch.setattr(est, "_cgroup_room", lambda: 12345)
    assert est.available_memory() == 12345


def test_resume_names_a_changed_switch_as_the_cli_takes_it(tmp_path):
    # "trained with --layer-norm False, not --layer-norm True": a flag the CLI does not take
    from rnnkit.charlm import CharModel
    text = "the quick brown fox jumps over the lazy dog. " * 12
    tiny = dict(hidden_size=8, num_layers=1, seq_len=8, batch_size=4, sample_length=0, progress=False)
    ckpt = tmp_path / "c.ckpt.npz"
    CharModel(max_steps=2, **tiny).fit(text, checkpoint_path=ckpt)
    with pytest.raises(PathError, match=r"trained with no --layer-norm, not --layer-norm; resume with the same"):
        CharModel(max_steps=4, layer_norm=True, **tiny).fit(text, checkpoint_path=ckpt, resume=True)


def test_resume_refuses_another_lr_decay_and_words_a_longer_decay(tmp_path):
    # another --lr-decay changes every later learning rate: it was accepted with a warning printing a raw dict
    from rnnkit.charlm import CharModel
    text = "the quick brown fox jumps over the lazy dog. " * 12
    tiny = dict(hidden_size=8, num_layers=1, seq_len=8, batch_size=4, sample_length=0, progress=False)
    ckpt = tmp_path / "c.ckpt.npz"
    CharModel(max_steps=4, **tiny).fit(text, checkpoint_path=ckpt)
    with pytest.raises(PathError, match="trained with --lr-decay none, not --lr-decay cosine; resume with the same"):
        CharModel(max_steps=8, lr_decay="cosine", **tiny).fit(text, checkpoint_path=ckpt, resume=True)
    CharModel(max_steps=4, lr_decay="cosine", **tiny).fit(text, checkpoint_path=ckpt)
    with pytest.warns(RuntimeWarning, match=r"with another learning-rate schedule: cosine from 0.002 to 0.0001 over "
                                            r"8 steps, not cosine from 0.002 to 0.0001 over 4 steps; the rate follows "
                                            r"the new one from step 4$"):
        CharModel(max_steps=8, lr_decay="cosine", **tiny).fit(text, checkpoint_path=ckpt, resume=True)


def test_a_resume_under_another_random_state_records_the_seed_that_ran(tmp_path):
    # the run continues with the checkpoint's seed; the model file recorded the other one, so a re-fit from
    # its settings would not give the model
    from rnnkit.charlm import CharModel
    text = "the quick brown fox jumps over the lazy dog. " * 12
    tiny = dict(hidden_size=8, num_layers=1, seq_len=8, batch_size=4, sample_length=0, progress=False, dropout=0.0)
    ckpt = tmp_path / "c.ckpt.npz"
    CharModel(max_steps=2, random_state=7, **tiny).fit(text, checkpoint_path=ckpt)
    with pytest.warns(RuntimeWarning, match="continues with its own seed 7"):
        resumed = CharModel(max_steps=4, random_state=8, **tiny).fit(text, checkpoint_path=ckpt, resume=True)
    assert resumed.random_state == 7
    resumed.save(tmp_path / "m.npz")
    again = CharModel.load(tmp_path / "m.npz")
    assert again.random_state == 7
    whole = CharModel(**dict(again.get_params(), progress=False)).fit(text)
    for (name, a), b in zip(whole.model_.state_dict().items(), resumed.model_.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
