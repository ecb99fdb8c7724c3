"""The fused numba kernels against the NumPy reference, and the backend switch around them.

Every configuration of the recurrent grid, in float64 and float32: outputs,
final states, and every gradient (input, initial state, each parameter). Then
the paths a machine without a working compiler takes: numba disabled or
missing (reference path, one notice), NumPy's BLAS symbol not found (the same
loops driven from Python). No speed is asserted anywhere.
"""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from ci_skip_guard import numba_unavailable
from recurrent_cases import GRID, GRID_IDS, as_tuple, make_case, make_layer
from rnnkit.errors import RnnkitError
from rnnkit.nn.scan import ScanCache

if numba_unavailable():
    pytest.skip(numba_unavailable(), allow_module_level=True)
from rnnkit import kernels                                    # noqa: E402
from rnnkit.kernels import backend, fused_scan                 # noqa: E402
from rnnkit.kernels.primitives import _tanh32                  # noqa: E402


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}


def run(layer, x, state, lengths, dy, d_state, backend_name):
    """Forward and backward through ``backend_name``; everything the caller can observe."""
    layer.backend = backend_name
    layer.zero_grad()
    y, state_n, cache = layer.forward(x, state, lengths)
    kind = type(cache.scans[0][0])
    dx, d_state0 = layer.backward(dy, cache, d_state)
    out = {"output": y, "dx": dx}
    out.update({f"final state[{j}]": s for j, s in enumerate(as_tuple(state_n))})
    out.update({f"d initial state[{j}]": s for j, s in enumerate(as_tuple(d_state0))})
    out.update({f"d {n}": p.grad.copy() for n, p in layer.named_parameters()})
    return out, kind


