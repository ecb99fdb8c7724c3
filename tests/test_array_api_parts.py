"""Layers, losses, attention, optimisers and clipping on array-api-strict arrays on a non-default device.

array-api-strict's ``Device("device1")`` is a device that is not the host: its
arrays refuse ``np.asarray`` and refuse to meet arrays of another device or
library, so any hidden conversion to NumPy or any mixing of devices in the code
under test raises here, on a machine without a GPU. Every part is checked two
ways: central finite differences in float64 on the device, and equality (values
and gradients) with the NumPy path from the same weights and inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import assert_grad_close, numeric_grad, sample_indices
from rnnkit.errors import TrainingError
from rnnkit.nn.attention import make_attention
from rnnkit.nn.layers import Dropout, Embedding, Linear
from rnnkit.nn.losses import bce_with_logits, cross_entropy, log_softmax, mse, softmax
from rnnkit.nn.module import Parameter
from rnnkit.nn.xp import to_device, to_host
from rnnkit.optim import clip_grad_norm, clip_grad_value
from rnnkit.optim.checks import first_nonfinite
from test_optim import CASES, CASE_IDS, SHAPES

xps = pytest.importorskip("array_api_strict")
DEV = xps.Device("device1")


def dev(a):
    """A host array (or a list) as an array-api-strict array on device1."""
    return to_device(np.asarray(a), DEV, xps)


def host(a):
    return to_host(a)


def to_dev(module):
    """The module's parameters (values and gradients) moved to device1 in place of the host arrays."""
    for p in module.parameters():
        p.data, p.grad = dev(p.data), dev(p.grad)
    return module


def dev_param(a):
    """A Parameter holding ``a`` (host) on device1, value and gradient."""
    p = Parameter(np.asarray(a))
    p.data, p.grad = dev(p.data), dev(p.grad)
    return p


def check_fd(f, x_host, name, rng, analytic, k=8, idx=None):
    """Central differences of f() (which reads ``x_host``, perturbed in place) against ``analytic``."""
    idx = sample_indices(rng, x_host.size, k) if idx is None else idx
    assert_grad_close(host(analytic), numeric_grad(f, x_host, indices=idx), name)


def close(a, b, what):
    np.testing.assert_allclose(host(a), host(b), rtol=1e-12, atol=1e-14, err_msg=what)


# -- the guard itself ------------------------------------------------------
def test_the_device_refuses_hidden_conversions_and_mixing():
    """What the rest of the file relies on: strict raises on a conversion to NumPy and on mixed devices."""
    a = dev(np.ones(3))
    with pytest.raises(RuntimeError):
        np.asarray(a)
    with pytest.raises(ValueError):
        a + xps.asarray(np.ones(3))                # the same library on the default device
    lin = Linear(3, 2, dtype=np.float64, rng=0)    # host weights, device input: refused in one line, not converted
    from rnnkit.nn.xp import DeviceError
    with pytest.raises(DeviceError, match="move the layer with"):
        lin(a[None, :])


# -- Linear ------------------------------------------------------------------
def test_linear_on_device_equals_numpy_and_finite_differences():
    rng = np.random.default_rng(0)
    ref = Linear(4, 3, dtype=np.float64, rng=1)
    ref.bias.data[...] = rng.standard_normal(3)
    lin = to_dev(Linear(4, 3, dtype=np.float64, rng=1))
    lin.bias.data[...] = dev(ref.bias.data)
    x = rng.standard_normal((3, 2, 4))             # (T, N, D), T = 3
    dy = rng.standard_normal((3, 2, 3))
    y0, c0 = ref(x)
    dx0 = ref.backward(dy, c0)
    y, c = lin(dev(x))
    dx = lin.backward(dev(dy), c)
    assert y.device == DEV and dx.device == DEV and lin.weight.grad.device == DEV
    close(y, y0, "y")
    close(dx, dx0, "dx")
    for (name, p), q in zip(lin.named_parameters(), ref.parameters()):
        close(p.grad, q.grad, name)

    def f():
        return float(xps.sum(lin(dev(x))[0] * dev(dy)))
    check_fd(f, x, "dx", rng, dx)
    for name, p in lin.named_parameters():
        w = host(p.data)

        def fp(p=p, w=w):
            p.data = dev(w)
            return f()
        check_fd(fp, w, name, rng, p.grad)
        p.data = dev(w)


