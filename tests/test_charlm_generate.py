"""Generation: reproducible sampling, temperature -> 0 is greedy, beam search, prime handling."""

import itertools

import numpy as np
import pytest

from rnnkit.charlm.data import Vocab
from rnnkit.charlm.generate import beam_search, sample_text, stream, warm_up
from rnnkit.charlm.model import CharLM
from rnnkit.errors import DataError, HyperparameterError
from rnnkit.nn import log_softmax


@pytest.fixture(scope="module")
def model():
    m = CharLM(Vocab(list("\n abcdefgh")), hidden_size=24, num_layers=2, embedding_size=6, dropout=0.3, rng=0)
    for p in m.parameters():           # sharper distributions than the initialisation gives
        p.data *= 3
    return m


def test_same_seed_same_text(model):
    a = sample_text(model, "abc", 80, temperature=1.0, seed=7)
    assert len(a) == 80 and set(a) <= set(model.vocab.chars)
    assert sample_text(model, "abc", 80, temperature=1.0, seed=7) == a
    assert sample_text(model, "abc", 80, temperature=1.0, seed=8) != a
    assert model.training                                # generation restores the caller's mode


def _greedy(model, prime, length):
    """Greedy decoding written out by hand: feed the whole text so far, take the arg-max."""
    text = prime
    for _ in range(length):
        ids = model.vocab.encode(text)
        model.eval()
        logits, _, _ = model.forward(ids[:, None])
        model.train()
        text += model.vocab.chars[int(np.argmax(logits[-1, 0]))]
    return text[len(prime):]


def test_temperature_to_zero_is_greedy(model):
    greedy = _greedy(model, "bad cab", 40)
    assert sample_text(model, "bad cab", 40, temperature=0, seed=1) == greedy
    assert sample_text(model, "bad cab", 40, temperature=1e-6, seed=2) == greedy
    assert sample_text(model, "bad cab", 40, temperature=1.0, top_k=1, seed=3) == greedy
    assert sample_text(model, "bad cab", 40, temperature=1.0, top_p=1e-9, seed=4) == greedy
    assert beam_search(model, "bad cab", 40, beam=1)[0] == greedy


def test_top_k_restricts_the_draw(model):
    model.eval()
    _, state = warm_up(model, "abc")
    logits, _ = model.step(np.array([model.vocab.index["c"]]), state)
    model.train()
    allowed = {model.vocab.chars[i] for i in np.argsort(-logits[0])[:2]}
    draws = {sample_text(model, "abc", 1, temperature=5.0, top_k=2, seed=s) for s in range(40)}
    assert draws == allowed


def test_beam_search_finds_the_most_likely_continuation(model):
    """With as many beams as sequences, beam search is exhaustive: compare with brute force."""
    small = CharLM(Vocab(list("abc")), hidden_size=8, num_layers=1, embedding_size=3, rng=3)
    for p in small.parameters():
        p.data *= 4
    small.eval()
    prime, length = "ab", 3
    best, best_lp = None, -np.inf
    for cont in itertools.product("abc", repeat=length):
        text = prime + "".join(cont)
        ids = small.vocab.encode(text)
        logits, _, _ = small.forward(ids[:-1, None])
        lp = log_softmax(logits.astype(np.float64))[:, 0, :]
        score = sum(lp[t, ids[t + 1]] for t in range(len(prime) - 1, len(text) - 1))
        if score > best_lp:
            best, best_lp = "".join(cont), score
    text, lp = beam_search(small, prime, length, beam=27)
    assert text == best and abs(lp - best_lp) < 1e-5
    # and a wider beam is never worse than greedy here
    assert beam_search(model, "a", 20, beam=4)[1] >= beam_search(model, "a", 20, beam=1)[1] - 1e-9


def test_prime_with_unknown_characters_fails_before_output(model):
    with pytest.raises(DataError, match=r"prime text.*'Z' \(U\+005A\)"):
        stream(model, "aZb", 10)          # raised at the call, not at the first character
    with pytest.raises(DataError, match="prime text"):
        beam_search(model, "xyz", 5)


def test_empty_prime_and_bad_arguments(model):
    assert len(sample_text(model, "", 30, seed=0)) == 30
    with pytest.raises(HyperparameterError, match=r"temperature \(--temperature\) must be >= 0, got -1"):
        sample_text(model, "a", 5, temperature=-1)
    with pytest.raises(HyperparameterError, match=r"top_p \(--top-p\) must be in \(0, 1\], got 0"):
        sample_text(model, "a", 5, top_p=0)
    with pytest.raises(HyperparameterError, match=r"length \(--length\) must be >= 0, got -1"):
        sample_text(model, "a", -1)


def test_search_sizes_have_upper_limits(model, monkeypatch):
    with pytest.raises(HyperparameterError, match=r"length \(--length\) must be <= 10,000,000, got 10000001"):
        sample_text(model, "a", 10 ** 7 + 1)
    with pytest.raises(HyperparameterError, match=r"beam \(--beam\) must be <= 1,000, got 100000"):
        beam_search(model, "a", 5, beam=100_000)
    with pytest.raises(HyperparameterError, match=r"beam \(--beam\) must be >= 1, got 0"):
        beam_search(model, "a", 5, beam=0)
    import rnnkit.charlm.generate as generate
    monkeypatch.setattr(generate, "available_memory", lambda: 1 << 30)     # the same on any machine
    with pytest.raises(HyperparameterError, match=r"beam \(--beam\) 1000 over length \(--length\) 10,000,000 "
                                                  r"needs about 74.5 GiB for its back-pointers, but 1.0 GiB"):
        beam_search(model, "a", 10 ** 7, beam=1000)          # refused before anything is allocated


@pytest.mark.parametrize("memory", [None, 1 << 50])
def test_a_huge_beam_search_is_refused_with_its_size_on_any_machine(model, memory, monkeypatch):
    import rnnkit.charlm.generate as generate
    monkeypatch.setattr(generate, "available_memory", lambda: memory)   # unknown, or a petabyte free

    def started(*args, **kwargs):
        raise AssertionError("the search started")
    monkeypatch.setattr(generate, "warm_up", started)
    with pytest.raises(HyperparameterError, match=r"^beam \(--beam\) 1000 over length \(--length\) 10,000,000 "
                                                  r"needs about 74.5 GiB for its back-pointers, more than the "
                                                  r"7.5 GiB one search may use \(--beam x --length at most "
                                                  r"1,000,000,000\); use a smaller --beam or --length$"):
        beam_search(model, "a", 10 ** 7, beam=1000)
    with pytest.raises(AssertionError, match="the search started"):     # the largest search allowed
        beam_search(model, "a", 10 ** 6, beam=1000)


def test_an_unknown_prime_names_the_flag(model):
    with pytest.raises(DataError, match=r"the prime text \(--prime\) has 1 character"):
        sample_text(model, "abz", 3)
