"""Forecasting on the shared contract: checkpoints and resume, model files, and every reliability class.

Each test here fails on the code before issue 10 (no checkpoints, outputs written
in place and after the work, inputs read whole, model config trusted, inf forecasts).
"""

import csv
import datetime as dt
import errno
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.errors import DataError, ModelFileError
from rnnkit.forecast import RNNForecaster
from rnnkit.io.modelfile import load_model_file, save_model_file

FAST = ["--lookback", "6", "--hidden-size", "4", "--epochs", "2", "--no-progress"]


def _prices(tmp_path, n=60, name="prices.csv", big=None):
    rng = np.random.default_rng(0)
    start = dt.date(2020, 1, 6)
    days = [start + dt.timedelta(days=i) for i in range(2 * n) if (start + dt.timedelta(days=i)).weekday() < 5][:n]
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    rows = [[d.isoformat(), f"{c:.4f}", str(v)] for d, c, v in zip(days, close, rng.integers(1000, 2000, n))]
    if big is not None:
        rows[big][1] = "1e300"
    path = tmp_path / name
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Date", "Close", "Volume"])
        w.writerows(rows)
    return str(path), rows


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def trained(tmp_path, capsys):
    data, _ = _prices(tmp_path)
    model = str(tmp_path / "m.npz")
    code, out, err = _run(capsys, ["forecast", "train", data, "--out", model] + FAST)
    assert code == 0, err
    return data, model


# -- outputs -------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["--out MODEL", "--out DATA", "--plot MODEL", "--out empty"])
def test_predict_refuses_an_output_that_is_an_input(trained, capsys, which):
    data, model = trained
    before = {p: open(p, "rb").read() for p in (data, model)}
    flag, target = which.split()
    path = {"MODEL": model, "DATA": data, "empty": ""}[target]
    code, _, err = _run(capsys, ["forecast", "predict", model, data, flag, path])
    assert code == 2
    assert (f"{flag} {path} is also the input {target}" if path else f"{flag}: the path is empty") in err, err
    assert {p: open(p, "rb").read() for p in (data, model)} == before


def test_predict_csv_is_atomic_on_a_full_disk(trained, capsys, monkeypatch, tmp_path):
    data, model = trained
    out = tmp_path / "fc.csv"
    out.write_text("date,Close\nprevious,1\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    code, _, err = _run(capsys, ["forecast", "predict", model, data, "--out", str(out)])
    assert code == 2 and "No space left on device" in err and str(out) in err, err
    assert out.read_text() == "date,Close\nprevious,1\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_predict_from_the_checkpoint_and_the_model_agree(trained, capsys, tmp_path):
    data, model = trained
    ckpt = model[:-4] + ".ckpt.npz"
    assert os.path.exists(ckpt)
    outs = []
    for src in (model, ckpt):
        code, out, err = _run(capsys, ["forecast", "predict", src, "--horizon", "3"])
        assert code == 0, err
        outs.append(out)
    assert outs[0] == outs[1] and "forecast of Close for 3 step(s)" in outs[0]
    assert isinstance(rnnkit.load(ckpt), RNNForecaster)


# -- inputs ----------------------------------------------------------------------------
def test_a_fifo_as_data_is_refused_without_reading(tmp_path, capsys):
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError("read the FIFO")))
    signal.alarm(20)
    try:
        code, _, err = _run(capsys, ["forecast", "train", str(fifo), "--out", str(tmp_path / "m.npz")] + FAST)
    finally:
        signal.alarm(0)
    assert code == 2 and f"DATA {fifo}: is a FIFO" in err, err


