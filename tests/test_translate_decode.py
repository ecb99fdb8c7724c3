"""Greedy and beam search: beam 1 is greedy, the beam never scores below greedy, n-best lists, batching."""

import numpy as np
import pytest

from rnnkit.errors import HyperparameterError

from rnnkit.translate.data import EOS, make_batch
from rnnkit.translate.decode import beam_search, greedy, length_penalty
from rnnkit.translate.model import Seq2Seq
from rnnkit.translate.translator import Translator

pytestmark = pytest.mark.usefixtures("one_blas_thread")


WORDS = "ab cd ef gh ij kl mn op".split()


def _reversal_pairs(n, seed):
    """source "ab ef cd" -> target "CD EF AB": a toy task with long-range reordering."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        src = list(rng.choice(WORDS, size=rng.integers(2, 6)))
        out.append((" ".join(src), " ".join(w.upper() for w in src[::-1])))
    return out


@pytest.fixture(scope="module")
def trained():
    tr = Translator(embedding_size=16, hidden_size=32, epochs=12, batch_size=16, learning_rate=5e-3,
                    dropout=0.0, lowercase=False, random_state=0, progress=False)
    return tr.fit(_reversal_pairs(400, 0))


def _batch(tr, sentences):
    ids = [tr.src_vocab_.encode(s.split())[0] for s in sentences]
    return make_batch(ids, None, range(len(ids)))


def _random_model(**kw):
    return Seq2Seq(12, 10, embedding_size=6, hidden_size=8, rng=3, **kw)


RANDOM_SRC = np.array([[4, 5, 6], [7, 8, 0], [9, 0, 0], [10, 0, 0]])   # (S, N=3)
RANDOM_LEN = np.array([4, 2, 1])


@pytest.mark.parametrize("cfg", [dict(attention="bahdanau"), dict(attention="general", input_feeding=True),
                                 dict(attention="dot", bidirectional=False, cell="gru")])
def test_beam_of_one_is_greedy(cfg, trained):
    for model, src, src_len in ((_random_model(**cfg), RANDOM_SRC, RANDOM_LEN),
                                (trained.model_,) + tuple(_batch(trained, ["ab cd ef", "gh ij", "kl"])[:2])):
        g = greedy(model, src, src_len, max_length=7)
        b = beam_search(model, src, src_len, beam_size=1, max_length=7)
        for gh, (bh,) in zip(g, b):
            assert gh.tokens == bh.tokens and gh.finished == bh.finished
            assert gh.log_prob == pytest.approx(bh.log_prob, rel=1e-5)
            np.testing.assert_allclose(gh.weights, bh.weights, rtol=1e-5, atol=1e-7)


def test_beam_scores_at_least_greedy_under_the_model(trained):
    sentences = [p[0] for p in _reversal_pairs(40, 1)]
    b = _batch(trained, sentences)
    g = greedy(trained.model_, b.src, b.src_len, max_length=12)
    beams = beam_search(trained.model_, b.src, b.src_len, beam_size=5, max_length=12)
    for gh, (bh,) in zip(g, beams):
        assert bh.log_prob >= gh.log_prob - 1e-6
    exact = np.mean([trained.tgt_vocab_.decode(bh.tokens) == s.upper().split()[::-1]
                     for s, (bh,) in zip(sentences, beams)])
    assert exact >= 0.9                                        # the fixture learned the task


def test_n_best_lists_are_distinct_sorted_and_scored(trained):
    b = _batch(trained, ["ab cd ef gh", "mn"])
    for alpha in (0.0, 1.0):
        for hyps in beam_search(trained.model_, b.src, b.src_len, beam_size=4, n_best=3, alpha=alpha):
            assert len(hyps) == 3
            assert len({tuple(h.tokens) for h in hyps}) == 3
            assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
            for h in hyps:
                L = len(h.tokens) + 1                          # <eos> counts
                assert h.finished and h.score == pytest.approx(h.log_prob / length_penalty(L, alpha))
    assert length_penalty(3, 0.0) == 1.0 and length_penalty(1, 0.7) == 1.0


def test_batched_beam_equals_one_sentence_at_a_time(trained):
    sentences = ["ab cd ef gh ij", "kl", "mn op ab"]
    b = _batch(trained, sentences)
    together = beam_search(trained.model_, b.src, b.src_len, beam_size=3, n_best=2)
    for s, hyps in zip(sentences, together):
        bs = _batch(trained, [s])
        alone = beam_search(trained.model_, bs.src, bs.src_len, beam_size=3, n_best=2)[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        np.testing.assert_allclose([h.log_prob for h in hyps], [h.log_prob for h in alone], rtol=1e-5)


def test_attention_weights_are_returned_and_masked(trained):
    b = _batch(trained, ["ab cd ef gh ij", "kl"])
    for hyps in (greedy(trained.model_, b.src, b.src_len), [h[0] for h in beam_search(trained.model_, b.src,
                                                                                          b.src_len, 3)]):
        for h, S in zip(hyps, b.src_len):
            assert h.weights.shape == (len(h.tokens) + 1, S)    # one row per output token and <eos>, real source only
            np.testing.assert_allclose(h.weights.sum(axis=1), 1.0, rtol=1e-5)


def test_max_length_cuts_unfinished_hypotheses():
    model = _random_model()
    g = greedy(model, RANDOM_SRC, RANDOM_LEN, max_length=2)
    b = beam_search(model, RANDOM_SRC, RANDOM_LEN, beam_size=3, n_best=2, max_length=2)
    for h in g:
        assert len(h.tokens) <= 2 and (h.finished or len(h.tokens) == 2) and EOS not in h.tokens
    for hyps in b:
        assert all(len(h.tokens) <= 2 for h in hyps) and len(hyps) == 2


@pytest.mark.parametrize("favoured", ["PAD", "SOS"])
def test_pad_and_sos_are_never_emitted(favoured):
    # an undertrained model picked them; decode() drops them, so the text was shorter than its weights
    from rnnkit.translate import data
    model = _random_model()
    model.decoder.out.bias.data[getattr(data, favoured)] = 50.0        # the model's favourite by far
    g = greedy(model, RANDOM_SRC, RANDOM_LEN, max_length=4)
    b = beam_search(model, RANDOM_SRC, RANDOM_LEN, beam_size=3, n_best=2, max_length=4)
    for h in g + [h for hyps in b for h in hyps]:
        assert data.PAD not in h.tokens and data.SOS not in h.tokens
        assert h.weights.shape[0] == len(h.tokens) + h.finished          # a weight row per emitted token


def test_bad_beam_settings():
    model = _random_model()
    with pytest.raises(HyperparameterError, match=r"beam \(--beam\) must be >= 1, got 0"):
        beam_search(model, RANDOM_SRC, RANDOM_LEN, beam_size=0)
    with pytest.raises(HyperparameterError, match=r"n_best \(--n-best\) must be <= the beam size 2, got 3"):
        beam_search(model, RANDOM_SRC, RANDOM_LEN, beam_size=2, n_best=3)
    with pytest.raises(HyperparameterError, match=r"beam \(--beam\) must be <= 1000, got 100000"):
        beam_search(model, RANDOM_SRC, RANDOM_LEN, beam_size=100000)   # refused before any (N*B, V) array


def test_max_length_must_be_positive():
    from rnnkit.translate.decode import _check_max_length
    for bad in (0, -1, 2.5, True, 10001):
        with pytest.raises(HyperparameterError, match=r"max_length \(--max-length\) must be"):
            _check_max_length(bad)
    _check_max_length(1)
    _check_max_length(10000)


def test_translate_takes_one_string_as_one_sentence_and_refuses_what_is_not_text(trained):
    # "cat" gave 3 results (its letters); "one cat" failed on its space as "sentence 4 is empty"; [] crashed
    one = trained.translate("ab cd ef")
    assert len(one) == 1 and [t.text for t in one[0]] == [t.text for t in trained.translate(["ab cd ef"])[0]]
    assert trained.translate([]) == []
    from rnnkit.errors import DataError
    with pytest.raises(DataError, match="sentence 2 is a NoneType, not a str"):
        trained.translate(["ab", None])


@pytest.mark.parametrize("pairs, message", [
    ([(1, 2)], r"train_pairs\[0\]: expected a \(source, target\) pair of strings, got \(1, 2\)"),
    ([("ab", None)], r"train_pairs\[0\]: .* got \('ab', None\)"),
    ([("a", "b", "c")], r"train_pairs\[0\]: .* got \('a', 'b', 'c'\)"),
    (["ab"], r"train_pairs\[0\]: .* got 'ab'"),
    ("ab cd", "train_pairs: expected a list of .* got a str"),
])
def test_fit_names_the_first_pair_that_is_not_two_strings(pairs, message):
    from rnnkit.errors import DataError
    with pytest.raises(DataError, match=message):                      # were AttributeError/ValueError
        Translator(epochs=1, hidden_size=8, embedding_size=8, progress=False).fit(pairs)


def test_fit_refuses_a_dataframe_and_says_how_to_pass_it():
    pd = pytest.importorskip("pandas")
    from rnnkit.errors import DataError
    df = pd.DataFrame({"src": ["ab cd", "ef gh"], "tgt": ["CD AB", "GH EF"]})
    with pytest.raises(DataError, match=r"got a DataFrame \(pass list\(df.itertuples\(index=False\)\)\)"):
        Translator(epochs=1, hidden_size=8, embedding_size=8, progress=False).fit(df)
    tr = Translator(epochs=1, hidden_size=8, embedding_size=8, progress=False).fit(list(df.itertuples(index=False)))
    assert tr.history_.steps >= 1
