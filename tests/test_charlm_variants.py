"""The recurrent variants in the character model: flags, model files that rebuild them, resume, CLI."""

import numpy as np
import pytest

import rnnkit
from rnnkit.charlm import CharModel
from rnnkit.cli.main import main
from rnnkit.errors import HyperparameterError, ModelFileError
from rnnkit.io.modelfile import load_model_file, save_model_file

TEXT = "the quick brown fox jumps over the lazy dog. " * 12
TINY = dict(hidden_size=12, num_layers=2, embedding_size=4, seq_len=8, batch_size=4, learning_rate=1e-2,
            sample_length=0, max_steps=3)
VARIANTS = [dict(cell="lstm", proj_size=5, zoneout=0.1), dict(cell="gru", variational_dropout=0.2, weight_drop=0.3),
            dict(cell="gru", layer_norm=True, zoneout=0.1), dict(cell="lstm", layer_norm=True, proj_size=5),
            dict(cell="lstm", variational_dropout=0.2, weight_drop=0.3, zoneout=0.1, proj_size=6, peephole=True)]


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_a_variant_model_file_records_and_rebuilds_the_variant(kw, tmp_path):
    est = CharModel(**TINY, **kw).fit(TEXT)
    rnn = est.model_.rnn
    for name, value in kw.items():
        if name != "cell":
            assert getattr(rnn, name) == value
    est.save(tmp_path / "m.npz")
    loaded = rnnkit.load(tmp_path / "m.npz")
    assert loaded.get_params() == est.get_params()
    for name, value in kw.items():
        if name != "cell":
            assert getattr(loaded.model_.rnn, name) == value
    a = {n: p.data for n, p in est.model_.named_parameters()}
    b = {n: p.data for n, p in loaded.model_.named_parameters()}
    assert a.keys() == b.keys() and all(np.array_equal(a[n], b[n]) for n in a)
    assert ("rnn.weight_hr_l1" in a) == bool(kw.get("proj_size"))
    assert loaded.score(TEXT[:80]) == est.score(TEXT[:80])          # evaluation is deterministic


def test_resume_of_a_variant_run_is_bit_for_bit(tmp_path):
    kw = dict(TINY, cell="gru", variational_dropout=0.2, weight_drop=0.3, zoneout=0.1, max_steps=4,
              checkpoint_every=2)
    whole = CharModel(**kw).fit(TEXT)
    first = CharModel(**dict(kw, max_steps=2)).fit(TEXT, checkpoint_path=tmp_path / "m.ckpt.npz")
    assert first.history_ is not None
    resumed = CharModel(**kw).fit(TEXT, checkpoint_path=tmp_path / "m.ckpt.npz", resume=True)
    for (n, p), (_, q) in zip(whole.model_.named_parameters(), resumed.model_.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)


def test_a_file_whose_projection_does_not_match_its_arrays_is_refused(tmp_path):
    est = CharModel(**TINY, cell="lstm", proj_size=5).fit(TEXT)
    est.save(tmp_path / "m.npz")
    mf = load_model_file(tmp_path / "m.npz")
    for proj in (4, 0):                          # another projection, or none: the arrays say otherwise
        config = dict(mf.config, params=dict(mf.config["params"], proj_size=proj))
        save_model_file(tmp_path / "bad.npz", kind="charlm", config=config, arrays=mf.arrays, meta={})
        with pytest.raises(ModelFileError, match="the configuration does not match the stored arrays"):
            CharModel.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("params,message", [
    (dict(cell="gru", proj_size=4), "--proj-size"), (dict(proj_size=12), "--proj-size"),
    (dict(zoneout=1.0), "--zoneout"), (dict(weight_drop=-0.5), "--weight-drop"),
    (dict(variational_dropout=2), "--variational-dropout"), (dict(cell="gru", peephole=True), "--peephole"),
    (dict(cell="rnn", layer_norm=True), "--layer-norm"), (dict(layer_norm=True, peephole=True), "--layer-norm")])
def test_bad_variant_settings_name_the_flag(params, message):
    with pytest.raises(HyperparameterError, match=message):
        CharModel(**dict(TINY, **params)).fit(TEXT)


def test_the_cli_has_the_variant_flags(tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_text(TEXT)
    rc = main(["charlm", "train", str(text), "--out", str(tmp_path / "m.npz"), "--hidden-size", "12", "--num-layers", "1",
                      "--embedding-size", "4", "--seq-len", "8", "--batch-size", "4", "--max-steps", "2",
                      "--sample-length", "0", "--proj-size", "5", "--zoneout", "0.1", "--weight-drop", "0.2",
                      "--variational-dropout", "0.1", "--threads", "1"])
    assert rc == 0
    loaded = rnnkit.load(tmp_path / "m.npz")
    assert (loaded.proj_size, loaded.zoneout, loaded.weight_drop, loaded.variational_dropout) == (5, 0.1, 0.2, 0.1)
