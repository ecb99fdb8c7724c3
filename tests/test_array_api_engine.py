"""The recurrent engine on array-api-strict arrays on a second device (``Device("device1")``).

The engine is array-API code (rnnkit.nn.xp): a model moved with ``Module.to(device)``
computes in the namespace of its inputs. array-api-strict has only the standard's
functions and refuses to mix devices or to become a NumPy array, so every check
here fails on a hidden ``np.`` call, a forgotten ``device=`` or a host round trip.

The grid is the NumPy tests' own (tests/recurrent_cases.py, tests/variant_cases.py):

- every GRID case (RNN tanh/relu, LSTM, GRU x 1/2 layers x uni/bi x equal/mixed/short
  lengths x zero/given initial state) and every variant equals the NumPy reference
  scanner (outputs, final states, every gradient; float64, rtol 1e-12), with the
  regularisers' masks drawn from the same seed;
- central finite differences on the device (float64, random non-zero biases, random
  upstream gradients on the outputs and both final states, T = 4) on a sub-grid;
- PyTorch parity from identical weights for the whole GRID;
- truncated BPTT (a chunk's d_state0 fed to the previous chunk), the one-step API,
  ``Module.to`` round trips, model files saved from and loaded onto the device.
"""

import numpy as np
import pytest

from helpers import assert_grad_close, sample_indices, torch_twin
from recurrent_cases import CELL_KINDS, GRID, GRID_IDS, as_tuple, make_case, make_layer, surrogate_loss
from strict_device import DEVICE, assert_same, device_case, on_device, on_host
from variant_cases import VARIANT_IDS, VARIANTS, make_variant_case

import array_api_strict as xps
from rnnkit.io.modelfile import load_model_file, save_model_file
from rnnkit.nn import Module, Parameter
from rnnkit.nn.diagnostics import hidden_gradient_norms
from rnnkit.nn.xp import DeviceError, to_device


def _run(layer, x, state, lengths, dy, d_state, seed=7):
    """Forward and backward once: (y, state_n, dx, d_state0, {name: grad})."""
    layer.zero_grad()
    y, s, cache = layer.forward(x, state, lengths, rng=np.random.default_rng(seed))
    dx, ds0 = layer.backward(dy, cache, d_state)
    return y, s, dx, ds0, {n: p.grad for n, p in layer.named_parameters()}


def _assert_device_equals_numpy(make):
    """``make()`` builds the same case twice; one runs on NumPy (reference scanner), one on DEVICE."""
    host = make()
    host[0].backend = "numpy"
    want = _run(*host)
    got = _run(*device_case(make()))
    for what, a, b in zip(("output", "final state", "d input", "d initial state"), got[:4], want[:4]):
        assert_same(a, b, what)
    assert got[4].keys() == want[4].keys()
    for name in want[4]:
        assert_same(got[4][name], want[4][name], "d " + name)


@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", GRID, ids=GRID_IDS)
def test_grid_on_device_equals_numpy(kind, num_layers, bidirectional, varlen, given_state):
    _assert_device_equals_numpy(lambda: make_case(kind, num_layers, bidirectional, varlen, given_state))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
def test_batch_first_and_no_bias_on_device_equal_numpy(kind):
    _assert_device_equals_numpy(lambda: make_case(kind, 2, True, True, True, T=5, batch_first=True))
    _assert_device_equals_numpy(lambda: make_case(kind, 2, True, True, False, bias=False))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kind,kw", VARIANTS, ids=VARIANT_IDS)
def test_variants_on_device_equal_numpy(kind, kw, training):
    """Training mode: the masks come from the same seed on the host, so the device run draws the CPU run's."""
    def make():
        case = make_variant_case(kind, kw)
        case[0].train(training)
        return case
    _assert_device_equals_numpy(make)


# -- central finite differences on the device ---------------------------------------------------
FD_CASES = [(kind, 2, True, True, True) for kind in CELL_KINDS] + [(kind, 1, False, "short", False)
                                                                    for kind in CELL_KINDS]
# layer norm, peephole (one bidirectional layer: their own weights are many), GRU with dropout between two layers;
# each with the projection or the regularisers
FD_VARIANTS = [(*VARIANTS[13], 1), (*VARIANTS[16], 1), (*VARIANTS[17], 2)]


