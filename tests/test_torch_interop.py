"""PyTorch state_dict interchange: names, dtypes, error messages, and LSTM round trips."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rnnkit.errors import ShapeError
from rnnkit.io.torch_interop import load_torch_state_dict, to_torch_state_dict
from rnnkit.nn.module import Module
from rnnkit.nn.recurrent import LSTM


class Tiny(Module):
    def __init__(self, dtype=np.float64):
        super().__init__()
        rng = np.random.default_rng(0)
        self.add_parameter("weight", rng.standard_normal((3, 2)).astype(dtype))
        self.add_parameter("bias", rng.standard_normal(3).astype(dtype))


class TinyTorch(torch.nn.Module):
    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(3, 2, dtype=dtype))
        self.bias = torch.nn.Parameter(torch.randn(3, dtype=dtype))


def test_tiny_module_round_trip():
    m = Tiny()
    sd = to_torch_state_dict(m)
    assert list(sd) == ["weight", "bias"]
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float64 for v in sd.values())
    t = TinyTorch()
    t.load_state_dict(sd)
    assert np.array_equal(t.weight.detach().numpy(), m.weight.data)
    # the tensors are copies: changing the module afterwards does not change them
    m.weight.data[0, 0] += 1.0
    assert sd["weight"][0, 0].item() != m.weight.data[0, 0]

    with torch.no_grad():
        t.bias.mul_(2.0)
    keep = m.weight.data
    load_torch_state_dict(m, t.state_dict())
    assert m.weight.data is keep  # copied in place: optimisers keep their references
    assert np.array_equal(m.bias.data, t.bias.detach().numpy())


def test_values_are_cast_to_the_parameter_dtype():
    m = Tiny(dtype=np.float32)
    t = TinyTorch(dtype=torch.float64)
    load_torch_state_dict(m, t.state_dict())
    assert m.weight.data.dtype == np.float32
    np.testing.assert_allclose(m.weight.data, t.weight.detach().numpy(), rtol=1e-6)
    # plain arrays work too
    load_torch_state_dict(m, {"weight": np.ones((3, 2)), "bias": np.zeros(3)})
    assert np.array_equal(m.weight.data, np.ones((3, 2), np.float32))


def test_mismatch_lists_missing_unexpected_and_shapes_and_copies_nothing():
    m = Tiny()
    before = m.state_dict()
    bad = {"weight": torch.zeros(2, 3, dtype=torch.float64), "extra.weight": torch.zeros(1)}
    with pytest.raises(ShapeError) as e:
        load_torch_state_dict(m, bad)
    msg = str(e.value)
    assert "missing keys ['bias']" in msg
    assert "unexpected keys ['extra.weight']" in msg
    assert "weight: expected shape (3, 2), got (2, 3)" in msg
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())


def test_non_strict_copies_only_matching_keys():
    m = Tiny()
    bias = m.bias.data.copy()
    load_torch_state_dict(m, {"weight": torch.ones(3, 2), "other": torch.zeros(4)}, strict=False)
    assert np.array_equal(m.weight.data, np.ones((3, 2)))
    assert np.array_equal(m.bias.data, bias)
    with pytest.raises(ShapeError, match="wrong values"):
        load_torch_state_dict(m, {"weight": torch.ones(1)}, strict=False)


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_lstm_state_dicts_cross_both_ways(num_layers, bidirectional):
    torch.manual_seed(0)
    t = torch.nn.LSTM(5, 4, num_layers=num_layers, bidirectional=bidirectional, dtype=torch.float64)
    r = LSTM(5, 4, num_layers=num_layers, bidirectional=bidirectional, dtype=np.float64, rng=1)
    assert [n for n, _ in r.named_parameters()] == list(t.state_dict())

    x = np.random.default_rng(2).standard_normal((6, 3, 5))
    load_torch_state_dict(r, t.state_dict())
    y, (h, c), _ = r.forward(x)
    ty, (th, tc) = t(torch.tensor(x))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c, tc.detach().numpy(), rtol=1e-12, atol=1e-14)

    r2 = LSTM(5, 4, num_layers=num_layers, bidirectional=bidirectional, dtype=np.float64, rng=3)
    t2 = torch.nn.LSTM(5, 4, num_layers=num_layers, bidirectional=bidirectional, dtype=torch.float64)
    t2.load_state_dict(to_torch_state_dict(r2))
    for name, p in r2.named_parameters():
        assert np.array_equal(t2.state_dict()[name].numpy(), p.data), name


def test_lstm_shape_mismatch_names_the_weight():
    t = torch.nn.LSTM(5, 4)
    r = LSTM(5, 3, rng=0)
    with pytest.raises(ShapeError, match=r"weight_ih_l0: expected shape \(12, 5\), got \(16, 5\)"):
        load_torch_state_dict(r, t.state_dict())


class TiedTorch(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(4, 4, dtype=torch.float64)
        self.decoder = torch.nn.Linear(4, 4, dtype=torch.float64)
        self.decoder.weight = self.encoder.weight


def test_tied_weights_cross_both_ways_under_every_name():
    from rnnkit.nn.layers import Linear

    class Tied(Module):
        def __init__(self):
            super().__init__()
            self.encoder = Linear(4, 4, dtype=np.float64, rng=0)
            self.decoder = Linear(4, 4, dtype=np.float64, rng=1)
            self.decoder.weight = self.encoder.weight

    t = TiedTorch()
    m = Tied()
    assert len(m.parameters()) == 3  # the shared weight is one parameter
    load_torch_state_dict(m, t.state_dict())  # torch's state_dict names the tied weight twice
    assert m.decoder.weight is m.encoder.weight
    np.testing.assert_array_equal(m.encoder.weight.data, t.encoder.weight.detach().numpy())
    sd = to_torch_state_dict(m)
    assert list(sd) == list(t.state_dict())
    TiedTorch().load_state_dict(sd)  # strict: every key torch expects is there
