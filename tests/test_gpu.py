"""The engine and the char LM on a real GPU (CuPy), against the NumPy path and PyTorch on CUDA.

No machine of this project's CI has a GPU, so every test here skips there with
the reason below (allow-listed in tests/skip_allowlist.py); the array-API
plumbing they exercise is guarded without a GPU by tests/test_array_api_engine.py
(array-api-strict) and the fused kernels' C source by tests/test_cupy_cells.py.
On a machine with CuPy and a GPU they check:

- every GRID case (RNN tanh/relu, LSTM, GRU x 1/2 layers x uni/bi x equal/mixed/short
  lengths x zero/given initial state) and every variant: outputs, final states and
  every gradient on the GPU equal the NumPy reference scanner (float64, rtol 1e-10:
  cuBLAS sums in another order than OpenBLAS);
- PyTorch on CUDA from identical weights, float64, for the whole GRID;
- the char LM: ``CharModel(device="cuda")`` trains to the CPU run's losses and weights,
  samples the CPU run's text, and ``rnnkit charlm train --device cuda`` writes a model
  and a checkpoint that resume on the GPU.
"""

import numpy as np
import pytest

from helpers import torch_twin
from recurrent_cases import GRID, GRID_IDS, as_tuple, make_case
from variant_cases import VARIANT_IDS, VARIANTS, make_variant_case

NO_GPU = "no GPU/CuPy on this machine"


def _gpu():
    """(CuPy, "") where CuPy sees a GPU, else (None, why not): a broken CuPy on a GPU machine says so in the
    skip reason instead of passing for a machine without one."""
    try:
        import cupy
    except ImportError:
        return None, ""
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, ""
    except Exception as e:                 # no driver or no device, or a CuPy built for another CUDA
        return None, f" ({type(e).__name__}: {e})"
    return cupy, ""


cp, _why = _gpu()
pytestmark = pytest.mark.skipif(cp is None, reason=NO_GPU + _why)


def _to(a):
    """A host array (or a tuple/list of them, or None) on the GPU."""
    if a is None:
        return None
    if isinstance(a, (tuple, list)):
        return type(a)(_to(v) for v in a)
    return cp.asarray(a)


def _host(a):
    """A GPU array (or a tuple/list of them, or None) as NumPy, after checking it is CuPy's."""
    if a is None:
        return None
    if isinstance(a, (tuple, list)):
        return type(a)(_host(v) for v in a)
    assert isinstance(a, cp.ndarray), f"expected a CuPy array, got {type(a)}"
    return cp.asnumpy(a)


def _run(layer, x, state, lengths, dy, d_state, seed=7):
    """Forward and backward once: ([y, final state, dx, d_state0], {name: grad})."""
    layer.zero_grad()
    y, s, cache = layer.forward(x, state, lengths, rng=np.random.default_rng(seed))
    dx, ds0 = layer.backward(dy, cache, d_state)
    return [y, s, dx, ds0], {n: p.grad for n, p in layer.named_parameters()}


def _close(got, want, what, rtol=1e-10, atol=1e-12):
    """A GPU result (an array or a tuple) equals a host one within the tolerances."""
    got, want = as_tuple(got) if got is not None else (), as_tuple(want) if want is not None else ()
    assert len(got) == len(want), what
    for j, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(_host(a), b, rtol=rtol, atol=atol, err_msg=f"{what}[{j}]")


def _gpu_equals_numpy(make):
    """``make()`` builds the same case twice: one runs the NumPy reference scanner, one runs on the GPU."""
    host = make()
    host[0].backend = "numpy"
    want, want_g = _run(*host)
    layer, x, state, lengths, dy, d_state = make()
    layer.to("cuda")
    got, got_g = _run(layer, _to(x), _to(state), lengths, _to(dy), _to(d_state))
    for what, a, b in zip(("output", "final state", "d input", "d initial state"), got, want):
        _close(a, b, what)
    assert got_g.keys() == want_g.keys()
    for name in want_g:
        _close(got_g[name], want_g[name], "d " + name)


@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", GRID, ids=GRID_IDS)
def test_grid_on_the_gpu_equals_numpy(kind, num_layers, bidirectional, varlen, given_state):
    _gpu_equals_numpy(lambda: make_case(kind, num_layers, bidirectional, varlen, given_state, T=5))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kind,kw", VARIANTS, ids=VARIANT_IDS)