def _device_numeric_grad(loss, host, put, indices, eps=1e-6):
    """Central differences of ``loss()`` in the entries ``indices`` of ``host``, which ``put`` moves to the device."""
    g = np.full(host.shape, np.nan)
    flat = host.reshape(-1)
    for i in indices:
        old = flat[i]
        values = []
        for v in (old + eps, old - eps):
            flat[i] = v
            put(host)
            values.append(loss())
        flat[i] = old
        g.reshape(-1)[i] = (values[0] - values[1]) / (2 * eps)
    put(host)
    return g


def _check_finite_differences(case, seed=7):
    """``case`` on the host; the layer is moved to DEVICE and every array goes there for each evaluation."""
    layer, x, state, lengths, dy, d_state = case
    layer.to(DEVICE)
    dev = {"x": on_device(x), "state": list(as_tuple(on_device(state))) if state is not None else None}
    dy_dev, ds_dev = on_device(dy), on_device(d_state)
    pack = lambda s: None if s is None else (tuple(s) if len(s) == 2 else s[0])

    def loss():
        y, s, _ = layer.forward(dev["x"], pack(dev["state"]), lengths, rng=np.random.default_rng(seed))
        return surrogate_loss(on_host(y), on_host(s), dy, d_state)

    got = _run(layer, dev["x"], pack(dev["state"]), lengths, dy_dev, ds_dev, seed)
    rng = np.random.default_rng(1)
    x_host = np.array(x)
    assert_grad_close(on_host(got[2]), _device_numeric_grad(
        loss, x_host, lambda h: dev.__setitem__("x", on_device(h)), sample_indices(rng, x.size, 8)), "dx")
    if state is not None:
        for j, (s, ds) in enumerate(zip(as_tuple(state), as_tuple(got[3]))):
            def put(h, j=j):
                dev["state"][j] = on_device(h)
            assert_grad_close(on_host(ds), _device_numeric_grad(loss, np.array(s), put,
                                                                sample_indices(rng, s.size, 6)), f"d_state0[{j}]")
    for name, p in layer.named_parameters():
        def put(h, p=p):
            p.data = on_device(h)
        assert_grad_close(on_host(got[4][name]), _device_numeric_grad(loss, on_host(p.data), put,
                                                                      sample_indices(rng, p.data.size, 4)), name)


@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", FD_CASES,
                         ids=[f"{c[0]}-L{c[1]}-{'bi' if c[2] else 'uni'}-{c[3]}" for c in FD_CASES])
def test_device_backward_matches_finite_differences(kind, num_layers, bidirectional, varlen, given_state):
    _check_finite_differences(make_case(kind, num_layers, bidirectional, varlen, given_state))


@pytest.mark.parametrize("kind,kw,num_layers", FD_VARIANTS,
                         ids=[VARIANT_IDS[VARIANTS.index(v[:2])] for v in FD_VARIANTS])
def test_device_variant_backward_matches_finite_differences(kind, kw, num_layers):
    _check_finite_differences(make_variant_case(kind, kw, num_layers=num_layers))


# -- PyTorch from identical weights ------------------------------------------------------------
@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", GRID, ids=GRID_IDS)
def test_grid_on_device_equals_torch(kind, num_layers, bidirectional, varlen, given_state):
    from test_recurrent_torch import run_torch
    host = make_case(kind, num_layers, bidirectional, varlen, given_state, T=6, N=4, D=5, H=7)
    twin = torch_twin(host[0])
    ty, tsn, tdx, tds0, tgrads = run_torch(twin, *host[1:])
    y, s, dx, ds0, grads = _run(*device_case(host))
    close = dict(rtol=1e-10, atol=1e-12)
    assert_same(y, ty, "output", **close)
    assert_same(s, tsn, "final state", **close)
    assert_same(dx, tdx, "d input", **close)
    if tds0 is not None:
        assert_same(ds0, tds0, "d initial state", **close)
    assert grads.keys() == tgrads.keys()
    for name, g in grads.items():
        assert_same(g, tgrads[name], "d " + name, **close)


