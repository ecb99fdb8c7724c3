"""`rnnkit info MODEL`: kind, settings, history summary and size of any model file or checkpoint."""

import json
import os
import threading

import numpy as np
import pytest

from rnnkit.cli.main import main
from rnnkit.io.modelfile import save_model_file
from rnnkit.io.summary import format_summary, summarize
from rnnkit.nn import Linear
from rnnkit.optim import SGD
from rnnkit.train import fit


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "lm.npz"
    history = {"unit": "char", "train": [[1, 2.5], [2, 2.0]], "val": [[2, {"loss": 2.2}]], "steps": 2,
               "elapsed_s": 1.5, "best_step": 2, "best_val_loss": 2.2, "stop_reason": "max_steps"}
    save_model_file(path, kind="charlm",
                    config={"params": {"hidden_size": 8, "cell": "lstm"}, "fitted": {"vocab": list("abcdefghijklmnop")}},
                    arrays={"w": np.zeros((4, 5), np.float32), "b": np.zeros(4, np.float32)},
                    meta={"history": history, "data_sha256": "abc"})
    return path


@pytest.fixture
def checkpoint(tmp_path):
    """A real training checkpoint: rnnkit.train.fit on a tiny Linear model."""
    path = tmp_path / "run.ckpt.npz"
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 3))                                   # (M, 3)
    net = Linear(3, 2, dtype=np.float64, rng=0)

    def step(idx, ctx):
        y, cache = net.forward(X[idx])                                # (B, 2)
        net.backward(2 * y / y.size, cache)
        return float(np.mean(y ** 2)), len(idx)

    fit(net, SGD(net.parameters(), lr=0.1), step, lambda epoch, rng: [np.arange(4), np.arange(4, 8)], seed=0,
        epochs=3, checkpoint_path=path, progress=False,
        config={"kind": "forecaster", "params": {"hidden_size": 2}, "fitted": {"n_features": 3}})
    return path


def test_info_on_a_model_file(model_file, capsys):
    assert main(["info", str(model_file)]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith(f"{model_file}: charlm, 24 parameters in 2 arrays, {os.path.getsize(model_file):,} bytes")
    assert "hidden_size: 8" in out and "vocab: <16 items>" in out          # long lists by their length
    assert "best_val_loss: 2.2" in out and "last_train_loss: 2.0" in out and "stop_reason: max_steps" in out


def test_info_json_on_a_model_file(model_file, capsys):
    assert main(["info", "--json", str(model_file)]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["kind"] == "charlm" and s["parameters"] == 24 and s["arrays"] == 2
    assert s["bytes"] == os.path.getsize(model_file) and s["params"] == {"hidden_size": 8, "cell": "lstm"}
    assert s["fitted"] == {"vocab": "<16 items>"} and s["history"]["steps"] == 2
    assert s["meta"] == {"data_sha256": "abc"}
    assert main(["info", str(model_file), "--json"]) == 0                 # the option after the positional too
    assert json.loads(capsys.readouterr().out) == s


def test_info_on_a_checkpoint(checkpoint, capsys):
    assert main(["info", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"{checkpoint}: checkpoint of a forecaster run at step 6, 8 parameters "
                                          "in 2 arrays")
    s = summarize(checkpoint)
    assert s["application"] == "forecaster" and s["step"] == 6 and s["epoch"] == 3
    assert s["params"] == {"hidden_size": 2} and s["fitted"] == {"n_features": 3} and s["history"]["steps"] == 6
    assert format_summary(s) == out.rstrip("\n")


def test_info_on_a_plain_fit_checkpoint(tmp_path, capsys):
    path = tmp_path / "plain.ckpt.npz"
    net = Linear(2, 1, dtype=np.float64, rng=0)

    def step(batch, ctx):
        y, cache = net.forward(np.ones((1, 2)))
        net.backward(np.ones_like(y), cache)
        return 1.0, 1
    fit(net, SGD(net.parameters(), lr=0.1), step, lambda e, r: [0], seed=0, epochs=1, checkpoint_path=path,
        progress=False)
    assert main(["info", str(path)]) == 0
    assert "checkpoint of a plain fit() run at step 1" in capsys.readouterr().out


@pytest.mark.parametrize("make,expect", [
    (lambda d: (d / "notes.txt", "hello\n"), "is not an rnnkit model file"),
    (lambda d: (d / "empty.npz", ""), "is empty"),
    (lambda d: (d / "missing.npz", None), "no such file"),
])
def test_info_on_a_non_model_file_is_one_line(tmp_path, capsys, make, expect):
    path, text = make(tmp_path)
    if text is not None:
        path.write_text(text)
    assert main(["info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("rnnkit: error: ")
    assert str(path) in captured.err and expect in captured.err


def test_info_on_a_fifo_does_not_block(tmp_path, capsys):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("code", main(["info", str(fifo)])), daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "rnnkit info blocked on a FIFO"
    err = capsys.readouterr().err
    assert box["code"] == 2 and "is a FIFO, which may never end; give a regular file" in err
    assert "malformed" not in err, err        # it once called the FIFO a malformed header


def test_info_takes_threads_like_every_command(tmp_path, capsys):
    """The README says every command takes --threads; info used to refuse it."""
    path = tmp_path / "m.npz"
    save_model_file(path, kind="charlm", config={"params": {}}, arrays={"w": np.ones(2)})
    assert main(["info", "--threads", "1", str(path)]) == 0
    assert "charlm" in capsys.readouterr().out


def test_info_refuses_a_crafted_header_in_one_line(tmp_path, capsys):
    """Checksums right, fields of the wrong type: one line, exit 2 (it used to be a traceback)."""
    from rnnkit.io import save_model_file
    bad_history = tmp_path / "h.npz"
    save_model_file(bad_history, kind="charlm", config={"params": {}}, arrays={}, meta={"history": {"train": 5}})
    bad_train = tmp_path / "c.npz"
    save_model_file(bad_train, kind="checkpoint", config={}, arrays={}, meta={"train": [1]})
    for path in (bad_history, bad_train):
        assert main(["info", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"rnnkit: error: {path}: the header is malformed") and err.count("\n") == 1
