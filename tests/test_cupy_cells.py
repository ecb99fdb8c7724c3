"""The fused CuPy cell kernels (rnnkit.kernels.cupy_cells) against the reference cells (rnnkit.nn.cells).

Two layers of checks. Where CuPy and a GPU are present, the kernels run and are
compared with the NumPy cells on the same numbers (forward state and cache,
backward gate gradients and state gradients). Everywhere, including this
project's machines and CI, which have no GPU: the kernels' C source is run
element by element by a small interpreter here, so the index arithmetic and the
math of every kernel are checked against the reference cells even without a
GPU; and without CuPy the functions raise KernelUnavailable, which the scanner
catches to run the reference.
"""

import re
import sys

import numpy as np
import pytest

from rnnkit.kernels import cupy_cells
from rnnkit.kernels.backend import KernelUnavailable
from rnnkit.nn.cells import GRUCell, LSTMCell, RNNCell

NO_GPU = "no GPU/CuPy on this machine"
N, H = 3, 4
CELLS = {"lstm": (LSTMCell(), 4), "gru": (GRUCell(), 3), "rnn_tanh": (RNNCell("tanh"), 1),
         "rnn_relu": (RNNCell("relu"), 1)}


def _case(name, rng, dtype=np.float64):
    cell, G = CELLS[name]
    xw = rng.standard_normal((N, G * H)).astype(dtype)
    hw = rng.standard_normal((N, G * H)).astype(dtype)
    state = tuple(rng.standard_normal((N, H)).astype(dtype) for _ in range(cell.num_states))
    d_state = tuple(rng.standard_normal((N, H)).astype(dtype) for _ in range(cell.num_states))
    return cell, G, xw, hw, state, d_state


def _reference(name, cell, G, xw, hw, state, d_state):
    new_state, cache = cell.step(xw.copy(), hw.copy(), state)
    d_xw = np.zeros_like(xw)
    d_hw = np.zeros_like(hw) if cell.split_recurrent else None
    d_prev = cell.step_backward(d_state, cache, d_xw, d_hw)
    return new_state, cache, d_xw, d_hw, d_prev


# -- the C source, interpreted on the host -------------------------------------
def _python_of(body):
    """The kernel body as Python statements (it only uses declarations, assignments and ternaries)."""
    out = []
    for stmt in body.replace("\n", " ").split(";"):
        stmt = stmt.strip()
        if not stmt:
            continue
        if stmt.startswith("const long long "):    # integer index arithmetic: C's / on integers is //
            out += [s.strip().replace(" / ", " // ") for s in stmt[len("const long long "):].split(",")]
            continue
        stmt = stmt.replace("const T ", "").replace("(T)", "")
        stmt = re.sub(r"(\w+) > 0 \? (\w+) : 0", r"(\2 if \1 > 0 else 0.0)", stmt)
        stmt = re.sub(r"(\w+) < 0 \? 0 : (\w+)", r"(0.0 if \1 < 0 else \2)", stmt)     # keeps NaN, as C does
        out.append(stmt)
    return out


def _interpret(name, args, size):
    """Run kernel ``name`` element by element: ``args`` in the order of its parameters (arrays or H)."""
    in_params, out_params, body = cupy_cells._SOURCES[name]
    params = [p.strip().split() for p in (in_params + ", " + out_params).split(",")]
    stmts = _python_of(body)
    sig = lambda a: 0.5 * np.tanh(0.5 * a) + 0.5                              # the preamble's SIGMOID
    flat = {p[-1]: (np.asarray(a).reshape(-1) if not np.isscalar(a) else a) for p, a in zip(params, args)}
    elementwise = [p[-1] for p in params if p[0] != "raw" and p[0] != "int32"]
    outputs = [p[-1] for p in (q.strip().split() for q in out_params.split(","))]
    for i in range(size):
        env = {"i": i, "tanh": np.tanh, "SIGMOID": sig}
        env.update({k: v for k, v in flat.items() if k not in elementwise})      # raw arrays and H
        env.update({k: flat[k][i] for k in elementwise if k not in outputs})
        for s in stmts:
            exec(s, env)
        for k in outputs:
            if k in elementwise:
                flat[k][i] = env[k]


@pytest.mark.parametrize("name", list(CELLS))
def test_kernel_source_computes_the_reference_cell(name):
    rng = np.random.default_rng(0)
    cell, G, xw, hw, state, d_state = _case(name, rng)
    ref_state, ref_cache, ref_dxw, ref_dhw, ref_prev = _reference(name, cell, G, xw, hw, state, d_state)
    size = N * H
    e = lambda: np.empty((N, H))
    d_xw = np.full_like(xw, np.nan)
    if name == "lstm":
        out = [e() for _ in range(7)]
        _interpret("lstm_fwd", [xw, hw, state[1], H, *out], size)
        h, c, i, f, g, o, tanh_c = out
        got_state, got_cache = (h, c), (i, f, g, o, state[1], tanh_c)
        dc_prev = e()
        _interpret("lstm_bwd", [*d_state, i, f, g, o, state[1], tanh_c, H, d_xw, dc_prev], size)
        got_prev = (None, dc_prev)
    elif name == "gru":
        out = [e() for _ in range(5)]
        _interpret("gru_fwd", [xw, hw, state[0], H, *out], size)
        h, r, z, n, hw_n = out
        got_state, got_cache = (h,), (r, z, n, hw_n, state[0])
        d_hw, dh_prev = np.full_like(hw, np.nan), e()
        _interpret("gru_bwd", [d_state[0], r, z, n, hw_n, state[0], H, d_xw, d_hw, dh_prev], size)
        np.testing.assert_allclose(d_hw, ref_dhw, rtol=1e-14, atol=1e-15, err_msg="d_hw")
        got_prev = (dh_prev,)
    else:
        h = e()
        _interpret(name + "_fwd", [xw, hw, h], size)
        got_state, got_cache = (h,), h
        _interpret(name + "_bwd", [d_state[0], h, d_xw], size)
        got_prev = (None,)
    for a, b in zip(got_state, ref_state):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15, err_msg="state")
    for a, b in zip(got_cache if isinstance(got_cache, tuple) else (got_cache,),
                    ref_cache if isinstance(ref_cache, tuple) else (ref_cache,)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15, err_msg="cache")
    np.testing.assert_allclose(d_xw, ref_dxw, rtol=1e-14, atol=1e-15, err_msg="d_xw")   # every entry written
    for a, b in zip(got_prev, ref_prev):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15, err_msg="d_state_prev")


