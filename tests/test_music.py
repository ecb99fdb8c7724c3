"""rnnkit music: reading both file forms, the baseline, the model's gradients, train/eval/sample, refusals."""

import json
import math

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.errors import DataError
from rnnkit.music import MusicModel, MusicNet, marginal_baseline, read_rolls
from rnnkit.music.midi import roll_to_midi_bytes
from tests.helpers import assert_grad_close, numeric_grad, sample_indices

scipy_io = pytest.importorskip("scipy.io")


def _rolls(rng, n, lo=3, hi=9):
    return [(rng.random((int(rng.integers(lo, hi)), 88)) < 0.08).astype(np.uint8) for _ in range(n)]


def _cell(rolls):
    c = np.empty((1, len(rolls)), dtype=object)
    for i, r in enumerate(rolls):
        c[0, i] = r
    return c


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return {"train": _rolls(rng, 12), "valid": _rolls(rng, 4), "test": _rolls(rng, 4)}


@pytest.fixture
def matfile(tmp_path, data):
    path = tmp_path / "tiny.mat"
    scipy_io.savemat(path, {f"{s}data": _cell(data[s]) for s in ("train", "valid", "test")})
    return path


def _pitches(roll):
    return [[int(k) + 21 for k in np.flatnonzero(step)] for step in roll]


def test_both_file_forms_read_the_same_rolls(tmp_path, matfile, data):
    js = tmp_path / "tiny.json"
    js.write_text(json.dumps({s: [_pitches(r) for r in data[s]] for s in data}))
    for path in (matfile, js):
        got = read_rolls(path)
        for s in data:
            assert len(got[s]) == len(data[s])
            for a, b in zip(got[s], data[s]):
                assert a.dtype == np.uint8 and np.array_equal(a, b)


def test_marginal_baseline_by_hand():
    train = [np.array([[1] + [0] * 87, [0] * 88], np.uint8)]                   # key 0 sounds in 1 of 2 frames
    test = [np.array([[0] * 88, [1] + [0] * 87, [0] * 88], np.uint8)]          # predicted: steps 1 and 2
    p0, p_other = 2 / 4, 1 / 4                                                 # add-one smoothed frequencies
    expected = (-(math.log(p0) + math.log(1 - p0)) - 2 * 87 * math.log(1 - p_other)) / 2
    assert marginal_baseline(train, test) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_model_gradient_matches_central_differences(cell):
    rng = np.random.default_rng(1)
    net = MusicNet(cell, 4, 1, dtype=np.float64, rng=2)
    for p in net.parameters():
        p.data[...] = rng.normal(0, 0.3, p.data.shape)                         # non-zero biases too
    rolls = _rolls(rng, 3, 3, 6)                                               # padded batch, T >= 3
    net.zero_grad()
    total, M = net.nll(rolls, backward=True)
    for name, p in net.named_parameters():
        num = numeric_grad(lambda: net.nll(rolls)[0] / M, p.data, indices=sample_indices(rng, p.data.size, 8))
        assert_grad_close(p.grad, num, name)


