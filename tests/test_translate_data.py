"""Pairs files, normalisation, tokens, vocabularies, splits, filters and bucketed batches."""

import numpy as np
import pytest

from rnnkit.errors import DataError, HyperparameterError, PathError
from rnnkit.translate.data import (EOS, PAD, SOS, SPECIALS, UNK, TextOptions, Vocab, bucket_batches, detokenize,
                                   filter_pairs, make_batch, normalize_text, read_pairs, split_indices, tokenize)


def _write(tmp_path, text, name="pairs.tsv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_normalisation_options():
    s = "Je suis fatigu\u00e9\u202f! J\u2019ai \u00ab peut-\u00eatre \u00bb 19 ans."
    assert normalize_text(s) == "je suis fatigué ! j'ai « peut-être » 19 ans ."
    assert normalize_text(s, TextOptions(normalize="ascii")) == "je suis fatigue ! j'ai « peut-etre » 19 ans ."
    assert normalize_text("Hello, World!", TextOptions(lowercase=False, split_punctuation=False)) == "Hello, World!"
    assert normalize_text("'quoted' -dash", TextOptions()) == "' quoted ' - dash"   # only inner ' and - stay
    # NFKC turns the narrow no-break space into a space; "none" keeps it inside the token
    assert tokenize("oui\u202f!") == ["oui", "!"]


def test_word_and_char_tokens_round_trip():
    assert tokenize("I'm cold.") == ["i'm", "cold", "."]
    opts = TextOptions(tokens="char")
    toks = tokenize("Ab c.", opts)
    assert toks == ["a", "b", " ", "c", " ", "."]
    assert detokenize(toks, opts) == "ab c ."
    assert detokenize(["a", "b"]) == "a b"


def test_read_pairs_columns_and_direction(tmp_path):
    path = _write(tmp_path, "Go.\tVa !\tCC-BY attribution\nHi.\tSalut !\tCC-BY\n")
    assert read_pairs(path) == [("Go.", "Va !"), ("Hi.", "Salut !")]
    assert read_pairs(path, src_col=1, tgt_col=0) == [("Va !", "Go."), ("Salut !", "Hi.")]


@pytest.mark.parametrize("text, cols, message", [
    ("a\tb\nno tab here\n", {}, r"line 2: no tab character"),
    ("a\tb\nc\td\n", {"src_col": 2}, r"line 1: 2 columns, but column 2 is needed"),
    ("a\tb\nc\t \n", {}, r"line 2: the target column \(1\) is empty"),
    ("", {}, r"holds no sentence pairs"),
])
def test_read_pairs_names_the_bad_line(tmp_path, text, cols, message):
    with pytest.raises(DataError, match=message):
        read_pairs(_write(tmp_path, text), **cols)


def test_read_pairs_bad_paths_and_columns(tmp_path):
    with pytest.raises(PathError, match="missing.tsv: no such file"):
        read_pairs(str(tmp_path / "missing.tsv"))
    with pytest.raises(PathError, match="is a directory"):
        read_pairs(str(tmp_path))
    with pytest.raises(DataError, match="both 0"):
        read_pairs(_write(tmp_path, "a\tb\n"), src_col=0, tgt_col=0)
    bad = tmp_path / "latin1.tsv"
    bad.write_bytes("caf\xe9\tx\n".encode("latin-1"))
    with pytest.raises(PathError, match="line 1, column 4: .* not valid utf-8"):
        read_pairs(str(bad))


def test_filters_length_and_english_prefixes():
    pairs = [("je suis froid .", "I'm cold."), ("il est là .", "He is here."), ("va !", "Go!"),
             ("un deux trois quatre cinq", "one two three four five six")]
    tok = [(tokenize(s), tokenize(t)) for s, t in pairs]
    assert filter_pairs(tok, prefix_filter="target") == [0, 1]
    assert filter_pairs(tok, max_words=6) == [0, 1, 2]          # "one .. six" has 6 words: not fewer than 6
    assert filter_pairs(tok, max_words=3) == [2]                # "i'm cold" counts 3 words (i, m, cold)
    assert filter_pairs(tok, prefix_filter="source") == []
    with pytest.raises(ValueError, match="prefix_filter"):
        filter_pairs(tok, prefix_filter="english")


def test_vocab_specials_frequency_and_size():
    sents = [["a", "b", "a"], ["c", "a", "b"], ["d"]]
    v = Vocab.build(sents)
    assert v.itos[:4] == ["<pad>", "<sos>", "<eos>", "<unk>"] and (PAD, SOS, EOS, UNK) == (0, 1, 2, 3)
    assert v.itos[4:] == ["a", "b", "c", "d"]                    # by frequency, ties alphabetical
    assert Vocab.build(sents, min_freq=2).itos[4:] == ["a", "b"]
    assert Vocab.build(sents, max_size=5).itos[4:] == ["a"]
    ids, unknown = v.encode(["a", "zz", "d"])
    assert ids == [4, UNK, 7] and unknown == ["zz"]
    assert v.decode([SOS, 4, 5, EOS, 6]) == ["a", "b"]
    assert Vocab(v.itos).stoi == v.stoi
    with pytest.raises(DataError, match="must start with"):
        Vocab(["a", "b", "c", "d"])


def test_split_is_seeded_and_partitions():
    tr, va, te = split_indices(100, valid=0.1, test=0.2, seed=3)
    assert (len(tr), len(va), len(te)) == (70, 10, 20)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(100))
    tr2, va2, te2 = split_indices(100, valid=0.1, test=0.2, seed=3)
    assert np.array_equal(te, te2) and not np.array_equal(te, split_indices(100, valid=0.1, test=0.2, seed=4)[2])
    with pytest.raises(HyperparameterError, match=r"--validation-fraction\) \+ test_fraction \(--test-fraction\)"):
        split_indices(10, valid=0.5, test=0.5)