def assert_same(case, dtype):
    ref, ref_kind = run(*case, "numpy")
    fast, fast_kind = run(*case, "numba")
    assert ref_kind is ScanCache and fast_kind is fused_scan.FusedScanCache
    assert ref.keys() == fast.keys()
    for name in ref:
        np.testing.assert_allclose(fast[name], ref[name], err_msg=name, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", GRID, ids=GRID_IDS)
def test_kernels_equal_reference_over_the_grid(kind, num_layers, bidirectional, varlen, given_state, dtype):
    case = make_case(kind, num_layers, bidirectional, varlen, given_state, dtype=dtype, T=6, N=4, D=5, H=7)
    assert_same(case, dtype)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("shape", [dict(T=1, N=1, D=2, H=3), dict(T=9, N=1, D=3, H=16), dict(T=3, N=17, D=1, H=5)],
                         ids=["T1N1", "N1", "N17"])
def test_kernels_equal_reference_at_edge_shapes(kind, shape):
    """One step, batch 1 (sampling), and a batch that is not a multiple of the vector width."""
    case = make_case(kind, 2, True, shape["N"] > 1, True, dtype=np.float64, **shape)
    assert_same(case, np.float64)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_without_bias_batch_first_and_no_output_gradient(kind):
    rng = np.random.default_rng(3)
    layer = make_layer(kind, 3, 5, 2, True, bias=False, batch_first=True)
    x = rng.standard_normal((4, 6, 3))
    d_h = rng.standard_normal((4, 4, 5))
    d_state = (d_h, rng.standard_normal((4, 4, 5))) if kind == "lstm" else d_h
    assert_same((layer, x, None, np.array([6, 2, 5, 1]), None, d_state), np.float64)


def test_inference_without_cache_gives_the_same_outputs():
    layer, x, state, lengths, _, _ = make_case("lstm", 2, True, True, True, dtype=np.float32)
    layer.backend = "numba"
    y, s, cache = layer.forward(x, state, lengths)
    y2, s2, none = layer.forward(x, state, lengths, need_cache=False)
    assert none is None
    # without a cache the inference loops run (kernels.inference): the same sums in another order
    np.testing.assert_allclose(y2, y, rtol=1e-5, atol=1e-6)
    for a, b in zip(s, s2):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("N", [1, 3])
def test_inputs_are_never_modified(N):
    layer, x, state, lengths, dy, d_state = make_case("lstm", 2, True, False, True, T=4, N=N)
    layer.backend = "numba"
    before = [a.copy() for a in (x, *state, dy, *d_state)]
    _, _, cache = layer.forward(x, state, lengths)
    layer.backward(dy, cache, d_state)
    for a, b in zip((x, *state, dy, *d_state), before):
        np.testing.assert_array_equal(a, b)


def test_backward_twice_on_one_cache_is_linear_and_leaves_the_cache_intact():
    layer, x, state, lengths, dy, d_state = make_case("gru", 2, True, True, True)
    layer.backend = "numba"
    _, _, cache = layer.forward(x, state, lengths)
    dx1, _ = layer.backward(dy, cache, d_state)
    dx2, _ = layer.backward(2 * dy, cache, tuple(2 * d for d in as_tuple(d_state))[0])
    np.testing.assert_allclose(dx2, 2 * dx1, rtol=1e-12, atol=1e-13)


def test_python_driven_loop_when_the_blas_symbol_is_missing(monkeypatch):
    """NumPy builds without the expected OpenBLAS symbol: the same loops run as Python over np.matmul."""
    monkeypatch.setattr(fused_scan, "gemm_pointers", lambda: None)
    for kind in ("lstm", "gru", "rnn_relu"):
        for dtype in (np.float64, np.float32):
            assert_same(make_case(kind, 2, True, True, True, dtype=dtype), dtype)


def test_float32_tanh_approximation_is_accurate_and_bounded():
    x = np.concatenate([np.linspace(-12, 12, 200001), [0.0, 1e-30, -1e-8, 4e-4, 50.0, -1e4]]).astype(np.float32)
    approx = np.array([_tanh32(v) for v in x[::97]] + [_tanh32(v) for v in x[-6:]], dtype=np.float32)
    exact = np.tanh(np.concatenate([x[::97], x[-6:]]).astype(np.float64))
    assert np.abs(approx - exact).max() < 4e-7
    assert np.abs(approx).max() <= 1.0


def test_direct_scan_calls_with_strided_weights_subclassed_cells_or_other_dtypes():
    """scan_forward is public: Fortran-ordered weights are fine, a subclassed cell or float16 go to the reference."""
    from rnnkit.nn import LSTMCell, scan_forward

    rng = np.random.default_rng(0)
    T, N, D, H = 5, 3, 4, 6
    W_ih = np.asfortranarray(rng.standard_normal((4 * H, D)))
    W_hh = rng.standard_normal((H, 4 * H)).T                 # a transposed view
    x, s0 = rng.standard_normal((T, N, D)), (np.zeros((N, H)), np.zeros((N, H)))
    y_ref, _, _ = scan_forward(LSTMCell(), x, s0, W_ih, W_hh, backend="numpy")
    y, _, cache = scan_forward(LSTMCell(), x, s0, W_ih, W_hh, backend="numba")
    assert type(cache) is fused_scan.FusedScanCache
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-13)

    class PeepholeToBe(LSTMCell):
        pass
    assert type(scan_forward(PeepholeToBe(), x, s0, W_ih, W_hh, backend="numba")[2]) is ScanCache
    half = [a.astype(np.float16) for a in (x, W_ih, W_hh, *s0)]
    assert type(scan_forward(LSTMCell(), half[0], tuple(half[3:]), *half[1:3], backend="numba")[2]) is ScanCache


def test_a_diverged_state_stays_visible():
    """NaN in, NaN out (clamping inside tanh must not turn a blown-up activation into +-1)."""
    layer = make_layer("lstm", 2, 3, dtype=np.float32, backend="numba")
    x = np.ones((3, 2, 2), np.float32)
    x[1, 0, 0] = np.nan
    y, (h, c), _ = layer.forward(x)
    assert np.isnan(y[1:, 0]).all() and np.isfinite(y[:, 1]).all() and np.isnan(h[0, 0]).all()


