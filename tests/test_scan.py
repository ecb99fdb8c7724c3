"""The scanner against hand-written loops, truncated BPTT, statelessness, and input validation."""

import numpy as np
import pytest

from rnnkit.errors import ShapeError
from rnnkit.nn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, scan_forward
from rnnkit.nn.cells import sigmoid
from recurrent_cases import make_case, make_layer


def hand_lstm(x, h, c, W_ih, W_hh, b_ih, b_hh):
    """The LSTM equations written out step by step, independently of rnnkit's cell."""
    H = h.shape[1]
    ys = []
    for x_t in x:
        a = x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh
        i = 1 / (1 + np.exp(-a[:, :H]))
        f = 1 / (1 + np.exp(-a[:, H:2 * H]))
        g = np.tanh(a[:, 2 * H:3 * H])
        o = 1 / (1 + np.exp(-a[:, 3 * H:]))
        c = f * c + i * g
        h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys), h, c


def hand_gru(x, h, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[1]
    ys = []
    for x_t in x:
        gi = x_t @ W_ih.T + b_ih
        gh = h @ W_hh.T + b_hh
        r = 1 / (1 + np.exp(-(gi[:, :H] + gh[:, :H])))
        z = 1 / (1 + np.exp(-(gi[:, H:2 * H] + gh[:, H:2 * H])))
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h = (1 - z) * n + z * h
        ys.append(h)
    return np.stack(ys), h


def weights(layer, sfx="_l0"):
    return [getattr(layer, n + sfx).data for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def test_lstm_scan_equals_hand_loop():
    layer, x, state, _, _, _ = make_case("lstm", 1, False, False, True, T=5)
    y, (h, c), _ = layer.forward(x, state)
    ey, eh, ec = hand_lstm(x, state[0][0], state[1][0], *weights(layer))
    np.testing.assert_allclose(y, ey, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(h[0], eh, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(c[0], ec, rtol=1e-13, atol=1e-14)


def test_gru_scan_equals_hand_loop_both_directions():
    layer, x, state, _, _, _ = make_case("gru", 1, True, False, True, T=5)
    y, h, _ = layer.forward(x, state)
    ey, eh = hand_gru(x, state[0], *weights(layer))
    np.testing.assert_allclose(y[:, :, :4], ey, rtol=1e-13, atol=1e-14)
    ry, rh = hand_gru(x[::-1], state[1], *weights(layer, "_l0_reverse"))
    np.testing.assert_allclose(y[:, :, 4:], ry[::-1], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(h[1], rh, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("cell", [RNNCell("tanh"), RNNCell("relu"), LSTMCell(), GRUCell()],
                         ids=["tanh", "relu", "lstm", "gru"])
def test_scan_forward_equals_loop_over_cell_step(cell):
    rng = np.random.default_rng(0)
    T, N, D, H = 4, 3, 2, 5
    G = cell.num_gates
    W_ih, W_hh = rng.standard_normal((G * H, D)), rng.standard_normal((G * H, H))
    b_ih, b_hh = rng.standard_normal(G * H), rng.standard_normal(G * H)
    x = rng.standard_normal((T, N, D))
    state = tuple(rng.standard_normal((N, H)) for _ in range(cell.num_states))
    y, final, _ = scan_forward(cell, x, state, W_ih, W_hh, b_ih, b_hh)
    s = state
    for t in range(T):
        s, _ = cell.step(x[t] @ W_ih.T + b_ih, s[0] @ W_hh.T + b_hh, s)
        np.testing.assert_allclose(y[t], s[0], rtol=1e-13, atol=1e-14)
    for a, b in zip(final, s):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


def test_hand_worked_rnn_example():
    """H = D = 1, tanh: h1 = tanh(0.5*1 + 0.1 + 0.2*0 + 0.3) = tanh(0.9);
    h2 = tanh(0.5*2 + 0.1 + 0.2*h1 + 0.3) = tanh(1.4 + 0.2 tanh(0.9))."""
    layer = RNN(1, 1, dtype=np.float64)
    layer.load_state_dict({"weight_ih_l0": [[0.5]], "weight_hh_l0": [[0.2]],
                           "bias_ih_l0": [0.1], "bias_hh_l0": [0.3]})
    y, h, _ = layer.forward(np.array([[[1.0]], [[2.0]]]))
    h1 = np.tanh(0.9)
    assert y[0, 0, 0] == pytest.approx(h1, abs=1e-15)
    assert y[1, 0, 0] == pytest.approx(np.tanh(1.4 + 0.2 * h1), abs=1e-15)
    assert h[0, 0, 0] == y[1, 0, 0]


def test_sigmoid_never_overflows_and_is_accurate_to_machine_epsilon():
    # The tanh form trades relative accuracy far in the negative tail (values < 1e-13) for one pass
    # without overflow; the absolute error stays at the level of float64 rounding.
    a = np.array([-800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0])
    with np.errstate(over="raise", invalid="raise"):
        s = sigmoid(a)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-np.clip(a, -700, 700))), rtol=0, atol=2e-16)
    assert s[0] == 0.0 and s[-1] == 1.0


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_chunked_forward_with_carried_state_equals_one_pass(kind):
    layer = make_layer(kind, 3, 5, 2, False)
    x = np.random.default_rng(0).standard_normal((12, 2, 3))
    y, s, _ = layer.forward(x)
    state, ys = None, []
    for chunk in np.split(x, [5, 9]):
        y_c, state, _ = layer.forward(chunk, state)
        ys.append(y_c)
    np.testing.assert_allclose(np.concatenate(ys), y, rtol=1e-13, atol=1e-14)
    for a, b in zip(state if kind == "lstm" else (state,), s if kind == "lstm" else (s,)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_truncated_bptt_is_full_bptt_minus_the_boundary_gradient(kind):
    """Full BPTT over [chunk1, chunk2] = chunk2's backward + chunk1's backward fed chunk2's d_state0.
    Truncated BPTT drops exactly that second term, and nothing else."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 2, 3))
    dy = rng.standard_normal((8, 2, 4))
    dy[:4] = 0.0                                    # loss only on the second chunk
    layer = make_layer(kind, 3, 4, 2, False)        # unidirectional: a carried state is causal
    layer.zero_grad()
    _, _, cache = layer.forward(x)
    layer.backward(dy, cache)
    full = {n: p.grad.copy() for n, p in layer.named_parameters()}
    layer.zero_grad()
    _, s1, c1 = layer.forward(x[:4])
    _, _, c2 = layer.forward(x[4:], s1)
    _, d_s1 = layer.backward(dy[4:], c2)
    truncated = {n: p.grad.copy() for n, p in layer.named_parameters()}
    layer.backward(None, c1, d_s1)                  # the boundary term truncation leaves out
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, full[n], rtol=1e-12, atol=1e-13)
    assert not all(np.allclose(truncated[n], full[n]) for n in full)   # the cut term is real


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
def test_second_step_behaves_like_the_first(kind):
    """No hidden accumulators: the same forward/backward twice gives the same gradients, and after an
    update the layer's gradients equal those of a fresh layer holding the updated weights."""
    layer, x, state, lengths, dy, d_state = make_case(kind, 2, True, True, True)
    grads = []
    for _ in range(2):
        layer.zero_grad()
        _, _, cache = layer.forward(x, state, lengths)
        layer.backward(dy, cache, d_state)
        grads.append([p.grad.copy() for p in layer.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
    for p in layer.parameters():
        p.data -= 0.1 * p.grad                      # one SGD step
    layer.zero_grad()
    _, _, cache = layer.forward(x, state, lengths)
    layer.backward(dy, cache, d_state)
    fresh = make_case(kind, 2, True, True, True)[0]
    fresh.load_state_dict(layer.state_dict())
    fresh.zero_grad()
    _, _, cache = fresh.forward(x, state, lengths)
    fresh.backward(dy, cache, d_state)
    for a, b in zip(layer.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(a.grad, b.grad)


def test_lengths_from_mask():
    mask = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1]], dtype=bool)   # (T, N)
    np.testing.assert_array_equal(LSTM.lengths_from_mask(mask), [2, 1, 3])
    with pytest.raises(ShapeError, match="padding before a real step"):
        LSTM.lengths_from_mask(np.array([[0, 1], [1, 1]], dtype=bool))


def test_orthogonal_and_forget_bias_options():
    layer = LSTM(3, 6, dtype=np.float64, rng=0, recurrent_init="orthogonal", forget_bias=1.0)
    W = layer.weight_hh_l0.data
    for g in range(4):
        block = W[g * 6:(g + 1) * 6]
        np.testing.assert_allclose(block @ block.T, np.eye(6), atol=1e-12)
    np.testing.assert_array_equal(layer.bias_ih_l0.data[6:12], 1.0)
    np.testing.assert_array_equal(layer.bias_hh_l0.data[6:12], 0.0)
    with pytest.raises(ValueError, match="forget_bias applies to LSTM only"):
        GRU(3, 4, forget_bias=1.0)


def test_same_seed_same_weights():
    a, b, c = (LSTM(3, 4, 2, rng=s) for s in (7, 7, 8))
    for (n, p), (_, q), (_, r) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        assert not np.array_equal(p.data, r.data)


@pytest.mark.parametrize("call,message", [
    (lambda l: l.forward(np.zeros((4, 3))), r"expected a 3-D array \(T, N, D\), got shape \(4, 3\)"),
    (lambda l: l.forward(np.zeros((4, 2, 5))), r"expected feature size 3 .* got 5"),
    (lambda l: l.forward(np.zeros((4, 2, 3), np.float32)), r"expected dtype float64 .* got float32"),
    (lambda l: l.forward(np.zeros((4, 2, 3), np.int64)), r"floating array"),
    (lambda l: l.forward(np.zeros((4, 2, 3)), (np.zeros((2, 2, 4)), np.zeros((2, 2, 4)))),
     r"expected shape .* \(4, 2, 4\), got \(2, 2, 4\)"),
    (lambda l: l.forward(np.zeros((4, 2, 3)), np.zeros((4, 2, 4))), r"expected a tuple \(h, c\)"),
    (lambda l: l.forward(np.zeros((4, 2, 3)), lengths=[4, 4, 4]), r"lengths: expected shape \(N,\) = \(2,\)"),
    (lambda l: l.forward(np.zeros((4, 2, 3)), lengths=[0, 4]), r"values in \[1, T=4\]"),
    (lambda l: l.forward(np.zeros((4, 2, 3)), lengths=[5, 4]), r"values in \[1, T=4\]"),
    (lambda l: l.forward(np.zeros((4, 2, 3)), lengths=[2.0, 4.0]), r"expected integers"),
], ids=["rank", "features", "dtype", "int-dtype", "state-shape", "state-tuple", "lengths-n", "lengths-0",
        "lengths-T", "lengths-float"])
def test_bad_input_says_expected_vs_got(call, message):
    layer = LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    with pytest.raises(ShapeError, match=message):
        call(layer)


@pytest.mark.parametrize("kwargs,message", [
    (dict(input_size=0, hidden_size=4), "input_size must be >= 1, got 0"),
    (dict(input_size=3, hidden_size=4, dropout=1.5), r"dropout must be in \[0, 1\), got 1.5"),
    (dict(input_size=3, hidden_size=4, nonlinearity="sigmoid"), "nonlinearity: expected 'tanh' or 'relu'"),
    (dict(input_size=3, hidden_size=4, dtype=np.int32), "dtype: expected float32 or float64"),
])
def test_bad_construction_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RNN(**kwargs)


def test_backward_checks_gradient_shapes():
    layer = LSTM(3, 4, num_layers=2, dtype=np.float64)
    _, _, cache = layer.forward(np.zeros((5, 2, 3)))
    with pytest.raises(ShapeError, match=r"d_output: expected the output's shape \(5, 2, 4\), got \(5, 1, 4\)"):
        layer.backward(np.zeros((5, 1, 4)), cache)
    with pytest.raises(ShapeError, match=r"d_state\[0\]: expected the final state's shape \(2, 2, 4\), got \(2, 1, 4\)"):
        layer.backward(None, cache, (np.zeros((2, 1, 4)), None))


def test_dropout_with_one_layer_warns_and_numpy_scalars_are_accepted():
    with pytest.warns(UserWarning, match="no effect"):
        GRU(3, 4, dropout=0.3)
    assert LSTM(3, 4, 2, dropout=np.float32(0.25)).dropout == pytest.approx(0.25)
    assert repr(LSTM(3, 4)) == "LSTM(3, 4, num_layers=1, bidirectional=False, dropout=0.0, dtype=float32)"