@pytest.mark.parametrize("kwargs, flag", [({"valid": 1.5}, "--validation-fraction"), ({"test": -0.1}, "--test-fraction")])
def test_split_names_the_flags(kwargs, flag):
    with pytest.raises(HyperparameterError) as e:
        split_indices(10, **kwargs)
    assert flag in str(e.value) and "valid:" not in str(e.value) and "test:" not in str(e.value)


@pytest.mark.parametrize("size", [0, 2.5, True])
def test_bucket_batches_checks_the_batch_size_through_rnnkit_checks(size):
    with pytest.raises(HyperparameterError, match=r"batch_size \(--batch-size\) must be"):
        bucket_batches([[5]], [[6]], size, np.random.default_rng(0))


def test_one_shared_vocabulary_base():
    from rnnkit.vocab import Vocab as Shared
    from rnnkit.charlm.data import Vocab as CharVocab
    words = Vocab.build([["b", "a", "b"], ["c"]], max_size=6)
    chars = CharVocab.from_text("hello")
    assert isinstance(words, Shared) and isinstance(chars, Shared)
    assert words.itos == SPECIALS + ["b", "a"] and "b" in words and "c" not in words
    assert words.encode(["a", "z"]) == ([5, UNK], ["z"])
    assert chars.itos == chars.chars == ["e", "h", "l", "o"] and chars.stoi["l"] == 2 and "h" in chars
    assert chars.decode(chars.encode("hello")) == "hello"
    assert Shared(["x", "y"]).encode(["y", "x"]) == [1, 0]
    with pytest.raises(DataError, match="not in the vocabulary"):
        Shared(["x"]).encode(["q"])


def test_batches_are_padded_time_major_and_bucketed():
    src = [[5] * n for n in (1, 7, 2, 6, 3, 5, 4, 8)]
    tgt = [[6] * n for n in (2, 1, 3, 2, 1, 4, 2, 3)]
    b = make_batch(src, tgt, [1, 2])
    assert b.src.shape == (7, 2) and b.src_len.tolist() == [7, 2]
    assert b.src[2:, 1].tolist() == [PAD] * 5
    assert b.tgt_in[:, 0].tolist() == [SOS, 6, PAD, PAD] and b.tgt_out[:, 0].tolist() == [6, EOS, PAD, PAD]
    assert b.tgt_in[:, 1].tolist() == [SOS, 6, 6, 6] and b.tgt_out[:, 1].tolist() == [6, 6, 6, EOS]
    batches = bucket_batches(src, tgt, 2, np.random.default_rng(0), pool=4)
    assert sorted(i for bb in batches for i in bb.index) == list(range(8))
    for bb in batches:                                          # sorted pools: neighbours in length
        assert np.ptp(bb.src_len) <= 1
    again = bucket_batches(src, tgt, 2, np.random.default_rng(0), pool=4)
    assert [bb.index.tolist() for bb in batches] == [bb.index.tolist() for bb in again]


