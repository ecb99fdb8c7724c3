"""The recurrent variants (projection, variational dropout, weight drop, zoneout): gradients and twins.

Every variant alone and in the combinations that share a code path, 2 layers, bidirectional,
variable lengths, given initial states, random non-zero biases and random upstream gradients on
the outputs and both final states, T = 4: central finite differences in float64 with the random
masks held fixed (each call of f() reseeds the generator, so it draws the same masks), through
the reference scanner and through the compiled kernels; then an independent step-by-step PyTorch
autograd twin (tests/variant_cases.py) from the same weights and the same masks.
"""

import numpy as np
import pytest

from helpers import assert_grad_close, numeric_grad, sample_indices
from recurrent_cases import as_tuple, surrogate_loss
from variant_cases import VARIANT_IDS, VARIANTS, make_variant_case, torch_twin_forward

BACKENDS = ["numpy", "numba"]


def _backend_or_skip(name):
    if name == "numba":
        from ci_skip_guard import numba_unavailable
        if numba_unavailable():
            pytest.skip(numba_unavailable())
    return name


def _grads(layer, x, state, lengths, dy, d_state, seed=7):
    layer.zero_grad()
    y, state_n, cache = layer.forward(x, state, lengths, rng=np.random.default_rng(seed))
    dx, d_state0 = layer.backward(dy, cache, d_state)
    return y, state_n, cache, dx, d_state0


def assert_backends_agree(case, tol):
    """Outputs, final states and every gradient of ``case`` through each backend equal the reference's;
    returns the reference's arrays."""
    layer = case[0]
    out = {}
    for name in BACKENDS:
        layer.backend = name
        y, s, cache, dx, ds0 = _grads(*case)
        out[name] = [y, dx, *as_tuple(s), *as_tuple(ds0)] + [p.grad.copy() for _, p in layer.named_parameters()]
    for a, b in zip(out["numpy"], out["numba"]):
        scale = max(1.0, float(np.abs(a).max()))          # float32: errors relative to the array's size
        np.testing.assert_allclose(b, a, rtol=tol["rtol"], atol=tol["atol"] * scale)
    return out["numpy"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind,kw", VARIANTS, ids=VARIANT_IDS)
def test_variant_backward_matches_finite_differences(kind, kw, backend):
    layer, x, state, lengths, dy, d_state = make_variant_case(kind, kw)
    layer.backend = _backend_or_skip(backend)
    y, state_n, cache, dx, d_state0 = _grads(layer, x, state, lengths, dy, d_state)

    def f():
        y, s, _ = layer.forward(x, state, lengths, rng=np.random.default_rng(7))   # the same masks
        return surrogate_loss(y, s, dy, d_state)

    rng = np.random.default_rng(1)
    assert_grad_close(dx, numeric_grad(f, x, indices=sample_indices(rng, x.size, 12)), "dx")
    for j, (s, ds) in enumerate(zip(as_tuple(state), as_tuple(d_state0))):
        assert_grad_close(ds, numeric_grad(f, s, indices=sample_indices(rng, s.size, 10)), f"d_state0[{j}]")
    for name, p in layer.named_parameters():
        assert_grad_close(p.grad, numeric_grad(f, p.data, indices=sample_indices(rng, p.data.size, 8)), name)


@pytest.mark.parametrize("kind,kw", VARIANTS, ids=VARIANT_IDS)
def test_variant_equals_a_step_by_step_torch_twin(kind, kw):
    torch = pytest.importorskip("torch")
    layer, x, state, lengths, dy, d_state = make_variant_case(kind, kw)
    y, state_n, cache, dx, d_state0 = _grads(layer, x, state, lengths, dy, d_state)
    tx = torch.tensor(x, requires_grad=True)
    tstate = tuple(torch.tensor(s, requires_grad=True) for s in as_tuple(state))
    ty, tfinal, params = torch_twin_forward(layer, cache, tx, tstate if len(tstate) > 1 else tstate[0], lengths)
    loss = (ty * torch.tensor(dy)).sum() + sum((s * torch.tensor(d)).sum()
                                               for s, d in zip(tfinal, as_tuple(d_state)))
    loss.backward()
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, ty.detach().numpy(), err_msg="output", **tol)
    for j, (s, ts) in enumerate(zip(as_tuple(state_n), tfinal)):
        np.testing.assert_allclose(s, ts.detach().numpy(), err_msg=f"final state[{j}]", **tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), err_msg="dx", **tol)
    for j, (ds, ts) in enumerate(zip(as_tuple(d_state0), tstate)):
        np.testing.assert_allclose(ds, ts.grad.numpy(), err_msg=f"d state0[{j}]", **tol)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, params[name].grad.numpy(), err_msg=name, **tol)


@pytest.mark.parametrize("kind,kw", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_compiled_variant_equals_the_reference(kind, kw, dtype):
    _backend_or_skip("numba")
    # float32: sums over T*N terms in another order (and the kernels' tanh approximation); float64 is the check
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=1e-4)
    assert_backends_agree(make_variant_case(kind, kw, dtype=dtype, T=6, N=4, D=5, H=7), tol)