def test_variants_on_the_gpu_equal_numpy(kind, kw, training):
    def make():
        case = make_variant_case(kind, kw)
        case[0].train(training)
        return case
    _gpu_equals_numpy(make)


@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", GRID, ids=GRID_IDS)
def test_grid_on_the_gpu_equals_torch_on_cuda(kind, num_layers, bidirectional, varlen, given_state):
    import torch
    from test_recurrent_torch import run_torch
    if not torch.cuda.is_available():
        pytest.skip(f"{NO_GPU}: CuPy has a GPU but PyTorch {torch.__version__} sees none (a CPU-only build?)")
    layer, x, state, lengths, dy, d_state = make_case(kind, num_layers, bidirectional, varlen, given_state,
                                                      T=6, N=4, D=5, H=7)
    ty, tsn, tdx, tds0, tgrads = run_torch(torch_twin(layer).to("cuda"), x, state, lengths, dy, d_state,
                                           device="cuda")
    got, grads = _run(layer.to("cuda"), _to(x), _to(state), lengths, _to(dy), _to(d_state))
    for what, a, b in zip(("output", "final state", "d input", "d initial state"), got, (ty, tsn, tdx, tds0)):
        if b is not None:
            _close(a, b, what)
    assert grads.keys() == tgrads.keys()
    for name, g in grads.items():
        _close(g, tgrads[name], "d " + name)


TEXT = "the quick brown fox jumps over the lazy dog. " * 12
SMALL = dict(hidden_size=8, num_layers=2, embedding_size=4, seq_len=8, batch_size=4, sample_length=0,
             max_steps=4, checkpoint_every=None, dtype="float64", dropout=0.2, validation_fraction=0.2)


def test_charlm_on_the_gpu_trains_and_samples_as_on_the_cpu(tmp_path):
    from rnnkit.charlm import CharModel
    ref = CharModel(**SMALL).fit(TEXT)
    lm = CharModel(device="cuda", **SMALL).fit(TEXT)
    assert isinstance(lm.model_.head.weight.data, cp.ndarray)
    np.testing.assert_allclose([v for _, v in lm.history_.train], [v for _, v in ref.history_.train], rtol=1e-9)
    assert lm.meta_["valid"]["loss"] == pytest.approx(ref.meta_["valid"]["loss"], rel=1e-9)
    state = lm._network_state()
    for name, p in ref.model_.named_parameters():
        np.testing.assert_allclose(state[name], p.data, rtol=1e-9, atol=1e-12, err_msg=name)
    assert lm.sample(prime="the ", length=30, random_state=3) == ref.sample(prime="the ", length=30, random_state=3)
    lm.save(tmp_path / "m.npz")
    loaded = CharModel.load(tmp_path / "m.npz")
    assert loaded.device == "cpu"
    for name, p in loaded.model_.named_parameters():
        np.testing.assert_array_equal(p.data, state[name])


def test_cli_charlm_train_on_cuda_writes_and_resumes(tmp_path, capsys):
    from test_charlm_device import cli_on_cpu_and_cuda_agree
    text = tmp_path / "fox.txt"
    text.write_text(TEXT, encoding="utf-8")
    cli_on_cpu_and_cuda_agree(tmp_path, text, capsys, rtol=1e-9)


def test_float32_training_step_on_the_gpu_is_close_to_float64():
    """float32 on the GPU (the benchmark's precision) stays within float32 round-off of the float64 NumPy run."""
    from rnnkit.nn import LSTM
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 8, 16))
    dy = rng.standard_normal((20, 8, 32))
    ref = LSTM(16, 32, num_layers=2, dtype=np.float64, rng=1, backend="numpy")
    y64, _, c64 = ref.forward(x)
    dx64, _ = ref.backward(dy, c64)
    gpu = LSTM(16, 32, num_layers=2, dtype=np.float32, rng=1).to("cuda")
    y32, _, c32 = gpu.forward(cp.asarray(x, dtype=cp.float32))
    dx32, _ = gpu.backward(cp.asarray(dy, dtype=cp.float32), c32)
    assert y32.dtype == cp.float32
    np.testing.assert_allclose(cp.asnumpy(y32), y64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cp.asnumpy(dx32), dx64, rtol=1e-3, atol=1e-4)
    for (name, p), (_, q) in zip(ref.named_parameters(), gpu.named_parameters()):
        np.testing.assert_allclose(cp.asnumpy(q.grad), p.grad, rtol=1e-3, atol=1e-4, err_msg=name)