def test_1e300_in_a_csv_is_refused_naming_column_and_date(tmp_path, capsys):
    data, rows = _prices(tmp_path, big=30)
    code, out, err = _run(capsys, ["forecast", "train", data, "--out", str(tmp_path / "m.npz")] + FAST)
    assert code == 2, out
    assert f"column 'Close' at {rows[30][0]} (line 32): the value 1e+300" in err and "rescale" in err, err
    assert not (tmp_path / "m.npz").exists()
    # scaler none: the level itself does not fit the float32 network
    code, _, err = _run(capsys, ["forecast", "train", data, "--out", str(tmp_path / "m.npz"), "--scaler", "none"]
                        + FAST)
    assert code == 2 and "too large for the model's float32 network" in err, err


def test_overflowing_history_and_forecasts_are_refused():
    y = np.sin(np.arange(80) / 3) + 5
    f = RNNForecaster(lookback=5, hidden_size=4, epochs=1).fit(y)
    hist = y.copy()
    hist[-2] = 1e300
    with pytest.raises(DataError, match="y: column 0, row 78: the value 1e\\+300"):
        f.predict(3, y=hist)
    g = RNNForecaster(lookback=5, hidden_size=4, epochs=1, transform="log").fit(y)
    g.scaler_.a = g.scaler_.a + 1e4                  # forecasts of about e^(1e4): inf in float64
    with pytest.raises(DataError, match="forecast overflows"):
        g.predict(3)


# -- sizes -----------------------------------------------------------------------------
def test_a_huge_hidden_size_is_refused_with_the_memory_it_needs(tmp_path, capsys):
    data, _ = _prices(tmp_path)
    code, _, err = _run(capsys, ["forecast", "train", data, "--out", str(tmp_path / "m.npz"),
                                 "--hidden-size", "100000000", "--epochs", "1", "--no-progress"])
    assert code == 2 and "--hidden-size 100000000" in err and "GiB of memory" in err, err


def test_a_crafted_model_file_is_refused_before_building(trained, capsys, tmp_path):
    _, model = trained
    mf = load_model_file(model)
    config = json.loads(json.dumps(mf.config))
    config["params"]["hidden_size"] = 10 ** 8
    crafted = tmp_path / "crafted.npz"
    save_model_file(crafted, kind="forecaster", config=config, arrays=mf.arrays, meta=mf.meta)
    code, out, err = _run(capsys, ["forecast", "predict", str(crafted)])
    assert code == 2 and err.count("\n") == 1, err
    assert "configuration does not match the stored arrays" in err
    config["fitted"]["n_targets"] = -1
    save_model_file(crafted, kind="forecaster", config=config, arrays=mf.arrays, meta=mf.meta)
    with pytest.raises(ModelFileError, match="configuration is malformed"):
        RNNForecaster.load(crafted)


def test_model_file_header_does_not_grow_with_steps(tmp_path):
    y = np.sin(np.arange(40) / 3) + 5
    f = RNNForecaster(lookback=3, hidden_size=2, batch_size=1, epochs=1000, max_steps=2000).fit(y)
    assert f.history_.steps == 2000
    path = f.save(tmp_path / "m.npz")
    with zipfile.ZipFile(path) as z:
        header = z.read("__rnnkit_header__.npy")
    assert len(header) < 80_000, len(header)
    assert len(load_model_file(path).meta["history"]["train"]) <= 500


# -- the estimator contract ---------------------------------------------------------------
def test_resume_is_bit_for_bit(tmp_path):
    y = np.sin(np.arange(90) / 4) + 3
    kw = dict(lookback=6, hidden_size=5, epochs=3, batch_size=8, dropout=0.0)
    full = RNNForecaster(**kw).fit(y, checkpoint_path=tmp_path / "a.ckpt.npz")
    part = RNNForecaster(max_steps=5, **kw).fit(y, checkpoint_path=tmp_path / "b.ckpt.npz")
    assert part.history_.steps == 5 < full.history_.steps
    part.set_params(max_steps=None).fit(y, checkpoint_path=tmp_path / "b.ckpt.npz", resume=True)
    assert part.history_.steps == full.history_.steps
    a, b = full.net_.state_dict(), part.net_.state_dict()
    assert all(np.array_equal(a[n], b[n]) for n in a)
    np.testing.assert_array_equal(full.predict_interval(0.8, 4)[0], part.predict_interval(0.8, 4)[0])
    with pytest.raises(rnnkit.errors.PathError, match="--hidden-size 5, not --hidden-size 6"):
        RNNForecaster(**dict(kw, hidden_size=6)).fit(y, checkpoint_path=tmp_path / "b.ckpt.npz", resume=True)
    with pytest.raises(rnnkit.errors.PathError, match="trained on other data"):
        RNNForecaster(**kw).fit(y + 1, checkpoint_path=tmp_path / "b.ckpt.npz", resume=True)