# -- Embedding ---------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_on_device_accumulates_repeated_ids_like_numpy(padding_idx):
    rng = np.random.default_rng(1)
    ref = Embedding(6, 3, padding_idx=padding_idx, dtype=np.float64, rng=2)
    emb = to_dev(Embedding(6, 3, padding_idx=padding_idx, dtype=np.float64, rng=2))
    ids = np.array([[0, 2, 2], [5, 2, 0], [1, 1, 2], [0, 0, 4]])   # (T=4, N=3), repeats and padding
    dy = rng.standard_normal((4, 3, 3))
    y0, c0 = ref(ids)
    ref.backward(dy, c0)
    y, c = emb(dev(ids))
    emb.backward(dev(dy), c)
    assert y.device == DEV and emb.weight.grad.device == DEV
    close(y, y0, "y")
    close(emb.weight.grad, ref.weight.grad, "d_weight")
    w = host(emb.weight.data)

    def f():
        emb.weight.data = dev(w)
        return float(xps.sum(emb(dev(ids))[0] * dev(dy)))
    rows = [r for r in range(6) if r != padding_idx]      # the padding row gets no gradient by design
    check_fd(f, w, "d_weight", rng, emb.weight.grad, idx=[r * 3 + j for r in rows for j in range(3)])
    if padding_idx is not None:
        assert np.all(host(emb.weight.grad)[padding_idx] == 0.0)


def test_embedding_on_device_rejects_bad_ids():
    emb = to_dev(Embedding(4, 2, dtype=np.float64, rng=0))
    with pytest.raises(Exception, match=r"ids must lie in \[0, 4\)"):
        emb(dev(np.array([1, 4])))
    with pytest.raises(Exception, match="integer ids"):
        emb(dev(np.array([1.0])))


# -- Dropout -----------------------------------------------------------------
def test_dropout_on_device_draws_the_host_mask_for_the_same_seed():
    x = np.random.default_rng(2).standard_normal((3, 4, 5))
    drop = Dropout(0.4)
    y0, m0 = drop(x, np.random.default_rng(7))
    y, m = drop(dev(x), np.random.default_rng(7))
    assert y.device == DEV
    np.testing.assert_array_equal(host(y), y0)
    dy = np.random.default_rng(3).standard_normal(x.shape)
    np.testing.assert_array_equal(host(drop.backward(dev(dy), m)), drop.backward(dy, m0))
    with drop.eval_mode():
        y_eval, _ = drop(dev(x))
    np.testing.assert_array_equal(host(y_eval), x)


# -- losses ------------------------------------------------------------------
def _ce_case(rng, how):
    T, N, C = 3, 4, 5
    z = rng.standard_normal((T, N, C))
    y = rng.integers(0, C, (T, N))
    mask = None
    if how == "mask":
        mask = np.ones((T, N), bool)
        mask[1:, 2:] = False                      # padding at the end of two sequences
    if how == "ignore":
        y[2, 1:] = 0
    return z, y, mask