# -- held out means unseen: the split by sentence groups (issue 15) -------------------------------
def _paraphrase_pairs(rng, n_targets=60):
    """Tatoeba's shape: several source phrasings per target sentence, and some sources shared across targets."""
    pairs = []
    for t in range(n_targets):
        for k in range(int(rng.integers(1, 5))):
            pairs.append((f"Je suis fatigue numero {t} variante {k} .", f"I am tired number {t} ."))
    pairs += [("Bonjour !", "Hello!"), ("Bonjour !", "Good morning!"), ("Salut !", "Hello!")]   # a chain
    pairs += [(s.upper(), t) for s, t in pairs[:10]]          # the same sentence, differently cased
    return pairs


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_grouped_split_puts_no_held_out_sentence_on_the_training_side(seed):
    from rnnkit.translate.data import sentence_groups
    rng = np.random.default_rng(seed)
    pairs = _paraphrase_pairs(rng)
    opts = TextOptions()
    norm = lambda s: " ".join(tokenize(s, opts))
    tr, va, te = split_indices(len(pairs), valid=0.15, test=0.2, seed=seed, groups=sentence_groups(pairs, opts))
    assert sorted(np.concatenate([tr, va, te])) == list(range(len(pairs)))      # a partition
    assert len(te) >= 0.2 * len(pairs) - 5 and len(va) > 0 and len(tr) > 0
    train_sentences = {norm(s) for i in tr for s in pairs[i]}
    for side in (va, te):
        held = {norm(s) for i in side for s in pairs[i]}
        assert not held & train_sentences, held & train_sentences
    assert not {norm(s) for i in va for s in pairs[i]} & {norm(s) for i in te for s in pairs[i]}
    # the pair-by-pair split, as before, leaks on this data
    tr0, _, te0 = split_indices(len(pairs), valid=0.15, test=0.2, seed=seed)
    assert {norm(t) for i in te0 for t in pairs[i][1:]} & {norm(t) for i in tr0 for t in pairs[i][1:]}


def test_sentence_groups_follow_chains_of_shared_sentences():
    from rnnkit.translate.data import sentence_groups
    pairs = [("a", "x"), ("b", "x"), ("b", "y"), ("c", "z"), ("C", "v"), ("d", "w")]
    g = sentence_groups(pairs, TextOptions(lowercase=True))
    assert g[0] == g[1] == g[2] != g[3]            # a-x, b-x, b-y: one group through x and b
    assert g[3] == g[4]                             # c-z and C-v share c once lowercased
    assert len(set(g.tolist())) == 3


def test_one_pair_per_group_splits_exactly_as_the_pair_by_pair_split():
    """The built-in numbers task (every sentence unique) keeps its split, so its README figures stand."""
    plain = split_indices(500, valid=0.1, test=0.1, seed=7)
    grouped = split_indices(500, valid=0.1, test=0.1, seed=7, groups=np.arange(500))
    assert all(np.array_equal(a, b) for a, b in zip(plain, grouped))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_extra_training_pairs_keep_the_held_out_sentences_unseen(seed):
    """Pairs added to training after the grouped split (benchmark --extra-pairs) drop every pair that shares
    a normalised source or target sentence with the validation or test side, and keep all the others."""
    from rnnkit.translate.data import disjoint_from, sentence_groups
    rng = np.random.default_rng(seed)
    pairs = _paraphrase_pairs(rng)
    opts = TextOptions()
    norm = lambda s: " ".join(tokenize(s, opts))
    tr, va, te = split_indices(len(pairs), valid=0.15, test=0.2, seed=seed, groups=sentence_groups(pairs, opts))
    held = [pairs[i] for i in np.concatenate([va, te])]
    extra = [(s.lower() + " ", t.upper()) for s, t in pairs] + [("Une phrase neuve.", "A new sentence.")]
    kept = disjoint_from(extra, held, opts)
    held_src, held_tgt = {norm(s) for s, _ in held}, {norm(t) for _, t in held}
    assert kept and ("Une phrase neuve.", "A new sentence.") in kept
    assert all(norm(s) not in held_src and norm(t) not in held_tgt for s, t in kept)
    dropped = [p for p in extra if p not in kept]
    assert len(dropped) >= len(held)                # every re-cased copy of a held-out pair is gone
    assert all(norm(s) in held_src or norm(t) in held_tgt for s, t in dropped)


def test_blank_lines_hold_no_pair_and_are_skipped(tmp_path):
    """A blank line (often the last) was fatal: 'line 61: empty line'."""
    path = tmp_path / "p.tsv"
    path.write_text("a\tb\n\n  \n\t\nc\td\n\n", encoding="utf-8")
    assert read_pairs(str(path)) == [("a", "b"), ("c", "d")]
    path.write_text("a\tb\n\nno tab\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3: no tab character"):       # line numbers count the blank ones
        read_pairs(str(path))
