"""Decoder step and whole loss against PyTorch twins built from the same weights (float64)."""

import numpy as np
import pytest
import torch

from helpers import torch_twin
from rnnkit.translate.data import make_batch
from rnnkit.translate.decoder import DecoderState
from rnnkit.translate.model import Seq2Seq

N, S = 3, 5
LENGTHS = np.array([5, 2, 3])


def _t(a, grad=False):
    return torch.tensor(np.asarray(a), requires_grad=grad)


def _attend(att, q, mem, mask):
    """PyTorch twin of rnnkit's attention for one query per sequence."""
    if hasattr(att, "v"):                                                        # Bahdanau
        W, U, v = (_t(p.data) for p in (att.W, att.U, att.v))
        e = torch.tanh((q @ W.T)[:, None, :] + mem @ U.T) @ v                   # (N, S)
    elif hasattr(att, "W_a"):                                                    # Luong general
        e = torch.einsum("nq,nsq->ns", q, mem @ _t(att.W_a.data).T)
    else:
        e = torch.einsum("nq,nsq->ns", q, mem)
    w = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=1)
    return torch.bmm(w[:, None, :], mem)[:, 0], w


def _torch_step(dec, tokens, h0, c0, feed, mem, mask):
    """One decoder step in PyTorch: embedding, attention, nn.LSTM/GRU stack, output vector, logits."""
    emb = _t(dec.embedding.weight.data)[torch.tensor(tokens)]
    rnn = torch_twin(dec.rnn)
    if not dec.luong:
        c, w = _attend(dec.attention, h0[-1], mem, mask)
        x = torch.cat([emb, c], dim=1)
    else:
        x = torch.cat([emb, feed], dim=1) if dec.input_feeding else emb
    y, state = rnn(x[None], (h0, c0) if c0 is not None else h0)
    s = y[0]
    if dec.luong:
        c, w = _attend(dec.attention, s, mem, mask)
        Wc, bc = _t(dec.combine.weight.data), _t(dec.combine.bias.data)
        out = torch.tanh(torch.cat([c, s], dim=1) @ Wc.T + bc)
    else:
        out = torch.cat([s, c], dim=1)
    logits = out @ _t(dec.out.weight.data).T + _t(dec.out.bias.data)
    return logits, w, state, rnn


@pytest.mark.parametrize("cfg", [dict(cell="lstm", attention="bahdanau", num_layers=2),
                                 dict(cell="gru", attention="bahdanau", bidirectional=False),
                                 dict(cell="lstm", attention="general", input_feeding=True)])
def test_decoder_step_matches_torch(cfg):
    model = Seq2Seq(11, 9, embedding_size=4, hidden_size=5, dtype=np.float64, rng=2, **cfg)
    dec = model.decoder
    rng = np.random.default_rng(0)
    L, H, K = dec.rnn.num_layers, dec.hidden_size, dec.memory_size
    memory = rng.standard_normal((N, S, K))
    mask = np.arange(S)[None, :] < LENGTHS[:, None]
    states = tuple(rng.standard_normal((L, N, H)) * 0.5 for _ in range(dec.rnn.cell.num_states))
    feed = rng.standard_normal((N, H)) * 0.5 if dec.input_feeding else None
    tokens = np.array([1, 6, 8])
    G = rng.standard_normal((1, N, 9))                                            # upstream gradient of the logits

    model.zero_grad()
    mem = dec.attention.prepare(memory, mask)
    out, w, _, cache = dec.forward_steps(tokens[None], DecoderState(states, feed), mem)
    new = dec.step(tokens, DecoderState(states, feed), mem)[2]
    logits, out_cache = dec.out(out)
    d_state0, dk, dv = dec.backward(dec.out.backward(G, out_cache), cache, mem)
    d_memory = dec.attention.prepare_backward(dk, dv, mem)

    mem_t = _t(memory, True)
    h0 = _t(states[0], True)
    c0 = _t(states[1], True) if len(states) > 1 else None
    feed_t = _t(feed, True) if feed is not None else None
    logits_t, w_t, state_t, rnn_t = _torch_step(dec, tokens, h0, c0, feed_t, mem_t, torch.tensor(mask))
    (logits_t * _t(G[0])).sum().backward()

    np.testing.assert_allclose(logits[0], logits_t.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(w[0], w_t.detach().numpy(), rtol=1e-12, atol=1e-14)
    h_t = state_t[0] if isinstance(state_t, tuple) else state_t
    np.testing.assert_allclose(new.states[0], h_t.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(d_memory, mem_t.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d_state0[0], h0.grad.numpy(), rtol=1e-9, atol=1e-12)
    if c0 is not None:
        np.testing.assert_allclose(d_state0[1], c0.grad.numpy(), rtol=1e-9, atol=1e-12)
    for name, p in dec.rnn.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(rnn_t, name).grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_full_teacher_forced_loss_matches_torch():
    """Encoder (bidirectional, packed), bridge, Bahdanau decoder over 3 steps, padded cross-entropy."""
    model = Seq2Seq(11, 9, embedding_size=4, hidden_size=5, attention="bahdanau", dtype=np.float64, rng=4)
    batch = make_batch([[4, 5, 6, 7, 8], [9, 4], [5, 6, 10]], [[4, 5], [6], [7, 8]], [0, 1, 2])
    model.zero_grad()
    loss, _ = model.loss(batch, label_smoothing=0.1)

    enc, dec = model.encoder, model.decoder
    emb_s = _t(enc.embedding.weight.data, True)
    rnn_e = torch_twin(enc.rnn)
    x = emb_s[torch.tensor(batch.src)]
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(batch.src_len), enforce_sorted=False)
    y, (hn, cn) = rnn_e(packed)
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=batch.src.shape[0])
    mem = y.transpose(0, 1)                                                       # (N, S, 2H)
    bridge = lambda f, lin, act: act(torch.cat([f[0::2], f[1::2]], dim=2) @ _t(lin.weight.data).T
                                     + _t(lin.bias.data))
    h = bridge(hn, enc.bridge_h, torch.tanh)
    c = bridge(cn, enc.bridge_c, lambda a: a)
    mask = torch.tensor(np.arange(batch.src.shape[0])[None, :] < batch.src_len[:, None])
    all_logits = []
    for t in range(batch.tgt_in.shape[0]):
        logits_t, _, (h, c), _ = _torch_step(dec, batch.tgt_in[t], h, c, None, mem, mask)
        all_logits.append(logits_t)
    logits = torch.stack(all_logits)
    loss_t = torch.nn.functional.cross_entropy(logits.reshape(-1, 9), torch.tensor(batch.tgt_out.reshape(-1)),
                                               ignore_index=0, label_smoothing=0.1)
    loss_t.backward()
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    np.testing.assert_allclose(enc.embedding.weight.grad, emb_s.grad.numpy(), rtol=1e-9, atol=1e-12)
    for name, p in enc.rnn.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(rnn_e, name).grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
