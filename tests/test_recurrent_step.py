"""Recurrent's one-step API: a loop of step_forward / step_backward against the whole-sequence layer.

Central finite differences in float64 (random non-zero biases, random upstream
gradients at every output and at the final state, T = 4), equality with
forward/backward over the sequence, and parity with torch.nn.RNN/LSTM/GRU.
"""

import ast
import os

import numpy as np
import pytest
import torch

from helpers import assert_grad_close, numeric_grad, sample_indices, torch_twin
from recurrent_cases import CELL_KINDS, as_tuple, make_case, make_layer, surrogate_loss
from rnnkit.errors import ShapeError
from rnnkit.nn import StepGradients

STEP_GRID = [(kind, L) for kind in CELL_KINDS for L in (1, 2)]
STEP_IDS = [f"{kind}-L{L}" for kind, L in STEP_GRID]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_steps(layer, x, state, rng_seed=None):
    """step_forward over every t of x (T, N, D): outputs (T, N, H), final state, the step caches."""
    outs, caches = [], []
    rng = None if rng_seed is None else np.random.default_rng(rng_seed)
    for t in range(x.shape[0]):
        out, state, cache = layer.step_forward(x[t], state, rng)
        outs.append(out)
        caches.append(cache)
    return np.stack(outs), state, caches


def grads_of(layer):
    return {n: p.grad.copy() for n, p in layer.named_parameters()}


@pytest.mark.parametrize("kind,num_layers", STEP_GRID, ids=STEP_IDS)
def test_steps_backward_matches_finite_differences(kind, num_layers):
    layer, x, state, _, dy, d_state = make_case(kind, num_layers, False, False, True, T=4)
    layer.zero_grad()
    y, state_n, caches = run_steps(layer, x, state)
    dx, d_state0 = layer.steps_backward(dy, caches, d_state)
    loss = lambda: surrogate_loss(*run_steps(layer, x, state)[:2], dy, d_state)
    rng = np.random.default_rng(1)
    assert_grad_close(dx, numeric_grad(loss, x), "dx")
    for j, (s, d) in enumerate(zip(as_tuple(state), as_tuple(d_state0))):
        assert_grad_close(d, numeric_grad(loss, s), f"d state0[{j}]")
    for name, p in layer.named_parameters():
        num = numeric_grad(loss, p.data, indices=sample_indices(rng, p.data.size, 8))
        assert_grad_close(p.grad, num, f"d {name}")


@pytest.mark.parametrize("kind,num_layers", STEP_GRID, ids=STEP_IDS)
def test_step_loop_equals_the_sequence_layer(kind, num_layers):
    """Outputs, final state and every gradient: steps_backward, per-step step_backward, and forward/backward."""
    layer, x, state, _, dy, d_state = make_case(kind, num_layers, False, False, True, T=5)
    layer.zero_grad()
    y, state_n, cache = layer.forward(x, state)
    dx, d_state0 = layer.backward(dy, cache, d_state)
    ref = grads_of(layer)

    layer.zero_grad()
    ys, state_s, caches = run_steps(layer, x, state)
    dxs, d_state0_s = layer.steps_backward(dy, caches, d_state)
    batched = grads_of(layer)

    layer.zero_grad()                                  # one step at a time, weight gradients added per step
    d, dx_steps = d_state, [None] * len(caches)
    for t in range(len(caches) - 1, -1, -1):
        dx_steps[t], d = layer.step_backward(dy[t], caches[t], d)

    close = lambda a, b, what: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=what)
    close(ys, y, "output")
    for a, b in zip(as_tuple(state_s), as_tuple(state_n)):
        close(a, b, "final state")
    close(dxs, dx, "dx (steps_backward)")
    close(np.stack(dx_steps), dx, "dx (step_backward)")
    for a, b, c in zip(as_tuple(d_state0_s), as_tuple(d), as_tuple(d_state0)):
        close(a, c, "d state0 (steps_backward)")
        close(b, c, "d state0 (step_backward)")
    for name, p in layer.named_parameters():
        close(batched[name], ref[name], f"d {name} (steps_backward)")
        close(p.grad, ref[name], f"d {name} (step_backward)")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("kind,num_layers", STEP_GRID, ids=STEP_IDS)
