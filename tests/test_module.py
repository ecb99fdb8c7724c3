"""Module and Parameter: state_dict round trip, atomic load_state_dict, tied parameters, modes, calling, repr."""

import numpy as np
import pytest

from rnnkit.errors import RnnkitError, ShapeError
from rnnkit.nn import LSTM, Linear
from rnnkit.nn.module import Module, Parameter
from rnnkit.optim import Adam


class Net(Module):
    """A Linear and an LSTM under one parent, plus a parameter of its own."""

    def __init__(self, seed=0):
        super().__init__()
        self.proj = Linear(3, 4, dtype=np.float64, rng=seed)
        self.rnn = LSTM(4, 5, num_layers=2, dtype=np.float64, rng=seed)
        self.add_parameter("scale", np.full(5, 2.0))


class Tied(Module):
    """Two Linear layers sharing one weight, as in a language model with tied embeddings."""

    def __init__(self):
        super().__init__()
        self.encoder = Linear(4, 4, dtype=np.float64, rng=0)
        self.decoder = Linear(4, 4, dtype=np.float64, rng=1)
        self.decoder.weight = self.encoder.weight


def _values(m):
    return {k: v.copy() for k, v in m.state_dict().items()}


def test_state_dict_round_trip_keeps_array_identity():
    src, dst = Net(seed=1), Net(seed=2)
    sd = src.state_dict()
    assert list(sd) == [name for name, _ in src.named_parameters()]
    assert list(sd)[:3] == ["scale", "proj.weight", "proj.bias"]
    sd["scale"][0] = 99.0  # a copy: the module is unaffected
    assert src.scale.data[0] == 2.0
    arrays = {name: p.data for name, p in dst.named_parameters()}
    dst.load_state_dict(src.state_dict())
    for name, p in dst.named_parameters():
        assert p.data is arrays[name], name  # copied in place: optimisers keep their references
        np.testing.assert_array_equal(p.data, src.state_dict()[name])


def test_load_state_dict_casts_to_the_parameter_dtype():
    m = Linear(2, 3, rng=0)  # float32
    m.load_state_dict({"weight": np.ones((3, 2), np.float64), "bias": np.arange(3)})
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    np.testing.assert_array_equal(m.bias.data, [0, 1, 2])


def test_failed_load_leaves_every_parameter_untouched():
    m = Net()
    before = _values(m)
    sd = {k: v + 1.0 for k, v in m.state_dict().items()}
    last = list(sd)[-1]
    sd[last] = np.zeros(7)  # only the last key is wrong
    with pytest.raises(ShapeError, match=rf"{last}: expected shape \(20,\), got \(7,\)"):
        m.load_state_dict(sd)
    after = _values(m)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_load_errors_list_every_problem_in_one_rnnkit_error():
    m = Net()
    sd = m.state_dict()
    del sd["proj.bias"]
    sd["extra"] = np.zeros(1)
    sd["scale"] = np.zeros(3)
    sd["proj.weight"] = np.array([["a"] * 3] * 4)
    with pytest.raises(ShapeError) as info:
        m.load_state_dict(sd)
    e = info.value
    assert isinstance(e, RnnkitError) and isinstance(e, ValueError)
    msg = str(e)
    assert msg.startswith("state_dict does not fit Net: missing keys ['proj.bias'], unexpected keys ['extra']")
    assert "scale: expected shape (5,), got (3,)" in msg
    assert "proj.weight: expected numbers, got dtype <U1" in msg
    assert "strict=False" in msg


def test_non_strict_load_skips_missing_and_unexpected_keys_but_not_bad_shapes():
    m = Net()
    before = _values(m)
    m.load_state_dict({"scale": np.zeros(5), "other": np.ones(2)}, strict=False)
    np.testing.assert_array_equal(m.scale.data, 0.0)
    np.testing.assert_array_equal(m.proj.weight.data, before["proj.weight"])
    with pytest.raises(ShapeError, match=r"scale: expected shape \(5,\), got \(2,\)"):
        m.load_state_dict({"scale": np.zeros(2), "proj.bias": np.zeros(4)}, strict=False)
    np.testing.assert_array_equal(m.proj.bias.data, before["proj.bias"])  # nothing copied


def test_load_state_dict_refuses_a_non_mapping():
    with pytest.raises(TypeError, match="expected a dict of arrays, got list"):
        Net().load_state_dict([np.zeros(5)])


