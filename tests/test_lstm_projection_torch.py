"""LSTM projection (proj_size) against torch.nn.LSTM(proj_size=...) from identical weights.

Outputs, final states and every gradient, float64 (rtol 1e-10) and float32, equal lengths and
variable lengths through pack_padded_sequence, both backends; and the state_dict round trip
through rnnkit.io.torch_interop (weight_hr_l{k} names and shapes).
"""

import numpy as np
import pytest

from recurrent_cases import make_case
from rnnkit.io.torch_interop import load_torch_state_dict, to_torch_state_dict
from rnnkit.kernels import backend as kernel_backend
from rnnkit.nn import LSTM
from rnnkit.nn.shapes import recurrent_shapes

torch = pytest.importorskip("torch")
BACKENDS = ["numpy"] + (["numba"] if kernel_backend.numba_status()["ok"] else [])


def _torch_run(layer, x, state, lengths, dy, d_state):
    t = torch.nn.LSTM(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
                      bidirectional=layer.bidirectional, proj_size=layer.proj_size,
                      dtype=torch.float64 if layer.dtype == np.float64 else torch.float32)
    t.load_state_dict(to_torch_state_dict(layer))
    tx = torch.tensor(x, requires_grad=True)
    h0, c0 = (torch.tensor(s, requires_grad=True) for s in state)
    inp = tx
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=False)
    out, (hn, cn) = t(inp, (h0, c0))
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])
    loss = (out * torch.tensor(dy)).sum() + (hn * torch.tensor(d_state[0])).sum() + (cn * torch.tensor(d_state[1])).sum()
    loss.backward()
    grads = {n: p.grad.numpy() for n, p in t.named_parameters()}
    return out.detach().numpy(), (hn.detach().numpy(), cn.detach().numpy()), tx.grad.numpy(), \
        (h0.grad.numpy(), c0.grad.numpy()), grads


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("num_layers,bidirectional,varlen", [(1, False, False), (2, True, True), (2, False, True),
                                                             (1, True, "short")])
def test_projection_equals_torch(num_layers, bidirectional, varlen, dtype, backend):
    layer, x, state, lengths, dy, d_state = make_case("lstm", num_layers, bidirectional, varlen, True, dtype=dtype,
                                                      T=5, N=4, D=3, H=6, proj_size=4)
    layer.backend = backend
    assert layer.weight_hr_l0.shape == (4, 6) and layer.weight_hh_l0.shape == (24, 4)
    y, (h, c), cache = layer.forward(x, state, lengths)
    assert h.shape[-1] == 4 and c.shape[-1] == 6
    layer.zero_grad()
    dx, ds0 = layer.backward(dy, cache, d_state)
    ty, (th, tc), tdx, tds0, tgrads = _torch_run(layer, x, state, lengths, dy, d_state)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(y, ty, err_msg="output", **tol)
    np.testing.assert_allclose(h, th, err_msg="h_n", **tol)
    np.testing.assert_allclose(c, tc, err_msg="c_n", **tol)
    np.testing.assert_allclose(dx, tdx, err_msg="dx", **tol)
    np.testing.assert_allclose(ds0[0], tds0[0], err_msg="d h0", **tol)
    np.testing.assert_allclose(ds0[1], tds0[1], err_msg="d c0", **tol)
    assert set(tgrads) == {n for n, _ in layer.named_parameters()}
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, tgrads[name], err_msg=name, **tol)


def test_projected_state_dict_round_trips_and_shapes_match_the_shape_table():
    torch.manual_seed(0)
    t = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=3, dtype=torch.float64)
    r = LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=3, dtype=np.float64)
    assert {k: tuple(v.shape) for k, v in t.state_dict().items()} == \
        recurrent_shapes("", "LSTM", 5, 6, 2, bidirectional=True, proj_size=3)
    load_torch_state_dict(r, t.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 2, 5))
    ty, (th, tc) = t(torch.tensor(x))
    y, (h, c), _ = r.forward(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    t2 = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=3, dtype=torch.float64)
    t2.load_state_dict(to_torch_state_dict(r))
    for k, v in t.state_dict().items():
        np.testing.assert_array_equal(t2.state_dict()[k].numpy(), v.numpy())
    plain = LSTM(5, 6, num_layers=2, bidirectional=True, dtype=np.float64)
    with pytest.raises(Exception, match="weight_hr_l0"):
        load_torch_state_dict(plain, t.state_dict())