def test_step_loop_matches_torch(kind, num_layers, dtype):
    layer, x, state, _, dy, d_state = make_case(kind, num_layers, False, False, True, dtype=dtype, T=4)
    tol = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    t = torch_twin(layer)
    layer.zero_grad()
    y, state_n, caches = run_steps(layer, x, state)
    dx, d_state0 = layer.steps_backward(dy, caches, d_state)

    xt = torch.tensor(x, requires_grad=True)
    st = tuple(torch.tensor(s, requires_grad=True) for s in as_tuple(state))
    ty, tsn = t(xt, st if len(st) == 2 else st[0])
    tsn = tsn if isinstance(tsn, tuple) else (tsn,)
    loss = (ty * torch.tensor(dy)).sum() + sum((s * torch.tensor(d)).sum() for s, d in zip(tsn, as_tuple(d_state)))
    loss.backward()
    close = lambda a, b, what: np.testing.assert_allclose(a, b, err_msg=what, **tol)
    close(y, ty.detach().numpy(), "output")
    for j, (a, b) in enumerate(zip(as_tuple(state_n), tsn)):
        close(a, b.detach().numpy(), f"final state[{j}]")
    close(dx, xt.grad.numpy(), "d input")
    for j, (a, b) in enumerate(zip(as_tuple(d_state0), st)):
        close(a, b.grad.numpy(), f"d initial state[{j}]")
    tgrads = {n: p.grad.numpy() for n, p in t.named_parameters()}
    for name, p in layer.named_parameters():
        close(p.grad, tgrads[name], f"d {name}")


def test_dropout_between_layers_in_step_mode_matches_finite_differences():
    """Training mode with dropout: each step draws its masks from rng; the same seed gives the same masks."""
    layer, x, state, _, dy, d_state = make_case("lstm", 2, False, False, True, T=3)
    layer.dropout = 0.4
    layer.train()
    with pytest.raises(ValueError, match="rng"):
        layer.step_forward(x[0], state)
    layer.zero_grad()
    y, state_n, caches = run_steps(layer, x, state, rng_seed=7)
    assert caches[0].masks[0] is None and (caches[0].masks[1] == 0).any()   # the masks did drop units
    y_eval, _, _ = run_steps(layer.eval(), x, state)
    assert not np.allclose(y, y_eval)
    layer.train()
    dx, d_state0 = layer.steps_backward(dy, caches, d_state)
    loss = lambda: surrogate_loss(*run_steps(layer, x, state, rng_seed=7)[:2], dy, d_state)
    assert_grad_close(dx, numeric_grad(loss, x), "dx")
    rng = np.random.default_rng(3)
    for name, p in layer.named_parameters():
        assert_grad_close(p.grad, numeric_grad(loss, p.data, indices=sample_indices(rng, p.data.size, 8)),
                          f"d {name}")


def test_step_gradients_can_be_kept_across_steps_by_the_caller():
    """step_backward with a StepGradients adds nothing until add_step_gradients, then what steps_backward adds."""
    layer, x, state, _, dy, d_state = make_case("gru", 2, False, False, True, T=3)
    _, _, caches = run_steps(layer, x, state)
    layer.zero_grad()
    layer.steps_backward(dy, caches, d_state)
    ref = grads_of(layer)
    layer.zero_grad()
    grads, d = StepGradients(), d_state
    for t in range(2, -1, -1):
        _, d = layer.step_backward(dy[t], caches[t], d, grads)
    assert all(not p.grad.any() for p in layer.parameters())
    layer.add_step_gradients(grads)
    layer.add_step_gradients(grads)                    # emptied by the first call: adds nothing more
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, ref[name], rtol=1e-12, atol=1e-14, err_msg=name)