# -- truncated BPTT and the one-step API --------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_truncated_bptt_through_d_state_on_device(kind):
    """Two chunks, the second's d_state0 fed into the first's backward, sum to the whole sequence's gradients
    (unidirectional: a reverse direction would start each chunk at its own end)."""
    layer, x, state, lengths, dy, d_state = device_case(make_case(kind, 2, False, False, True, T=6))
    whole = _run(layer, x, state, None, dy, d_state)
    whole_grads = {n: on_host(g) for n, g in whole[4].items()}
    layer.zero_grad()
    y1, s1, c1 = layer.forward(x[:3, ...], state)
    y2, s2, c2 = layer.forward(x[3:, ...], s1)
    dx2, ds1 = layer.backward(dy[3:, ...], c2, d_state)
    dx1, ds0 = layer.backward(dy[:3, ...], c1, ds1)
    assert_same(xps.concat([dx1, dx2]), on_host(whole[2]), "d input")
    assert_same(ds0, on_host(whole[3]), "d initial state")
    for name, p in layer.named_parameters():
        assert_same(p.grad, whole_grads[name], "d " + name)


STEP_CASES = [("lstm", {}), ("gru", {}), ("rnn_tanh", {}), ("lstm", dict(proj_size=3, zoneout=0.3)),
              ("lstm", dict(peephole=True)), ("lstm", dict(layer_norm=True)), ("gru", dict(layer_norm=True))]


@pytest.mark.parametrize("kind,kw", STEP_CASES, ids=[k + "".join(f"-{a}" for a in kw) for k, kw in STEP_CASES])
def test_one_step_api_on_device_equals_numpy(kind, kw):
    """step_forward over T steps and steps_backward, in eval mode (zoneout's expectation) with dropout in training."""
    results = []
    for move in (False, True):
        layer, x, state, _, dy, d_state = make_case(kind, 2, False, False, True, T=4, dropout=0.3, **kw)
        layer.backend = "numpy"
        if kw:
            layer.eval()                  # the regularisers draw one mask per sequence: steps run them in eval
        if move:
            layer, x, state, _, dy, d_state = device_case((layer, x, state, None, dy, d_state))
        rng = np.random.default_rng(3)
        outs, caches, s = [], [], state
        for t in range(x.shape[0]):
            out, s, cache = layer.step_forward(x[t, ...], s, rng)
            outs.append(out)
            caches.append(cache)
        layer.zero_grad()
        dx, ds0 = layer.steps_backward([dy[t, ...] for t in range(x.shape[0])], caches, d_state)
        results.append((outs, s, dx, ds0, {n: p.grad for n, p in layer.named_parameters()}))
    (h_outs, h_s, h_dx, h_ds0, h_g), (d_outs, d_s, d_dx, d_ds0, d_g) = results
    assert_same(d_outs, h_outs, "step outputs")
    assert_same(d_s, h_s, "final state")
    assert_same(d_dx, h_dx, "d input")
    assert_same(d_ds0, h_ds0, "d initial state")
    for name in h_g:
        assert_same(d_g[name], h_g[name], "d " + name)


def test_gradient_norm_diagnostics_on_device_equal_numpy():
    layer, x, _, _, dy, _ = make_case("lstm", 2, False, False, False, T=5)
    want = hidden_gradient_norms(layer, x, dy[-1])
    got = hidden_gradient_norms(layer.to(DEVICE), on_device(x), on_device(dy[-1]))
    np.testing.assert_allclose(got, want, rtol=1e-12)


# -- moving models, model files, and what must fail ---------------------------------------------
class _Tied(Module):
    def __init__(self):
        super().__init__()
        self.add_module("a", make_layer("gru", 3, 4))
        self.add_module("b", make_layer("gru", 3, 4, seed=1))
        self.b.weight_hh_l0 = self.a.weight_hh_l0           # one parameter under two names


def test_module_to_device_and_back_keeps_parameters_and_ties():
    model = _Tied()
    before = {n: p.data.copy() for n, p in model.named_parameters(remove_duplicate=False)}
    params = model.parameters()
    assert model.to(DEVICE) is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]      # identity kept
    assert model.b.weight_hh_l0 is model.a.weight_hh_l0                        # the tie too
    for p in params:
        assert p.data.device == DEVICE and p.grad.device == DEVICE
    state = model.state_dict()
    assert all(v.device == DEVICE for v in state.values())
    model.a.weight_hh_l0.grad += 1.0
    model.zero_grad()
    assert float(xps.sum(xps.abs(model.a.weight_hh_l0.grad))) == 0.0
    made_there = Parameter(on_device(np.ones(3)))                            # a parameter made on the device
    assert made_there.grad.device == DEVICE and float(xps.sum(made_there.grad)) == 0.0
    model.to("cpu")
    for n, p in model.named_parameters(remove_duplicate=False):
        assert isinstance(p.data, np.ndarray) and isinstance(p.grad, np.ndarray)
        np.testing.assert_array_equal(p.data, before[n])


