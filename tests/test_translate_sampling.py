"""Teacher forcing and scheduled sampling: the decay formulas, per-token masks, and the limits p = 1 and p = 0."""

import math

import numpy as np
import pytest

from rnnkit.translate.data import make_batch
from rnnkit.translate.decode import greedy
from rnnkit.translate.model import Seq2Seq
from rnnkit.translate.sampling import TeacherForcing

SRC = [[4, 5, 6, 7], [8, 4], [5, 6, 7]]
TGT = [[4, 5, 6], [7], [5, 4]]


def test_decay_formulas():
    lin = TeacherForcing("linear", k=1.0, c=0.01, floor=0.2)
    assert lin.prob(0) == 1.0 and lin.prob(30) == pytest.approx(0.7) and lin.prob(1000) == 0.2
    exp = TeacherForcing("exponential", k=0.99)
    assert exp.prob(0) == 1.0 and exp.prob(100) == pytest.approx(0.99 ** 100)
    inv = TeacherForcing("inverse_sigmoid", k=10.0)
    assert inv.prob(0) == pytest.approx(10 / 11) and inv.prob(50) == pytest.approx(10 / (10 + math.exp(5)))
    assert inv.prob(10 ** 9) < 1e-300                          # no overflow far out
    assert TeacherForcing("constant", ratio=0.3).prob(12345) == 0.3
    for bad in (dict(decay="cosine"), dict(decay="exponential", k=1.5), dict(decay="inverse_sigmoid", k=0.5),
                dict(decay="constant", ratio=1.2), dict(decay="linear", floor=-0.1)):
        with pytest.raises(ValueError):
            TeacherForcing(bad.pop("decay"), **bad)


def test_masks_are_per_token_for_decays_and_per_batch_for_a_ratio():
    rng = np.random.default_rng(0)
    assert TeacherForcing("linear", c=0.0).mask(10, (5, 4), rng) is None     # p = 1: plain teacher forcing
    m = TeacherForcing("linear", k=0.3, c=0.0).mask(0, (200, 100), rng)
    assert m.shape == (200, 100) and abs(m.mean() - 0.3) < 0.01
    const = TeacherForcing("constant", ratio=0.5)
    draws = [const.mask(0, (3, 2), rng) for _ in range(400)]
    assert all(d is None or not d.any() for d in draws)       # the whole batch, one way or the other
    assert 150 < sum(d is None for d in draws) < 250


def _model(**kw):
    return Seq2Seq(9, 8, embedding_size=5, hidden_size=6, dtype=np.float64, rng=1, **kw)


@pytest.mark.parametrize("cfg", [dict(attention="bahdanau"), dict(attention="general", bidirectional=False),
                                 dict(attention="general", input_feeding=True)])
def test_probability_one_equals_teacher_forcing(cfg):
    """An all-True mask through the sampling code path gives the teacher-forced loss and gradients."""
    model = _model(**cfg)
    batch = make_batch(SRC, TGT, [0, 1, 2])
    model.zero_grad()
    loss_tf, _ = model.loss(batch)
    g_tf = [p.grad.copy() for p in model.parameters()]
    mem, dstate, enc_cache = model.encode(batch.src, batch.src_len)
    calls = []
    choose = lambda logits: calls.append(1) or logits.argmax(-1)
    out, w, logits, dcache = model.decoder.forward_steps(batch.tgt_in, dstate, mem, teacher=np.ones((4, 3), bool),
                                                         choose=choose)
    assert not calls                                           # the model's own tokens were never needed
    from rnnkit.nn import cross_entropy
    full_logits, out_cache = model.decoder.out(out)
    np.testing.assert_allclose(full_logits, logits, rtol=1e-13)
    loss, d_logits = cross_entropy(full_logits, batch.tgt_out, ignore_index=0)
    assert loss == pytest.approx(loss_tf, rel=1e-13)
    model.zero_grad()
    d_out = model.decoder.out.backward(d_logits, out_cache)
    d_state0, dk, dv = model.decoder.backward(d_out, dcache, mem)
    model.encoder.backward(model.decoder.attention.prepare_backward(dk, dv, mem), d_state0, enc_cache)
    for a, p in zip(g_tf, model.parameters()):
        np.testing.assert_allclose(p.grad, a, rtol=1e-10, atol=1e-13)


def test_probability_zero_feeds_the_models_own_greedy_tokens():
    model = _model(attention="bahdanau")
    model.eval()
    batch = make_batch(SRC, [[4] * 5] * 3, [0, 1, 2])          # long enough targets: 6 decoder steps
    teacher = np.zeros(batch.tgt_in.shape, bool)
    logits, _, _ = model.forward(batch.src, batch.src_len, batch.tgt_in, teacher=teacher, sampling="argmax")
    fed = logits.argmax(-1)                                    # (T, N): what each step chose
    for n, h in enumerate(greedy(model, batch.src, batch.src_len, max_length=6)):
        k = len(h.tokens)
        assert fed[:k, n].tolist() == h.tokens


def test_sampled_inputs_follow_the_models_distribution():
    from rnnkit.translate.model import _chooser
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.7, 0.2, 0.1]] * 20000))
    counts = np.bincount(_chooser("sample", rng)(logits), minlength=3) / 20000
    np.testing.assert_allclose(counts, [0.7, 0.2, 0.1], atol=0.015)
    with pytest.raises(ValueError, match="rng"):
        _chooser("sample", None)