@pytest.mark.parametrize("kind,kw", VARIANTS, ids=VARIANT_IDS)
def test_evaluation_is_deterministic_and_needs_no_generator(kind, kw):
    layer, x, state, lengths, _, _ = make_variant_case(kind, kw)
    layer.eval()
    y1, s1, _ = layer.forward(x, state, lengths)
    y2, s2, _ = layer.forward(x, state, lengths)
    np.testing.assert_array_equal(y1, y2)
    layer.train()
    if kw.keys() & {"variational_dropout", "weight_drop", "zoneout", "zoneout_cell", "dropout"}:
        with pytest.raises(ValueError, match="rng"):
            layer.forward(x, state, lengths)
        y3, _, _ = layer.forward(x, state, lengths, rng=np.random.default_rng(3))
        assert not np.allclose(y3, y1)                     # training draws masks; evaluation does not


def test_zoneout_evaluation_is_the_expectation_of_training():
    """The mean over many training draws of one step's new state approaches p s_prev + (1-p) s_new."""
    layer, x, state, _, _, _ = make_variant_case("gru", dict(zoneout=0.3), varlen=False, num_layers=1,
                                                 bidirectional=False, T=1, N=2)
    layer.eval()
    y_eval, _, _ = layer.forward(x, state)
    layer.train()
    rng = np.random.default_rng(0)
    mean = np.mean([layer.forward(x, state, rng=rng)[0] for _ in range(4000)], axis=0)
    np.testing.assert_allclose(mean, y_eval, atol=0.03)


def test_weight_drop_trains_only_the_kept_weights_and_variational_masks_hold_over_time():
    layer, x, state, lengths, dy, d_state = make_variant_case("lstm", dict(weight_drop=0.5))
    _, _, cache, _, _ = _grads(layer, x, state, lengths, dy, d_state)
    w_mask = cache.weight_masks[0][0]
    assert 0 < (w_mask == 0).sum() < w_mask.size
    assert (layer.weight_hh_l0.grad[w_mask == 0] == 0).all()
    assert (layer.weight_hh_l0.grad[w_mask != 0] != 0).all()
    layer, x, state, lengths, dy, d_state = make_variant_case("lstm", dict(variational_dropout=0.5))
    _, _, cache, _, _ = _grads(layer, x, state, lengths, dy, d_state)
    m = cache.input_masks[1]                                   # (N, K*H): one mask per sequence
    assert m.shape == (x.shape[1], 2 * layer.hidden_size) and set(np.unique(m)) == {0.0, 2.0}


@pytest.mark.parametrize("kind,kw", [("lstm", dict(proj_size=2, zoneout=0.2)), ("lstm", dict(peephole=True)),
                                     ("lstm", dict(layer_norm=True, proj_size=3)), ("gru", dict(layer_norm=True))])
def test_step_api_equals_forward(kind, kw):
    """The one-step API runs the variants (zoneout as its expectation) exactly as the scanner does."""
    layer, x, state, _, dy, d_state = make_variant_case(kind, kw, varlen=False, bidirectional=False)
    layer.eval()
    y, s_n, cache = layer.forward(x, state)
    caches, s, outs = [], state, []
    for t in range(x.shape[0]):
        o, s, c = layer.step_forward(x[t], s)
        outs.append(o)
        caches.append(c)
    np.testing.assert_allclose(np.stack(outs), y, rtol=1e-12)
    layer.zero_grad()
    dx, ds0 = layer.backward(dy, cache, d_state)
    g_seq = {n: p.grad.copy() for n, p in layer.named_parameters()}
    layer.zero_grad()
    dx2, ds02 = layer.steps_backward(dy, caches, d_state)
    np.testing.assert_allclose(dx2, dx, rtol=1e-10)
    for a, b in zip(as_tuple(ds02), as_tuple(ds0)):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, g_seq[n], rtol=1e-10, atol=1e-13, err_msg=n)
    layer.train()
    if "zoneout" in kw:                                        # training-mode masks need a whole sequence
        with pytest.raises(ValueError, match="single step"):
            layer.step_forward(x[0], state)


@pytest.mark.parametrize("kw,match", [(dict(proj_size=4), "smaller than hidden_size"),
                                      (dict(proj_size=-1), "proj_size"), (dict(zoneout=1.5), "zoneout"),
                                      (dict(weight_drop=-0.1), "weight_drop")])
def test_bad_variant_settings_are_refused(kw, match):
    from rnnkit.nn import LSTM
    with pytest.raises(ValueError, match=match):
        LSTM(3, 4, **kw)
    from rnnkit.nn import GRU
    with pytest.raises(ValueError, match="LSTM only"):
        GRU(3, 4, proj_size=2)


@pytest.mark.parametrize("kind,kw", VARIANTS, ids=VARIANT_IDS)
def test_the_shape_table_knows_every_variant_parameter(kind, kw):
    from rnnkit.nn.shapes import recurrent_shapes
    layer = make_variant_case(kind, kw)[0]
    table = recurrent_shapes("", layer.mode, layer.input_size, layer.hidden_size, layer.num_layers,
                             bidirectional=layer.bidirectional, proj_size=layer.proj_size, peephole=layer.peephole,
                             layer_norm=layer.layer_norm)
    assert table == {n: p.shape for n, p in layer.named_parameters()}