@pytest.mark.parametrize("how", ["plain", "mask", "ignore"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_on_device(how, smoothing, reduction):
    rng = np.random.default_rng(3)
    z, y, mask = _ce_case(rng, how)
    kw = dict(label_smoothing=smoothing, reduction=reduction, ignore_index=0 if how == "ignore" else None)
    loss0, g0 = cross_entropy(z, y, mask=mask, **kw)
    loss, g = cross_entropy(dev(z), dev(y), mask=None if mask is None else dev(mask), **kw)
    assert isinstance(loss, float) and g.device == DEV
    assert loss == pytest.approx(loss0, rel=1e-13)
    close(g, g0, "d_logits")

    def f():
        return cross_entropy(dev(z), dev(y), mask=None if mask is None else dev(mask), **kw)[0]
    check_fd(f, z, "d_logits", rng, g, k=20)


def test_cross_entropy_on_device_minus_inf_at_a_padded_token_gives_no_nan():
    z = np.zeros((2, 3))
    z[1, 0] = -np.inf                             # the placeholder class of the padded token
    y = np.array([1, 0])
    loss, g = cross_entropy(dev(z), dev(y), mask=dev(np.array([True, False])))
    assert np.isfinite(loss) and np.all(np.isfinite(host(g)))
    assert np.all(host(g)[1] == 0.0)


def test_softmax_and_log_softmax_on_device():
    z = np.random.default_rng(4).standard_normal((3, 5)) * 30
    close(softmax(dev(z)), softmax(z), "softmax")
    close(log_softmax(dev(z)), log_softmax(z), "log_softmax")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("masked", [False, True])
def test_mse_and_bce_on_device(reduction, masked):
    rng = np.random.default_rng(5)
    p = rng.standard_normal((3, 4, 2))
    t = rng.standard_normal((3, 4, 2))
    prob = rng.random((3, 4, 2))
    mask = (np.arange(4)[None, :, None] < np.array([4, 2, 3])[:, None, None]) if masked else None   # (T, N, 1)
    dmask = None if mask is None else dev(mask)
    for loss_fn, target in ((mse, t), (bce_with_logits, prob)):
        l0, g0 = loss_fn(p, target, mask=mask, reduction=reduction)
        loss, g = loss_fn(dev(p), dev(target), mask=dmask, reduction=reduction)
        assert isinstance(loss, float) and g.device == DEV
        assert loss == pytest.approx(l0, rel=1e-13), loss_fn.__name__
        close(g, g0, loss_fn.__name__)

        def f(loss_fn=loss_fn, target=target):
            return loss_fn(dev(p), dev(target), mask=dmask, reduction=reduction)[0]
        check_fd(f, p, loss_fn.__name__, rng, g, k=12)
        if masked:
            assert np.all(host(g)[~np.broadcast_to(mask, p.shape)] == 0.0)


# -- attention ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general"])
@pytest.mark.parametrize("queries", [None, 3])
def test_attention_on_device_equals_numpy_and_finite_differences(kind, queries):
    rng = np.random.default_rng(6)
    N, S, Q = 3, 5, 4
    K = Q if kind == "dot" else 6

    def build():
        return make_attention(kind, Q, K, attention_size=7 if kind == "bahdanau" else None, dtype=np.float64, rng=3)
    ref, att = build(), to_dev(build())
    q = rng.standard_normal((N, Q) if queries is None else (N, queries, Q))
    h = rng.standard_normal((N, S, K))
    mask = np.arange(S)[None, :] < np.array([5, 2, 3])[:, None]      # (N, S)
    dc = rng.standard_normal(q.shape[:-1] + (K,))
    dw = rng.standard_normal(q.shape[:-1] + (S,))
    c0, w0, cache0 = ref(q, h, mask)
    dq0, dh0 = ref.backward(dc, cache0, d_weights=dw)
    c, w, cache = att(dev(q), dev(h), dev(mask))
    dq, dh = att.backward(dev(dc), cache, d_weights=dev(dw))
    assert c.device == DEV and dh.device == DEV
    for a, b, what in ((c, c0, "context"), (w, w0, "weights"), (dq, dq0, "d_query"), (dh, dh0, "d_memory")):
        close(a, b, what)
    for (name, p), r in zip(att.named_parameters(), ref.parameters()):
        close(p.grad, r.grad, name)
    assert np.all(host(dh)[~mask] == 0.0)

    def f():
        c, w, _ = att(dev(q), dev(h), dev(mask))
        return float(xps.sum(c * dev(dc)) + xps.sum(w * dev(dw)))
    check_fd(f, q, "d_query", rng, dq)
    check_fd(f, h, "d_memory", rng, dh)
    for name, p in att.named_parameters():
        wh = host(p.data)

        def fp(p=p, wh=wh):
            p.data = dev(wh)
            return f()
        check_fd(fp, wh, name, rng, p.grad)
        p.data = dev(wh)


def test_attention_on_device_refuses_a_host_mask():
    att = to_dev(make_attention("dot", 4, 4, dtype=np.float64, rng=0))
    h = dev(np.random.default_rng(0).standard_normal((2, 3, 4)))
    with pytest.raises((TypeError, ValueError)):
        att(dev(np.ones((2, 4))), h, np.ones((2, 3), bool))


# -- optimisers --------------------------------------------------------------
@pytest.mark.parametrize("cls,_torch_cls,kwargs", CASES, ids=CASE_IDS)
def test_optimiser_on_device_equals_numpy_over_several_steps(cls, _torch_cls, kwargs):
    rng = np.random.default_rng(7)
    init = [rng.standard_normal(s) for s in SHAPES]
    ours = [Parameter(a.copy()) for a in init]
    theirs = [dev_param(a) for a in init]
    opt0, opt = cls(ours, **kwargs), cls(theirs, **kwargs)
    for step in range(5):
        if step == 3:                               # a schedule may change lr between steps
            opt0.lr *= 0.5
            opt.lr *= 0.5
        for p, q in zip(ours, theirs):
            g = rng.standard_normal(p.data.shape)
            p.grad[...] = g
            q.grad[...] = dev(g)
        opt0.step()
        opt.step()
        for k, (p, q) in enumerate(zip(ours, theirs)):
            assert q.data.device == DEV
            close(q.data, p.data, f"step {step + 1}, parameter {k}")
    # state_dict: host copies, equal to NumPy's; loading it onto the device continues identically
    s0, s = opt0.state_dict(), opt.state_dict()
    assert s["scalars"] == s0["scalars"] and set(s["arrays"]) == set(s0["arrays"])
    for key, a in s["arrays"].items():
        assert isinstance(a, np.ndarray)
        close(a, s0["arrays"][key], key)
    fresh = [dev_param(host(q.data)) for q in theirs]
    again = cls(fresh, **kwargs)
    again.load_state_dict(s)
    for arrays in again.state.values():
        assert all(a.device == DEV for a in arrays)
    g = [rng.standard_normal(p.data.shape) for p in ours]
    for params, o, move in ((ours, opt0, np.asarray), (fresh, again, dev)):
        for p, gi in zip(params, g):
            p.grad[...] = move(gi)
        o.step()
    for p, q in zip(ours, fresh):
        close(q.data, p.data, "after resuming on the device")


# -- clipping and non-finite checks ------------------------------------------
def _grad_pairs(scale):
    rng = np.random.default_rng(8)
    ours = [Parameter(np.zeros(s)) for s in SHAPES]
    theirs = [dev_param(np.zeros(s)) for s in SHAPES]
    for p, q in zip(ours, theirs):
        g = scale * rng.standard_normal(p.data.shape)
        p.grad[...] = g
        q.grad = dev(g)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_clip_grad_norm_on_device_equals_numpy(norm_type, scale):
    ours, theirs = _grad_pairs(scale)
    n0 = clip_grad_norm(ours, 1.0, norm_type)
    n = clip_grad_norm(theirs, 1.0, norm_type)
    assert isinstance(n, float) and n == pytest.approx(n0, rel=1e-13)
    for p, q in zip(ours, theirs):
        assert q.grad.device == DEV
        close(q.grad, p.grad, "clipped gradient")


def test_clip_grad_value_and_nonfinite_checks_on_device():
    ours, theirs = _grad_pairs(10.0)
    clip_grad_value(ours, 2.5)
    clip_grad_value(theirs, 2.5)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(host(q.grad), p.grad)
    assert first_nonfinite(("p", q.grad) for q in theirs) is None
    bad = np.zeros(SHAPES[1])
    bad[2] = np.inf
    theirs[1].grad = dev(bad)
    assert first_nonfinite((f"p{i}", q.grad) for i, q in enumerate(theirs)) == ("p1", "inf")
    bad[3] = np.nan
    theirs[1].grad = dev(bad)
    assert first_nonfinite((f"p{i}", q.grad) for i, q in enumerate(theirs)) == ("p1", "nan")
    with pytest.raises(TrainingError, match="cannot be clipped"):
        clip_grad_norm(theirs, 1.0, error_if_nonfinite=True)


# -- the training loop -------------------------------------------------------
def test_training_loop_on_device_equals_numpy():
    """fit() with device parameters: clipping, the non-finite checks and Adam on the device, the same run."""
    from rnnkit.nn.module import Module
    from rnnkit.optim import Adam
    from rnnkit.train.loop import fit


    class Net(Module):
        def __init__(self):
            super().__init__()
            self.emb = Embedding(7, 4, dtype=np.float64, rng=1)
            self.out = Linear(4, 7, dtype=np.float64, rng=2)

    data_rng = np.random.default_rng(9)
    batches = [data_rng.integers(0, 7, (3, 5)) for _ in range(4)]     # (T, N) token ids

    def run(move):
        net = Net()
        if move is dev:
            to_dev(net)

        def step(ids, ctx):
            x, c1 = net.emb(move(ids[:-1]))
            y, c2 = net.out(x)
            loss, g = cross_entropy(y, move(ids[1:]))
            net.emb.backward(net.out.backward(g, c2), c1)
            return loss, int(ids[1:].size)

        hist = fit(net, Adam(net.parameters(), lr=0.05), step, lambda epoch, rng: batches, seed=0, epochs=2,
                   clip_norm=0.5, clip_value=0.2, progress=False)
        return net, hist

    ref, h0 = run(np.asarray)
    net, h = run(dev)
    assert [round(v, 12) for _, v in h.train] == [round(v, 12) for _, v in h0.train]
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        assert p.data.device == DEV
        close(p.data, q.data, name)


def test_an_optimiser_made_before_the_move_follows_its_parameters():
    """PyTorch's order (optimiser first, then .to(device)) works: the state moves at the next step, and the
    updates equal the host optimiser's."""
    from rnnkit.nn import LSTM
    from rnnkit.optim import Adam
    rng = np.random.default_rng(4)
    nets = [LSTM(3, 4, dtype=np.float64, rng=0) for _ in range(2)]
    opts = [Adam(net.parameters(), lr=0.01) for net in nets]
    nets[1].to(DEV)
    for _ in range(3):
        grads = [rng.standard_normal(p.shape) for p in nets[0].parameters()]
        for net, opt in zip(nets, opts):
            for p, g in zip(net.parameters(), grads):
                p.grad = dev(g) if net is nets[1] else g.copy()
            opt.step()
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        np.testing.assert_allclose(host(q.data), p.data, rtol=1e-13)


@pytest.mark.parametrize("layer", ["linear", "embedding"])
def test_a_host_input_to_a_moved_layer_is_one_line_naming_the_fix(layer):
    from rnnkit.nn.xp import DeviceError
    if layer == "linear":
        m, x = Linear(3, 2, dtype=np.float64, rng=0), np.ones((2, 3))
    else:
        m, x = Embedding(5, 2, dtype=np.float64, rng=0), np.array([1, 2])
    m.weight.data = dev(m.weight.data)
    with pytest.raises(DeviceError, match=r"input: on device 'cpu' .*move the layer with \.to\(device\)"):
        m.forward(x)


def test_forecast_and_music_take_device_arrays_through_the_host():
    """Their estimators run on the host: a series or piano roll on a device is brought over, not refused with
    the array library's conversion error."""
    from rnnkit.forecast.validation import as_matrix
    from rnnkit.music.data import check_rolls
    y = np.sin(np.arange(12.0))
    np.testing.assert_array_equal(as_matrix("y", dev(y))[:, 0], y)
    roll = (np.arange(3 * 88).reshape(3, 88) % 7 == 0).astype(np.uint8)
    np.testing.assert_array_equal(check_rolls([dev(roll)], "rolls")[0], roll)