def test_train_eval_sample_cli(tmp_path, matfile, capsys):
    out = tmp_path / "m.npz"
    rc = main(["music", "train", str(matfile), "--cell", "gru", "--hidden-size", "6", "--max-steps", "4",
               "--batch-size", "3", "--seq-len", "5", "--out", str(out), "--no-progress", "--threads", "1"])
    text = capsys.readouterr().out
    assert rc == 0 and "marginal per-key baseline" in text and "test" in text
    model = rnnkit.load(out)
    assert isinstance(model, MusicModel) and model.history_.steps == 4
    data = read_rolls(matfile)
    assert main(["music", "eval", str(out), str(matfile)]) == 0
    text = capsys.readouterr().out
    assert f"{model.score(data['test'])['nll']:.3f}" in text
    assert f"{marginal_baseline(data['train'], data['test']):.3f}" in text
    midi, png = tmp_path / "s.mid", tmp_path / "s.png"
    assert main(["music", "sample", str(out), "--length", "12", "--midi", str(midi), "--png", str(png),
                 "--random-state", "3"]) == 0
    mido = pytest.importorskip("mido")
    notes = [m for m in mido.MidiFile(midi).tracks[0] if m.type == "note_on"]
    roll = model.sample(12, random_state=3)
    assert len(notes) == int((np.diff(np.vstack([np.zeros((1, 88)), roll]), axis=0) > 0).sum())
    assert png.read_bytes()[:4] == b"\x89PNG"
    # the MIDI header's limits are the flags' ranges: 273 steps a beat and 4 bpm write, one past is one line
    for flag, ok, bad, message in (("--steps-per-beat", "273", "274", "must be an integer in [1, 273]"),
                                   ("--tempo-bpm", "4", "3.9", "must be in [4, 1000]")):
        assert main(["music", "sample", str(out), "--length", "3", "--midi", str(midi), flag, ok]) == 0
        capsys.readouterr()
        before = midi.read_bytes()
        assert main(["music", "sample", str(out), "--length", "3", "--midi", str(midi), flag, bad]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and midi.read_bytes() == before, err


def test_midi_round_trip():
    mido = pytest.importorskip("mido")
    import io
    roll = np.zeros((4, 88), np.uint8)
    roll[0:2, 39] = 1                                                          # middle C (MIDI 60) for 2 steps
    roll[3, 40] = 1
    mid = mido.MidiFile(file=io.BytesIO(roll_to_midi_bytes(roll)))
    events = [(m.type, m.note, m.time) for m in mid.tracks[0] if m.type in ("note_on", "note_off")]
    assert events == [("note_on", 60, 0), ("note_off", 60, 240), ("note_on", 61, 120), ("note_off", 61, 120)]


def test_save_load_round_trip(data, tmp_path):
    m = MusicModel(cell="lstm", hidden_size=5, max_steps=2, batch_size=2, seq_len=4).fit(data["train"])
    m.save(tmp_path / "m.npz")
    back = MusicModel.load(tmp_path / "m.npz")
    assert back.score(data["test"]) == m.score(data["test"])


def _bad_files(tmp_path, data):
    no_keys = tmp_path / "nokeys.mat"
    scipy_io.savemat(no_keys, {"train": _cell(data["train"])})
    not_binary = tmp_path / "notbinary.mat"
    bad = [r.copy() for r in data["train"]]
    bad[2][0, 5] = 3
    scipy_io.savemat(not_binary, {"traindata": _cell(bad), "validdata": _cell(data["valid"]),
                                  "testdata": _cell(data["test"])})
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"train": [[[60]]], "valid": [[[60], [62]]], "test": [[[60], [62]]]}))
    notes = tmp_path / "pitch.json"
    notes.write_text(json.dumps({"train": [[[60], [200]]], "valid": [], "test": []}))
    other = tmp_path / "rolls.txt"
    other.write_text("0 1\n")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    huge, nan = tmp_path / "huge.json", tmp_path / "nan.json"       # valid JSON numbers int() cannot take
    huge.write_text('{"train": [[[60], [1e400]]], "valid": [], "test": []}')
    nan.write_text('{"train": [[[60], [NaN]]], "valid": [], "test": []}')
    return {"no_keys": (no_keys, "has no traindata"), "not_binary": (not_binary, "other than 0 and 1"),
            "short": (short, "at least 2"), "pitch": (notes, "not a piano key"),
            "ext": (other, "got the extension '.txt'"), "deep": (deep, "nested too deeply"),
            "huge": (huge, "train piece 0, step 1: pitch inf is not a piano key (MIDI 21 to 108)"),
            "nan": (nan, "train piece 0, step 1: pitch nan is not a piano key (MIDI 21 to 108)")}


@pytest.mark.parametrize("case", ["no_keys", "not_binary", "short", "pitch", "ext", "deep", "huge", "nan"])
def test_bad_data_is_one_line_exit_2(case, tmp_path, data, capsys):
    path, expect = _bad_files(tmp_path, data)[case]
    rc = main(["music", "train", str(path), "--out", str(tmp_path / "m.npz"), "--max-steps", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and expect in err and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(DataError):
        read_rolls(path)


def test_bad_cell_is_one_line_exit_2(tmp_path, matfile, capsys):
    rc = main(["music", "train", str(matfile), "--cell", "transformer", "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and "--cell" in err and err.count("\n") == 1


def test_validation_fraction_holds_out_the_last_training_pieces(data, tmp_path):
    from rnnkit.music import train
    mat = tmp_path / "v.mat"
    scipy_io.savemat(mat, {f"{s}data": _cell(data[s]) for s in ("train", "valid", "test")})
    run = train(mat, out=tmp_path / "m.npz", progress=False, cell="rnn", hidden_size=3, max_steps=2,
                batch_size=2, seq_len=3, validation_fraction=0.25)
    held = data["train"][-3:]                                                  # ceil(0.25 * 12) = 3 pieces
    assert run.valid["steps"] == sum(r.shape[0] - 1 for r in held)
    assert run.baseline["valid"] == pytest.approx(marginal_baseline(data["train"][:-3], held))
    with pytest.raises(rnnkit.errors.HyperparameterError, match="--validation-fraction"):
        train(mat, out=tmp_path / "m2.npz", progress=False, max_steps=1, validation_fraction=0.99)


def test_resume_continues_bit_for_bit(matfile, tmp_path):
    from rnnkit.music import train
    kw = dict(progress=False, cell="lstm", hidden_size=4, batch_size=2, seq_len=4, validate_every=2,
              checkpoint_every=1)
    whole = train(matfile, out=tmp_path / "whole.npz", max_steps=4, **kw)
    train(matfile, out=tmp_path / "part.npz", max_steps=2, **kw)
    resumed = train(matfile, out=tmp_path / "part.npz", max_steps=4, resume=True, **kw)
    assert resumed.history.steps == 4
    for name, a in whole.model.model_.state_dict().items():
        assert np.array_equal(a, resumed.model.model_.state_dict()[name]), name


def test_cosine_lr_decay_anneals_to_a_twentieth(data):
    m = MusicModel(cell="gru", hidden_size=3, max_steps=5, batch_size=2, seq_len=3, learning_rate=0.01,
                   lr_decay="cosine").fit(data["train"])
    lrs = [lr for _, lr in m.history_.lr]
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] < lrs[0] and all(a >= b for a, b in zip(lrs, lrs[1:]))
    MusicModel(lr_decay="cosine")._check_params()      # no budget given: it decays over the default one