def test_backend_setting_and_validation(monkeypatch):
    layer, x, state, lengths, _, _ = make_case("rnn_tanh", 1, False, False, False)
    monkeypatch.setattr(backend, "_setting", None)
    monkeypatch.setenv("RNNKIT_BACKEND", "numpy")
    assert kernels.get_backend() == "numpy" and kernels.resolve_backend() == "numpy"
    assert type(layer.forward(x)[2].scans[0][0]) is ScanCache
    kernels.set_backend("numba")
    assert kernels.get_backend() == "numba"
    assert type(layer.forward(x)[2].scans[0][0]) is fused_scan.FusedScanCache
    layer.backend = "numpy"                                    # a layer's own choice wins
    assert type(layer.forward(x)[2].scans[0][0]) is ScanCache
    with pytest.raises(RnnkitError, match="expected one of 'auto', 'numpy', 'numba', got 'fast'"):
        kernels.set_backend("fast")
    monkeypatch.setattr(backend, "_setting", None)
    monkeypatch.setenv("RNNKIT_BACKEND", "cuda")
    with pytest.raises(RnnkitError, match="RNNKIT_BACKEND"):
        kernels.get_backend()
    with pytest.raises(ValueError, match="backend: expected None, 'auto', 'numpy' or 'numba'"):
        make_layer("lstm", 2, 3, backend="gpu")


def test_unwritable_package_directory_moves_the_numba_cache(monkeypatch, tmp_path):
    import numba.core.config as config

    monkeypatch.setattr(config, "CACHE_DIR", "")
    monkeypatch.setattr(os.path, "expanduser", lambda p: str(tmp_path))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if "kernels" in str(p) else real_access(p, mode))
    backend._ensure_cache_dir()
    assert config.CACHE_DIR == str(tmp_path / ".cache" / "rnnkit" / "numba")