def test_cli_resume_continues_to_the_same_model(tmp_path, capsys):
    data, _ = _prices(tmp_path)
    a, b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    assert _run(capsys, ["forecast", "train", data, "--out", a] + FAST)[0] == 0
    assert _run(capsys, ["forecast", "train", data, "--out", b, "--max-steps", "2"] + FAST)[0] == 0
    code, out, err = _run(capsys, ["forecast", "train", data, "--out", b, "--resume", "--max-steps", "none"] + FAST)
    assert code == 0, err
    ma, mb = load_model_file(a), load_model_file(b)
    assert all(np.array_equal(ma.arrays[n], mb.arrays[n]) for n in ma.arrays)


def test_clone_params_and_kind():
    sklearn_base = pytest.importorskip("sklearn.base")
    f = RNNForecaster(lookback=7, max_steps=50)
    assert f.random_state == 0 and f.kind == "forecaster"
    g = sklearn_base.clone(f)
    assert g.get_params() == f.get_params() and g.max_steps == 50


@pytest.mark.parametrize("sig,progress", [(signal.SIGINT, "--progress"), (signal.SIGTERM, "--no-progress")])
def test_interrupt_writes_a_checkpoint_and_says_how_to_resume(tmp_path, sig, progress):
    data, _ = _prices(tmp_path, n=200)
    out = tmp_path / "m.npz"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "forecast", "train", data, "--out", str(out),
                             "--epochs", "100000", "--lookback", "6", "--hidden-size", "4", progress,
                             "--validation-fraction", "0"],            # no early stop: interrupted while training
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ckpt = tmp_path / "m.ckpt.npz"
    try:
        for _ in range(600):                       # the first checkpoint: training is under way
            if ckpt.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, stderr       # 130 after Ctrl-C, 143 after SIGTERM, as shells report
    assert f"checkpoint saved to {ckpt}" in stderr and "--resume" in stderr, stderr
    assert rnnkit.load(ckpt).history_.steps > 0


def test_stock_refuses_an_out_dir_that_would_overwrite_its_data(tmp_path, capsys):
    data, _ = _prices(tmp_path, name="forecast.csv")
    before = open(data).read()
    code, out, err = _run(capsys, ["forecast", "stock", "--data", data, "--out-dir", str(tmp_path)] + FAST)
    assert code == 2 and f"--out-dir (forecast.csv) {data} is also the input --data" in err, err
    assert open(data).read() == before and "backtest" not in out
    code, _, err = _run(capsys, ["forecast", "stock", "--data", data, "--out-dir", data] + FAST)
    assert code == 2 and "is a file, not a directory" in err, err


def test_a_failed_refit_leaves_the_fitted_model_as_it_was(tmp_path):
    y = np.sin(np.arange(80) / 3) + 5
    f = RNNForecaster(lookback=5, hidden_size=4, epochs=2).fit(y)
    before = f.predict(3)
    with pytest.raises(rnnkit.errors.TrainingError, match="diverged"):
        f.set_params(learning_rate=1e30, epochs=5).fit(y[:60] * 3)
    np.testing.assert_array_equal(f.predict(3), before)
    np.testing.assert_array_equal(RNNForecaster.load(f.save(tmp_path / "m.npz")).predict(3), before)