def test_model_file_saved_from_device_loads_onto_device(tmp_path):
    src = make_layer("lstm", 3, 4, 2, True, seed=4).to(DEVICE)
    path = tmp_path / "m.rnnkit"
    save_model_file(path, kind="test", config={}, arrays=src.state_dict())
    loaded = load_model_file(path, "test")
    assert all(isinstance(a, np.ndarray) for a in loaded.arrays.values())   # files hold host arrays
    dst = make_layer("lstm", 3, 4, 2, True, seed=5).to(DEVICE)
    dst.load_state_dict(loaded.arrays)
    for (n, p), (_, q) in zip(src.named_parameters(), dst.named_parameters()):
        assert q.data.device == DEVICE, n
        np.testing.assert_array_equal(on_host(q.data), on_host(p.data), err_msg=n)
    dst.load_state_dict(src.state_dict())                                     # device arrays load too


def test_mixing_devices_or_libraries_fails():
    layer, x, state, lengths, dy, d_state = device_case(make_case("gru", 1, False, True, True))
    with pytest.raises(DeviceError, match="device"):
        layer.forward(np.ones((4, 3, 3)))                                     # a NumPy input to a device layer
    cpu_x = to_device(on_host(x), xps.Device("CPU_DEVICE"), xps)
    with pytest.raises(DeviceError, match="device1"):
        layer.forward(cpu_x)                                                  # strict, but the other device
    cpu_state = to_device(on_host(state), xps.Device("CPU_DEVICE"), xps)
    with pytest.raises(DeviceError, match="initial state h: on device .*CPU_DEVICE.* are on .*device1"):
        layer.forward(x, cpu_state, lengths)                                  # refused before strict's refusal


def test_the_compiled_kernels_see_numpy_arrays_only(monkeypatch):
    """With the numba backend asked for, device arrays take the reference scanner; NumPy arrays the kernels."""
    from ci_skip_guard import numba_unavailable
    if numba_unavailable():
        pytest.skip(numba_unavailable())
    from rnnkit.kernels import fused_scan

    def refuse(*a, **k):
        raise AssertionError("a fused kernel was called")
    monkeypatch.setattr(fused_scan, "scan_forward", refuse)
    layer, x, state, lengths, _, _ = make_case("lstm", 1, False, True, True)
    layer.backend = "numba"
    with pytest.raises(AssertionError, match="fused kernel"):                 # the control: NumPy goes there
        layer.forward(x, state, lengths)
    layer.to(DEVICE).forward(on_device(x), on_device(state), lengths)


# -- a third library: PyTorch tensors through array-api-compat (the path CuPy takes too) ----------
TORCH_CASES = [("grid", GRID[GRID_IDS.index(i)], i) for i in ("lstm-L2-bi-varlen-h0", "gru-L2-bi-short-h0",
                                                              "rnn_relu-L1-uni-varlen-zero")]
TORCH_CASES += [("variant", VARIANTS[i], VARIANT_IDS[i]) for i in (13, 16, 17)]


@pytest.mark.parametrize("which,args", [c[:2] for c in TORCH_CASES], ids=[c[2] for c in TORCH_CASES])
def test_engine_on_torch_tensors_equals_numpy(which, args):
    import torch
    make = (lambda: make_case(*args)) if which == "grid" else (lambda: make_variant_case(*args))
    host = make()
    host[0].backend = "numpy"
    want = _run(*host)
    layer, x, state, lengths, dy, d_state = make()
    put = lambda a: None if a is None else (tuple(map(put, a)) if isinstance(a, tuple) else torch.from_numpy(a.copy()))
    got = _run(layer.to(torch.device("cpu")), put(x), put(state), lengths, put(dy), put(d_state))
    for a, b in zip(got[:4], want[:4]):
        for u, v in zip(as_tuple(a), as_tuple(b)):
            assert isinstance(u, torch.Tensor)
            np.testing.assert_allclose(u.numpy(), v, rtol=1e-12, atol=1e-14)
    for name, g in want[4].items():
        np.testing.assert_allclose(got[4][name].numpy(), g, rtol=1e-12, atol=1e-14, err_msg=name)