def test_without_cupy_the_kernels_say_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(cupy_cells, "_compiled", {})
    assert cupy_cells.available() is False
    cell, G, xw, hw, state, _ = _case("lstm", np.random.default_rng(1))
    with pytest.raises(KernelUnavailable, match="rnnkit\\[gpu\\]"):
        cupy_cells.fused_step("lstm", xw, hw, state)
    with pytest.raises(KernelUnavailable, match="no CuPy kernel for cell 'peephole'"):
        cupy_cells.fused_step("peephole", xw, hw, state)


# -- on a GPU --------------------------------------------------------------------
@pytest.fixture
def cupy():
    if not cupy_cells.available():
        pytest.skip(NO_GPU)
    import cupy
    return cupy


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("name", list(CELLS))
def test_fused_kernels_on_the_gpu_equal_the_reference_cells(cupy, name, dtype, tol):
    rng = np.random.default_rng(2)
    cell, G, xw, hw, state, d_state = _case(name, rng, dtype)
    ref_state, ref_cache, ref_dxw, ref_dhw, ref_prev = _reference(name, cell, G, xw, hw, state, d_state)
    dev = lambda a: cupy.asarray(a)
    new_state, cache = cupy_cells.fused_step(name, dev(xw), dev(hw), tuple(dev(s) for s in state))
    for a, b in zip(new_state, ref_state):
        assert a.dtype == dtype
        np.testing.assert_allclose(a.get(), b, rtol=tol, atol=tol)
    # the backward writes into slices of a bigger buffer, as the scanner's per-step views of (T, N, G*H)
    big = cupy.zeros((2, N, G * H), dtype=dtype)
    big_h = cupy.zeros((2, N, G * H), dtype=dtype) if cell.split_recurrent else None
    d_prev = cupy_cells.fused_step_backward(name, tuple(dev(s) for s in d_state), cache, big[1],
                                            None if big_h is None else big_h[1])
    np.testing.assert_allclose(big[1].get(), ref_dxw, rtol=tol, atol=tol)
    assert float(cupy.abs(big[0]).max()) == 0.0
    if big_h is not None:
        np.testing.assert_allclose(big_h[1].get(), ref_dhw, rtol=tol, atol=tol)
    for a, b in zip(d_prev, ref_prev):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a.get(), b, rtol=tol, atol=tol)
    # a strided d_xw (a column block of a wider array) still receives every gradient
    wide = cupy.zeros((N, 2 * G * H), dtype=dtype)
    cupy_cells.fused_step_backward(name, tuple(dev(s) for s in d_state), cache, wide[:, : G * H],
                                   None if big_h is None else cupy.zeros((N, G * H), dtype=dtype))
    np.testing.assert_allclose(wide[:, : G * H].get(), ref_dxw, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_the_scanner_hands_cupy_steps_to_the_fused_kernels(monkeypatch, mode):
    """The wiring, without a GPU: arrays taken for CuPy's make the reference scanner call fused_step and
    fused_step_backward once per step and cell (stand-ins here that run the reference cells and count), and the
    layer's outputs and gradients are those of the plain reference path."""
    from rnnkit.nn import scan
    from rnnkit.nn.recurrent import Recurrent
    rng = np.random.default_rng(3)
    T, B, D = 4, 2, 3
    x = rng.standard_normal((T, B, D))
    dy = rng.standard_normal((T, B, 2 * H))
    lengths = np.array([4, 2])

    def run():
        layer = Recurrent(mode, D, H, num_layers=2, bidirectional=True, dtype=np.float64, rng=5, backend="numpy")
        y, s, cache = layer.forward(x, lengths=lengths)
        dx, _ = layer.backward(dy, cache)
        return [y, dx] + [p.grad.copy() for p in layer.parameters()]

    expected = run()
    calls = {"fwd": 0, "bwd": 0}
    by_name = {name: cell for name, (cell, _) in CELLS.items()}

    def fake_step(name, xw, hw, state):
        calls["fwd"] += 1
        return by_name[name].step(xw, hw, state)

    def fake_backward(name, d_state, cache, d_xw, d_hw=None):
        calls["bwd"] += 1
        return by_name[name].step_backward(d_state, cache, d_xw, d_xw if d_hw is None else d_hw)

    monkeypatch.setattr(scan, "_on_cupy", lambda a: True)
    monkeypatch.setattr(cupy_cells, "fused_step", fake_step)
    monkeypatch.setattr(cupy_cells, "fused_step_backward", fake_backward)
    got = run()
    assert calls == {"fwd": 2 * 2 * T, "bwd": 2 * 2 * T}     # 2 layers x 2 directions x T steps
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