def test_step_api_refuses_what_it_cannot_do():
    bi = make_layer("lstm", 3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional.*use forward"):
        bi.step_forward(np.zeros((2, 3)))
    layer = make_layer("lstm", 3, 4, num_layers=2)
    with pytest.raises(ShapeError, match=r"x_t: expected one step \(N, D\)"):
        layer.step_forward(np.zeros((1, 2, 3)))
    with pytest.raises(ShapeError, match="dtype float64"):
        layer.step_forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ShapeError, match=r"initial state h: expected shape \(num_layers\*num_directions, N, H\) "
                                         r"= \(2, 2, 4\)"):
        layer.step_forward(np.zeros((2, 3)), (np.zeros((1, 2, 4)), np.zeros((2, 2, 4))))
    with pytest.raises(ShapeError, match="initial state: expected dtype float64, got float32"):
        layer.step_forward(np.zeros((2, 3)), (np.zeros((2, 2, 4), np.float32), np.zeros((2, 2, 4))))
    out, state, cache = layer.step_forward(np.ones((2, 3)))
    assert out.shape == (2, 4) and state[0].shape == state[1].shape == (2, 2, 4)
    np.testing.assert_array_equal(out, state[0][-1])
    with pytest.raises(ShapeError, match=r"d_out: expected the step output's shape \(2, 4\)"):
        layer.step_backward(np.zeros((2, 5)), cache)
    with pytest.raises(ShapeError, match=r"d_state\[1\]: expected the new state's shape \(2, 2, 4\)"):
        layer.step_backward(np.zeros((2, 4)), cache, (np.zeros((2, 2, 4)), np.zeros((2, 4))))
    with pytest.raises(ValueError, match="the cache that step_forward returned"):
        layer.step_backward(np.zeros((2, 4)), None)
    with pytest.raises(ShapeError, match="one gradient per step"):
        layer.steps_backward(np.zeros((2, 2, 4)), [cache])


def test_no_recurrent_private_access_outside_nn():
    """Outside rnnkit/nn nothing reaches into a recurrent layer's private helpers: they use the step API."""
    private = {"_weights", "_suffix", "_state_in", "_state_out", "_check_input", "_rnn_step",
               "_rnn_step_backward", "_weight_grads"}
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "rnnkit")):
        if os.path.relpath(folder, ROOT).split(os.sep)[:2] == ["rnnkit", "nn"]:
            continue
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read(), path)
                where = os.path.relpath(path, ROOT)
                found += [f"{where}:{node.lineno} {getattr(node, 'attr', getattr(node, 'name', ''))}"
                          for node in ast.walk(tree)
                          if (isinstance(node, ast.Attribute) and node.attr in private)
                          or (isinstance(node, ast.FunctionDef) and node.name in private)]
    assert found == []


@pytest.mark.parametrize("cell,embedding", [("lstm", 5), ("gru", 0), ("rnn", 4)])
def test_charlm_step_equals_its_forward(cell, embedding):
    """CharLM.step (generation) runs the stack's step_forward: same logits and state as forward over the chunk."""
    from rnnkit.charlm.data import Vocab
    from rnnkit.charlm.model import CharLM
    from rnnkit.errors import DataError

    model = CharLM(Vocab(list("abcdefg")), cell=cell, hidden_size=6, num_layers=2, embedding_size=embedding, dropout=0.2,
                   dtype=np.float64, rng=0).eval()
    ids = np.random.default_rng(0).integers(0, 7, (5, 3))                      # (T, N)
    logits, state_n, _ = model.forward(ids, model.initial_state(3))
    state = model.initial_state(3)
    for t in range(5):
        step_logits, state = model.step(ids[t], state)
        np.testing.assert_allclose(step_logits, logits[t], rtol=1e-12, atol=1e-13)
    for a, b in zip(as_tuple(state), as_tuple(state_n)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    with pytest.raises(DataError, match=r"ids: expected a 1-D array \(N,\)"):
        model.step(ids, state)