def test_cached_kernels_from_other_sources_are_dropped(tmp_path):
    """numba checks a cached loop against its own file only; a stamp over all kernel sources catches the rest."""
    stale = ["lstm.forward-51.py311.nbi", "lstm.forward-51.py311.1.nbc", "primitives.mm-90.py311.nbi"]
    keep = ["other.f-1.py311.nbi", "lstm.cpython-311.pyc"]
    for name in stale + keep:
        (tmp_path / name).write_text("x")
    (tmp_path / "rnnkit-kernels.stamp").write_text("compiled from older sources")
    backend._drop_stale_compiled_code([str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep + ["rnnkit-kernels.stamp"])
    (tmp_path / stale[0]).write_text("compiled from these sources")
    backend._drop_stale_compiled_code([str(tmp_path)])         # the stamp matches now: nothing is removed
    assert (tmp_path / stale[0]).exists()


FALLBACK_SCRIPT = """
import sys, warnings
import numpy as np
{prelude}
sys.path.insert(0, {tests!r})
from recurrent_cases import make_case
from rnnkit.kernels import numba_status
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    layer, x, state, lengths, dy, d_state = make_case("lstm", 2, True, True, True)
    for _ in range(2):
        y, s, cache = layer.forward(x, state, lengths)
        layer.backward(dy, cache, d_state)
notices = [str(w.message) for w in caught if "numba kernels unavailable" in str(w.message)]
print(type(cache.scans[0][0]).__name__, len(notices), numba_status()["ok"])
print(notices[0] if notices else "")
"""


@pytest.mark.parametrize("prelude,reason", [
    ("import os; os.environ['RNNKIT_DISABLE_NUMBA'] = '1'", "RNNKIT_DISABLE_NUMBA"),
    ("sys.modules['numba'] = None", "numba"),
], ids=["disabled", "numba-missing"])
def test_reference_path_with_one_notice_when_numba_cannot_run(prelude, reason):
    script = FALLBACK_SCRIPT.format(prelude=prelude, tests=os.path.join(ROOT, "tests"))
    env = {k: v for k, v in os.environ.items() if k not in ("RNNKIT_BACKEND", "RNNKIT_DISABLE_NUMBA")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    first, notice = done.stdout.strip().splitlines()
    assert first == "ScanCache 1 False"
    assert reason in notice and "NumPy reference path" in notice


def test_explicit_numba_request_fails_clearly_where_it_cannot_run(monkeypatch):
    monkeypatch.setitem(backend._status, "checked", True)
    monkeypatch.setitem(backend._status, "ok", False)
    monkeypatch.setitem(backend._status, "reason", "ModuleNotFoundError: No module named 'numba'")
    with pytest.raises(RnnkitError, match="backend 'numba' is not available here.*rnnkit\\[fast\\]"):
        kernels.set_backend("numba")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert kernels.resolve_backend("numba") == "numpy"


def test_a_cell_that_overrides_step_runs_the_reference_not_the_kernel():
    """Dispatch follows the cell's declared fused_kernel: a subclass with its own step is never fused."""
    from rnnkit.nn import GRUCell, scan_forward

    class ScaledGRU(GRUCell):                  # changes the step, declares no kernel
        def step(self, xw, hw, state):
            (h,), cache = super().step(xw, hw, state)
            return (0.5 * h,), cache

    class SameGRU(GRUCell):                    # same math, says so
        fused_kernel = "gru"

    rng = np.random.default_rng(0)
    T, N, D, H = 4, 2, 3, 5
    x, W_ih, W_hh = rng.standard_normal((T, N, D)), rng.standard_normal((3 * H, D)), rng.standard_normal((3 * H, H))
    s0 = (rng.standard_normal((N, H)),)
    y_ref, _, _ = scan_forward(ScaledGRU(), x, s0, W_ih, W_hh, backend="numpy")
    y, _, cache = scan_forward(ScaledGRU(), x, s0, W_ih, W_hh, backend="numba")
    assert type(cache) is ScanCache
    np.testing.assert_array_equal(y, y_ref)
    assert not np.allclose(y, scan_forward(GRUCell(), x, s0, W_ih, W_hh, backend="numpy")[0])
    assert type(scan_forward(SameGRU(), x, s0, W_ih, W_hh, backend="numba")[2]) is fused_scan.FusedScanCache


def test_a_kernel_that_fails_to_compile_hands_the_scan_back_to_the_reference(monkeypatch):
    """fused_scan raises KernelUnavailable (it never imports nn); the scanner catches it and runs the reference."""
    from numba.core.errors import TypingError

    from rnnkit.nn import LSTMCell, scan_forward

    def broken(*args):
        raise TypingError("no loop for you")
    monkeypatch.setattr(fused_scan, "_scan_forward", broken)
    monkeypatch.setattr(backend, "_status", dict(backend._status, warned=False))   # restored afterwards
    rng = np.random.default_rng(1)
    x, W_ih, W_hh = rng.standard_normal((3, 2, 4)), rng.standard_normal((8, 4)), rng.standard_normal((8, 2))
    s0 = (np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(backend.KernelUnavailable), pytest.warns(RuntimeWarning, match="compiling the lstm kernel"):
        fused_scan.scan_forward(LSTMCell(), x, s0, W_ih, W_hh)
    monkeypatch.setattr(backend, "_status", dict(backend._status, checked=True, ok=True, warned=False))
    with pytest.warns(RuntimeWarning, match="TypingError compiling the lstm kernel"):
        y, _, cache = scan_forward(LSTMCell(), x, s0, W_ih, W_hh, backend="auto")
    assert type(cache) is ScanCache and not backend.numba_status()["ok"]
    np.testing.assert_array_equal(y, scan_forward(LSTMCell(), x, s0, W_ih, W_hh, backend="numpy")[0])
