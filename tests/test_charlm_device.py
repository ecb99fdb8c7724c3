"""The char LM's ``device`` setting: ``--device`` on the CLI, the one-line refusals, and a run on a non-host device.

This machine (and CI) has no GPU and no CuPy, so ``--device cuda`` must be
refused before any work with one line naming the ``gpu`` extra; the tests make
that condition explicit (CuPy hidden, or a fake CuPy that finds no GPU) so they
mean the same thing everywhere. The end-to-end device run uses
array-api-strict's ``Device("device1")``, which refuses any hidden conversion
to NumPy.
"""

import sys
import types

import numpy as np
import pytest

import rnnkit
from rnnkit.charlm import CharModel
from rnnkit.cli.main import main
from rnnkit.errors import RnnkitError

TEXT = "the quick brown fox jumps over the lazy dog. " * 12
FAST = ["--hidden-size", 8, "--num-layers", 1, "--embedding-size", 4, "--seq-len", 8, "--batch-size", 4,
        "--sample-length", 0, "--max-steps", 2, "--no-progress", "--no-plot", "--threads", 1]
SMALL = dict(hidden_size=8, num_layers=1, embedding_size=4, seq_len=8, batch_size=4, sample_length=0, max_steps=3,
             checkpoint_every=None)


@pytest.fixture
def textfile(tmp_path):
    p = tmp_path / "fox.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


def _refused(capsys, expect, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 2 and expect in err, err
    assert err.count("\n") == 1 and err.startswith("rnnkit: error: "), err
    return err


def test_device_cuda_without_cupy_is_one_line_naming_the_gpu_extra_before_any_work(tmp_path, textfile, capsys,
                                                                                   monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)            # import cupy raises ImportError, as without the extra
    out = tmp_path / "m.npz"
    err = _refused(capsys, "pip install 'rnnkit[gpu]'", "charlm", "train", textfile, "--out", out, "--device", "cuda",
                   *FAST)
    assert "--device" in err
    assert list(tmp_path.iterdir()) == [textfile]            # no model, no checkpoint: nothing was started


def test_device_cuda_with_cupy_but_no_gpu_names_the_device(tmp_path, textfile, capsys, monkeypatch):
    def no_gpu():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_gpu)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    err = _refused(capsys, "no usable GPU", "charlm", "train", textfile, "--out", tmp_path / "m.npz",
                   "--device", "cuda:0", *FAST)
    assert "'cuda:0'" in err and "--device cpu" in err
    fake.cuda.runtime.getDeviceCount = lambda: 1
    _refused(capsys, "1 GPU(s)", "charlm", "train", textfile, "--out", tmp_path / "m.npz", "--device", "cuda:3", *FAST)


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "cuda:-1", "gpu0"])
def test_unknown_device_names_the_flag(tmp_path, textfile, capsys, bad):
    _refused(capsys, "device (--device)", "charlm", "train", textfile, "--out", tmp_path / "m.npz", "--device", bad,
             *FAST)
    with pytest.raises(RnnkitError, match="expected 'cpu', 'cuda' or 'cuda:K'"):
        CharModel(device=bad, **SMALL).fit(TEXT)