def test_tied_parameter_is_listed_once_but_saved_under_each_name():
    m = Tied()
    names = [name for name, _ in m.named_parameters()]
    assert names == ["encoder.weight", "encoder.bias", "decoder.bias"]
    assert len(m.parameters()) == 3 and m.num_parameters() == 16 + 4 + 4
    assert [n for n, _ in m.named_parameters(remove_duplicate=False)] == \
        ["encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"]
    sd = m.state_dict()
    assert set(sd) == {"encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"}  # as torch
    m2 = Tied()
    m2.load_state_dict({k: v + 1.0 for k, v in sd.items()})
    np.testing.assert_array_equal(m2.decoder.weight.data, sd["encoder.weight"] + 1.0)
    Adam(m.parameters())  # an optimiser refuses a parameter listed twice


def test_shared_child_module_is_visited_once():
    m = Tied()
    m.again = m.encoder
    assert [type(x).__name__ for x in m.modules()] == ["Tied", "Linear", "Linear"]
    assert [n for n, _ in m.named_parameters()] == ["encoder.weight", "encoder.bias", "decoder.bias"]


def test_zero_grad_keeps_gradient_identity():
    m = Net()
    grads = [p.grad for p in m.parameters()]
    for g in grads:
        g += 3.0
    m.zero_grad()
    for p, g in zip(m.parameters(), grads):
        assert p.grad is g and not g.any()


def test_train_and_eval_reach_every_descendant():
    m = Net()
    m.inner = Module()
    m.inner.deeper = Linear(2, 2)
    assert all(x.training for x in m.modules())
    assert m.eval() is m
    assert not any(x.training for x in m.modules()) and len(list(m.modules())) == 5
    assert m.train() is m and all(x.training for x in m.modules())
    m.rnn.eval()
    assert not m.rnn.training and m.training and m.proj.training


def _modes(m):
    return [x.training for x in m.modules()]


@pytest.mark.parametrize("ctx,inside", [("eval_mode", False), ("train_mode", True)])
def test_mode_contexts_restore_every_module_mode_also_on_errors(ctx, inside):
    m = Net()
    m.rnn.eval()  # mixed modes: the context must bring back exactly these
    before = _modes(m)
    assert before == [True, True, False]
    with getattr(m, ctx)() as same:
        assert same is m and _modes(m) == [inside] * 3
    assert _modes(m) == before
    with pytest.raises(RuntimeError, match="boom"):
        with getattr(m, ctx)():
            assert _modes(m) == [inside] * 3
            raise RuntimeError("boom")
    assert _modes(m) == before


def test_eval_mode_nests_and_restores_a_model_already_in_eval_mode():
    m = Net().eval()
    with m.eval_mode():
        with m.train_mode():
            assert m.training and m.rnn.training
        assert not m.training and not m.rnn.training
    assert _modes(m) == [False] * 3
    m.train()
    with m.rnn.eval_mode():  # a child's context leaves its parent alone
        assert m.training and not m.rnn.training
    assert _modes(m) == [True] * 3


def test_call_runs_forward():
    lin = Linear(3, 2, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((4, 3))
    y, cache = lin(x)
    np.testing.assert_array_equal(y, lin.forward(x)[0])
    with pytest.raises(NotImplementedError, match="Net does not define forward"):
        Net()(x)


def test_astype_is_gone():
    # it replaced parameter arrays (breaking optimisers' references) and left Recurrent.dtype stale
    assert not hasattr(Module, "astype")


def test_repr_uses_extra_repr_and_nests_children():
    class Leaf(Module):
        def __init__(self):
            super().__init__()
            self.add_parameter("w", np.zeros(3))

        def extra_repr(self):
            return "size=3"

    class Bare(Module):
        def __init__(self):
            super().__init__()
            self.add_parameter("w", np.zeros((2, 2)))

    assert repr(Leaf()) == "Leaf(size=3)"
    assert repr(Bare()) == "Bare(4 parameters)"
    root = Module()
    root.leaf = Leaf()
    root.inner = Module()
    root.inner.bare = Bare()
    assert repr(root) == "Module(\n  (leaf): Leaf(size=3)\n  (inner): Module(\n    (bare): Bare(4 parameters)\n  )\n)"
    assert "num_layers=2" in repr(LSTM(3, 4, num_layers=2))


def test_parameter_shape_dtype_and_repr():
    p = Parameter(np.zeros((2, 3), np.float32))
    assert p.shape == (2, 3) and p.dtype == np.float32 and p.grad.shape == (2, 3)
    assert repr(p) == "Parameter(shape=(2, 3), dtype=float32)"
