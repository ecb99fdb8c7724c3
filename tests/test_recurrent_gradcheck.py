"""Finite-difference checks of the recurrent layers' backward pass (float64, central differences)."""

import numpy as np
import pytest

from helpers import assert_grad_close, numeric_grad, sample_indices
from recurrent_cases import GRID, GRID_IDS, as_tuple, make_case, surrogate_loss


@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", GRID, ids=GRID_IDS)
def test_recurrent_backward_matches_finite_differences(kind, num_layers, bidirectional, varlen, given_state):
    layer, x, state, lengths, dy, d_state = make_case(kind, num_layers, bidirectional, varlen, given_state)
    layer.zero_grad()
    y, state_n, cache = layer.forward(x, state, lengths)
    dx, d_state0 = layer.backward(dy, cache, d_state)

    def f():
        y, s, _ = layer.forward(x, state, lengths)
        return surrogate_loss(y, s, dy, d_state)

    rng = np.random.default_rng(1)
    assert_grad_close(dx, numeric_grad(f, x, indices=sample_indices(rng, x.size, 12)), "dx")
    if state is not None:
        for j, (s, ds) in enumerate(zip(as_tuple(state), as_tuple(d_state0))):
            assert_grad_close(ds, numeric_grad(f, s, indices=sample_indices(rng, s.size, 10)), f"d_state0[{j}]")
    else:
        assert all(np.isfinite(d).all() for d in as_tuple(d_state0))
    for name, p in layer.named_parameters():
        assert_grad_close(p.grad, numeric_grad(f, p.data, indices=sample_indices(rng, p.data.size, 8)), name)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_every_entry_of_every_gradient_single_layer(kind):
    """Exhaustive (not sampled) check on one small bidirectional, variable-length case."""
    layer, x, state, lengths, dy, d_state = make_case(kind, 1, True, True, True, T=3, N=2, D=2, H=3)
    y, state_n, cache = layer.forward(x, state, lengths)
    dx, d_state0 = layer.backward(dy, cache, d_state)

    def f():
        y, s, _ = layer.forward(x, state, lengths)
        return surrogate_loss(y, s, dy, d_state)

    assert_grad_close(dx, numeric_grad(f, x), "dx")
    for s, ds in zip(as_tuple(state), as_tuple(d_state0)):
        assert_grad_close(ds, numeric_grad(f, s), "d_state0")
    for name, p in layer.named_parameters():
        assert_grad_close(p.grad, numeric_grad(f, p.data), name)


def test_gradient_of_padded_outputs_is_ignored():
    """Outputs at padded steps are constant zero, so a gradient sent there must change nothing."""
    layer, x, state, lengths, dy, d_state = make_case("gru", 1, True, True, True)
    _, _, cache = layer.forward(x, state, lengths)
    dx1, ds1 = layer.backward(dy, cache, d_state)
    noisy = dy.copy()
    noisy[-1, 1] += 5.0                                 # sequence 1 has length 1: step T-1 is padding
    dx2, ds2 = layer.backward(noisy, cache, d_state)
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_array_equal(ds1, ds2)


def test_the_grid_has_cases_where_every_sequence_is_shorter_than_T():
    short = [case for case in GRID if case[3] == "short"]
    assert {case[0] for case in short} == {"rnn_tanh", "rnn_relu", "lstm", "gru"}
    for case in short:
        for T in (3, 4, 6):
            layer, x, state, lengths, dy, d_state = make_case(*case, T=T)
            assert lengths.max() < x.shape[0] == T and lengths.min() >= 1
