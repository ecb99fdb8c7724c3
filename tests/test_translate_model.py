"""Seq2Seq gradients: one decoder step and the whole teacher-forced loss, by finite differences in float64."""

import numpy as np
import pytest

from helpers import assert_grad_close, numeric_grad, sample_indices
from rnnkit.translate.data import make_batch
from rnnkit.translate.model import Seq2Seq

V_SRC, V_TGT = 9, 8
SRC = [[4, 5, 6, 7], [8, 4], [5, 6, 7]]          # lengths 4, 2, 3: padding in the memory
TGT = [[4, 5, 6], [7], [5, 4]]

CONFIGS = {
    "bahdanau-lstm-bi-2layers": dict(cell="lstm", attention="bahdanau", bidirectional=True, num_layers=2),
    "bahdanau-gru": dict(cell="gru", attention="bahdanau", bidirectional=False, attention_size=5),
    "general-lstm-feeding": dict(cell="lstm", attention="general", input_feeding=True, num_layers=2),
    "dot-gru-sequence-path": dict(cell="gru", attention="dot", bidirectional=False),
    "general-lstm-bi-sequence-path": dict(cell="lstm", attention="general", bidirectional=True),
    "dot-lstm-zero-bridge": dict(cell="lstm", attention="dot", bidirectional=False, bridge="zero"),
}


def _model(cfg, seed=0):
    m = Seq2Seq(V_SRC, V_TGT, embedding_size=5, hidden_size=4, dtype=np.float64, rng=seed, **cfg)
    rng = np.random.default_rng(seed + 100)
    for name, p in m.named_parameters():
        if "bias" in name:               # non-zero biases so a bias bug cannot hide
            p.data[...] = rng.uniform(-0.5, 0.5, p.shape)
    return m


def _check_all_parameters(model, f, k=5):
    rng = np.random.default_rng(1)
    for name, p in model.named_parameters():
        idx = sample_indices(rng, p.data.size, k)
        if "embedding" in name:          # rows that the batch uses (row 0 is <pad>: no gradient, by design)
            idx = np.unique(np.concatenate([idx, [p.data.shape[1] * 4 + 1, p.data.size - 1]]))
        assert_grad_close(p.grad, numeric_grad(f, p.data, indices=idx), name, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_teacher_forced_loss_gradient_every_parameter(name):
    model = _model(CONFIGS[name])
    batch = make_batch(SRC, TGT, [0, 1, 2])
    f = lambda: model.loss(batch, backward=False, label_smoothing=0.1)[0]
    model.zero_grad()
    model.loss(batch, label_smoothing=0.1)
    _check_all_parameters(model, f)


def test_scheduled_sampling_path_gradient():
    """With some inputs taken from the model (argmax, so f is deterministic), gradients are still exact."""
    model = _model(CONFIGS["general-lstm-feeding"])
    batch = make_batch(SRC, TGT, [0, 1, 2])
    teacher = np.array([[True] * 3, [False, True, False], [True, False, False], [False, False, True]])
    f = lambda: model.loss(batch, teacher=teacher, sampling="argmax", backward=False)[0]
    model.zero_grad()
    model.loss(batch, teacher=teacher, sampling="argmax")
    _check_all_parameters(model, f, k=4)


@pytest.mark.parametrize("name", ["bahdanau-lstm-bi-2layers", "general-lstm-feeding", "bahdanau-gru"])
def test_one_decoder_step_gradient(name):
    """A single step: gradients of the output with respect to the state, the memory and the parameters."""
    model = _model(CONFIGS[name])
    dec = model.decoder
    rng = np.random.default_rng(2)
    N, S, K, L, H = 3, 4, dec.memory_size, dec.rnn.num_layers, dec.hidden_size
    memory = rng.standard_normal((N, S, K))
    mask = np.arange(S)[None, :] < np.array([4, 2, 3])[:, None]
    states = tuple(rng.standard_normal((L, N, H)) * 0.5 for _ in range(dec.rnn.cell.num_states))
    feed = rng.standard_normal((N, H)) * 0.5 if dec.input_feeding else None
    tokens = np.array([[1, 5, 7]])                                     # (T=1, N)
    d_out = rng.standard_normal((1, N, dec.out.in_features))

    def run():
        from rnnkit.translate.decoder import DecoderState
        mem = dec.attention.prepare(memory, mask)
        out, w, _, cache = dec.forward_steps(tokens, DecoderState(states, feed), mem)
        return out, cache, mem

    f = lambda: float((run()[0] * d_out).sum())
    model.zero_grad()
    out, cache, mem = run()
    d_state0, d_keys, d_vals = dec.backward(d_out, cache, mem)
    d_memory = dec.attention.prepare_backward(d_keys, d_vals, mem)
    assert_grad_close(d_memory, numeric_grad(f, memory), "d_memory")
    for j, s in enumerate(states):
        assert_grad_close(d_state0[j], numeric_grad(f, s), f"d_state0[{j}]")
    for pname, p in dec.named_parameters():
        if pname.startswith("out."):
            continue                                                   # the projection is not part of a step
        idx = sample_indices(rng, p.data.size, 5)
        if "embedding" in pname:
            idx = np.concatenate([idx, np.arange(5 * 5, 5 * 5 + 5)])   # row 5 is used
        assert_grad_close(p.grad, numeric_grad(f, p.data, indices=idx), pname)


@pytest.mark.parametrize("name", ["dot-gru-sequence-path", "general-lstm-bi-sequence-path"])
def test_whole_sequence_path_equals_stepping(name):
    model = _model(CONFIGS[name])
    batch = make_batch(SRC, TGT, [0, 1, 2])
    assert model.sequence_path
    logits, w, cache = model.forward(batch.src, batch.src_len, batch.tgt_in)
    assert cache.dec[0] == "sequence"
    model.zero_grad()
    model.backward(np.ones_like(logits), cache)
    g_seq = {n: p.grad.copy() for n, p in model.named_parameters()}
    # the same computation forced through the per-step path
    mem, dstate, enc_cache = model.encode(batch.src, batch.src_len)
    out, w2, _, dcache = model.decoder.forward_steps(batch.tgt_in, dstate, mem)
    np.testing.assert_allclose(model.decoder.logits(out), logits, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(w2, w, rtol=1e-12, atol=1e-14)
    model.zero_grad()
    d_out = model.decoder.out.backward(np.ones_like(logits), model.decoder.out(out)[1])
    d_state0, dk, dv = model.decoder.backward(d_out, dcache, mem)
    model.encoder.backward(model.decoder.attention.prepare_backward(dk, dv, mem), d_state0, enc_cache)
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, g_seq[n], rtol=1e-10, atol=1e-12, err_msg=n)


def test_second_training_step_behaves_like_the_first():
    model = _model(CONFIGS["bahdanau-lstm-bi-2layers"])
    batch = make_batch(SRC, TGT, [0, 1, 2])
    model.zero_grad()
    l1 = model.loss(batch)[0]
    g1 = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    l2 = model.loss(batch)[0]
    assert l1 == l2
    for a, p in zip(g1, model.parameters()):
        np.testing.assert_array_equal(a, p.grad)


def test_input_feeding_needs_luong_attention():
    with pytest.raises(ValueError, match="input_feeding"):
        Seq2Seq(5, 5, attention="bahdanau", input_feeding=True)