def test_device_cpu_is_the_default_and_changes_nothing(tmp_path, textfile, capsys):
    a = CharModel(**SMALL).fit(TEXT)
    b = CharModel(device="cpu", **SMALL).fit(TEXT)
    for (name, p), q in zip(a.model_.named_parameters(), b.model_.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    assert main([str(v) for v in ("charlm", "train", textfile, "--out", tmp_path / "m.npz", "--device", "cpu",
                                  *FAST)]) == 0
    capsys.readouterr()
    loaded = rnnkit.load(tmp_path / "m.npz")
    assert loaded.device == "cpu" and isinstance(loaded.model_.head.weight.data, np.ndarray)


def test_charlm_fits_on_array_api_strict_device_like_numpy(tmp_path):
    xps = pytest.importorskip("array_api_strict")
    dev = xps.Device("device1")
    kw = dict(SMALL, dtype="float64", dropout=0.2, num_layers=2, validation_fraction=0.2)
    ref = CharModel(**kw).fit(TEXT)
    lm = CharModel(device=dev, **kw).fit(TEXT)
    assert lm.model_.head.weight.data.device == dev
    np.testing.assert_allclose([v for _, v in lm.history_.train], [v for _, v in ref.history_.train], rtol=1e-10)
    assert lm.meta_["valid"]["loss"] == pytest.approx(ref.meta_["valid"]["loss"], rel=1e-10)
    state = lm._network_state()
    for (name, p) in ref.model_.named_parameters():
        assert isinstance(state[name], np.ndarray)
        np.testing.assert_allclose(state[name], p.data, rtol=1e-10, atol=1e-12, err_msg=name)
    # sampling runs on the device with the draws on the host: the same text as the NumPy model
    assert lm.sample(prime="the ", length=30, random_state=3) == ref.sample(prime="the ", length=30, random_state=3)
    lm.save(tmp_path / "m.npz")                                # from host arrays; loads on the host
    loaded = CharModel.load(tmp_path / "m.npz")
    assert loaded.device == "cpu"                              # on the host until moved, whatever it trained on
    for name, p in loaded.model_.named_parameters():
        np.testing.assert_array_equal(p.data, state[name])


def test_cli_training_on_a_device_writes_checkpoint_model_and_resumes(tmp_path, textfile, capsys, monkeypatch):
    """`rnnkit charlm train --device cuda` end to end, with "cuda" standing for array-api-strict's device1 (no GPU
    here): the checkpoints and the model file are written from host copies, `--resume` continues on the device,
    and the losses are the CPU run's."""
    xps = pytest.importorskip("array_api_strict")
    import rnnkit.nn.xp as xp_module
    real = xp_module.resolve_device
    dev = xps.Device("device1")
    monkeypatch.setattr(xp_module, "resolve_device", lambda d: (xps, dev) if d == "cuda" else real(d))
    cli_on_cpu_and_cuda_agree(tmp_path, textfile, capsys, rtol=1e-10)


DEVICE_ARGS = ["--hidden-size", 8, "--num-layers", 2, "--embedding-size", 4, "--seq-len", 8, "--batch-size", 4,
               "--sample-length", 0, "--no-progress", "--no-plot", "--threads", 1, "--dtype", "float64",
               "--checkpoint-every", 2]


def cli_on_cpu_and_cuda_agree(tmp_path, textfile, capsys, rtol):
    """`rnnkit charlm train` for 3 steps, then `--resume` to 5, with `--device cpu` and `--device cuda`: both
    write a model and a checkpoint, and the cuda run's losses (``rtol``) and weights are the cpu run's."""
    runs = {}
    for device in ("cpu", "cuda"):
        (tmp_path / device).mkdir()
        out = tmp_path / device / "m.npz"
        for steps, more in ((3, []), (5, ["--resume"])):
            assert main([str(a) for a in ("charlm", "train", textfile, "--out", out, "--device", device,
                                          *DEVICE_ARGS, "--max-steps", steps, *more)]) == 0
        capsys.readouterr()
        assert out.exists() and (tmp_path / device / "m.ckpt.npz").exists()
        runs[device] = rnnkit.load(out)
    assert runs["cuda"].device == "cpu" and runs["cuda"].history_.steps == 5
    np.testing.assert_allclose([v for _, v in runs["cuda"].history_.train], [v for _, v in runs["cpu"].history_.train],
                               rtol=rtol)
    for (name, p), (_, q) in zip(runs["cpu"].model_.named_parameters(), runs["cuda"].model_.named_parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-9, atol=1e-12, err_msg=name)


def test_a_refused_move_leaves_the_model_where_it_was(capsys):
    lm = CharModel(**SMALL).fit(TEXT)
    with pytest.raises(RnnkitError, match="device"):
        lm.to("tpu")
    assert lm.device == "cpu" and isinstance(lm.model_.head.weight.data, np.ndarray)


def test_to_device_takes_a_device_object_for_a_host_array():
    xps = pytest.importorskip("array_api_strict")
    from rnnkit.nn.xp import device_of, to_device
    dev = xps.Device("device1")
    moved = to_device(np.arange(3.0), dev)
    assert device_of(moved) == dev and not isinstance(moved, np.ndarray)


def test_relu_rnn_keeps_nan_on_a_device_as_numpy_does():
    """A diverged ReLU RNN must show it on every library (where(a > 0, a, 0) turned NaN into 0)."""
    xps = pytest.importorskip("array_api_strict")
    from rnnkit.nn import RNN
    from rnnkit.nn.xp import to_device, to_host
    layer = RNN(2, 3, nonlinearity="relu", dtype=np.float64, rng=0, backend="numpy")
    x = np.ones((3, 1, 2))
    x[1, 0, 0] = np.nan
    host, _, _ = layer.forward(x)
    dev = xps.Device("device1")
    on_device, _, _ = layer.to(dev).forward(to_device(x, dev, xps))
    np.testing.assert_array_equal(np.isnan(to_host(on_device)), np.isnan(host))
    assert np.isnan(host[1:]).all()
