"""Training through fit(): overfitting, the built-in task, files, resume, the estimator contract."""

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import HyperparameterError, ModelFileError, NotFittedError
from rnnkit.io.modelfile import save_model_file
from rnnkit.translate.translator import Translator

pytestmark = pytest.mark.usefixtures("one_blas_thread")


# French -> English, the kind of pairs the Tatoeba file holds
PAIRS = [
    ("je suis fatigué .", "i am tired ."), ("je suis content .", "i am happy ."),
    ("il est grand .", "he is tall ."), ("elle est petite .", "she is small ."),
    ("nous sommes prêts .", "we are ready ."), ("ils sont ici .", "they are here ."),
    ("tu es en retard .", "you are late ."), ("je suis malade .", "i am sick ."),
    ("il est riche .", "he is rich ."), ("elle est occupée .", "she is busy ."),
    ("nous sommes perdus .", "we are lost ."), ("ils sont jeunes .", "they are young ."),
    ("je ne suis pas fatigué .", "i am not tired ."), ("il n'est pas ici .", "he is not here ."),
    ("elle est très grande .", "she is very tall ."), ("nous sommes très contents .", "we are very happy ."),
    ("tu es mon ami .", "you are my friend ."), ("je suis ton père .", "i am your father ."),
    ("il est professeur .", "he is a teacher ."), ("elle est médecin .", "she is a doctor ."),
    ("ils sont étudiants .", "they are students ."), ("je suis prêt à partir .", "i am ready to go ."),
    ("il a faim .", "he is hungry ."), ("j'ai froid .", "i am cold ."),
    ("nous avons soif .", "we are thirsty ."), ("elle a peur .", "she is afraid ."),
    ("tu as raison .", "you are right ."), ("ils ont tort .", "they are wrong ."),
    ("je suis à la maison .", "i am at home ."), ("il est dans la voiture .", "he is in the car ."),
]


def _small(**kw):
    # plain teacher forcing at a constant rate, no smoothing: the mechanics, not the tuned recipe
    params = dict(embedding_size=24, hidden_size=48, batch_size=10, learning_rate=1e-2, dropout=0.0, epochs=60,
                  bleu_sentences=0, random_state=0, progress=False, scheduled_sampling="none",
                  label_smoothing=0.0, lr_decay="none")
    params.update(kw)
    return Translator(**params)


@pytest.mark.parametrize("attention, extra", [("bahdanau", {}), ("general", {"input_feeding": True}),
                                              ("dot", {"bidirectional": False, "cell": "gru"})])
def test_small_model_overfits_a_few_dozen_pairs(attention, extra):
    tr = _small(attention=attention, **extra).fit(PAIRS)
    out = [r[0].text for r in tr.translate([s for s, _ in PAIRS])]
    wrong = [(s, o) for (s, t), o in zip(PAIRS, out) if o != t]
    assert not wrong, wrong
    beam = [r[0].text for r in tr.translate([s for s, _ in PAIRS], beam=3)]
    assert beam == [t for _, t in PAIRS]


def test_builtin_numbers_task_reaches_high_accuracy():
    pytest.importorskip("num2words")
    from rnnkit.translate.api import prepare_pairs
    from rnnkit.translate.data import split_indices
    data, info = prepare_pairs(None, numbers="0-399")
    assert info["kept"] == 400 and data[345] == ("three hundred and forty-five", "trois cent quarante-cinq")
    tr_i, va_i, te_i = split_indices(len(data), valid=0.1, test=0.1, seed=0)
    tr = Translator(embedding_size=32, hidden_size=64, epochs=15, batch_size=16, learning_rate=5e-3, dropout=0.0,
                    bleu_sentences=40, random_state=0, progress=False, attention="bahdanau",
                    scheduled_sampling="none", label_smoothing=0.0, lr_decay="none",
                    tie_embeddings=False, average_checkpoints=0)    # the pre-issue-15 settings this test pins
    tr.fit([data[i] for i in tr_i], [data[i] for i in va_i])
    result = tr.evaluate([data[i] for i in te_i])              # numbers never seen in training
    assert result["exact"] >= 85.0, result
    assert "bleu" in tr.history_.val[-1][1]
    # the attention of a monotone translation follows the diagonal: "trois" looks at "three", "cinq" at "five"
    r = tr.translate(["three hundred and forty-five"])[0][0]
    assert r.text == "trois cent quarante-cinq"
    assert r.weights[0].argmax() == 0 and r.weights[2].argmax() == 3


def test_save_load_round_trip_and_kind_check(tmp_path):
    tr = _small(epochs=3).fit(PAIRS[:10])
    path = tr.save(str(tmp_path / "m.npz"), meta={"note": "x"})
    back = Translator.load(path)
    assert back.get_params() == tr.get_params()
    assert back.src_vocab_.itos == tr.src_vocab_.itos and back.meta_["note"] == "x"
    a = tr.translate(["je suis fatigué .", "zzz"], beam=2, n_best=2)
    b = back.translate(["je suis fatigué .", "zzz"], beam=2, n_best=2)
    assert [[h.text for h in r] for r in a] == [[h.text for h in r] for r in b]
    assert b[1][0].unknown == ["zzz"]
    other = tmp_path / "forecaster.npz"
    save_model_file(str(other), kind="forecaster", config={}, arrays={"w": np.zeros(2)}, meta={})
    with pytest.raises(ModelFileError, match="forecaster model file, not a translator"):
        Translator.load(str(other))


def test_resumed_training_equals_an_uninterrupted_run(tmp_path):
    ck = str(tmp_path / "run.ckpt.npz")
    straight = _small(epochs=None, max_steps=8, scheduled_sampling="linear", ss_c=0.05).fit(PAIRS)
    _small(epochs=None, max_steps=4, scheduled_sampling="linear", ss_c=0.05).fit(
        PAIRS, checkpoint_path=ck)
    resumed = _small(epochs=None, max_steps=8, scheduled_sampling="linear", ss_c=0.05).fit(
        PAIRS, checkpoint_path=ck, resume=True)
    assert resumed.history_.steps == 8 and resumed.history_.train == straight.history_.train
    for (n, a), (_, b) in zip(straight.model_.named_parameters(), resumed.model_.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)


def test_scheduled_sampling_at_probability_one_trains_like_teacher_forcing():
    tf = _small(epochs=2).fit(PAIRS)
    ss = _small(epochs=2, scheduled_sampling="linear", ss_k=1.0, ss_c=0.0).fit(PAIRS)
    sampled = _small(epochs=2, scheduled_sampling="inverse_sigmoid", ss_k=1.0).fit(PAIRS)
    for (n, a), (_, b), (_, c) in zip(tf.model_.named_parameters(), ss.model_.named_parameters(),
                                      sampled.model_.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)
    assert any(not np.array_equal(a.data, c.data) for a, c in zip(tf.model_.parameters(), sampled.model_.parameters()))


def test_estimator_contract():
    tr = Translator(hidden_size=7, attention="dot")
    assert tr.get_params()["hidden_size"] == 7 and not hasattr(tr, "model_")
    assert tr.set_params(hidden_size=9) is tr and tr.hidden_size == 9
    with pytest.raises(ValueError, match="invalid parameter 'hiden_size'"):
        tr.set_params(hiden_size=3)
    with pytest.raises(NotFittedError, match="not fitted"):
        tr.translate(["x"])
    with pytest.raises(HyperparameterError, match=r"scheduled_sampling \(--scheduled-sampling\) must be one of"):
        Translator(scheduled_sampling="cosine").fit(PAIRS)
    with pytest.raises(HyperparameterError, match=r"learning_rate \(--learning-rate\) must be > 0"):
        Translator(learning_rate=0).fit(PAIRS)


def test_sklearn_clone_keeps_every_parameter():
    from sklearn.base import clone
    tr = Translator(hidden_size=9, learning_rate=0.02, random_state=None, progress=False, max_vocab=40)
    twin = clone(tr)
    assert twin is not tr and twin.get_params(deep=True) == tr.get_params(deep=True)
    assert repr(twin) == repr(tr) and "learning_rate=0.02" in repr(tr)


def test_fit_refuses_a_model_too_big_for_memory_before_building_it():
    with pytest.raises(HyperparameterError, match=r"need about [\d,.]+ [GM]iB of memory .* is available"):
        _small(hidden_size=100_000_000).fit(PAIRS)


def test_crafted_model_file_is_refused_before_building(tmp_path):
    """A valid file whose configuration asks for hidden_size 10**6 while its arrays are tiny."""
    tr = _small(epochs=1).fit(PAIRS[:4])
    good = tmp_path / "good.npz"
    tr.save(good)
    config = {"params": dict(tr.get_params(), hidden_size=10 ** 6), "fitted": tr._fitted_config()}
    bad = tmp_path / "crafted.npz"
    save_model_file(str(bad), kind="translator", config=config, arrays=tr.model_.state_dict(), meta={})
    with pytest.raises(ModelFileError) as err:
        Translator.load(bad)
    msg = str(err.value)
    assert "configuration does not match the stored arrays" in msg and "\n" not in msg and len(msg) < 300
    assert Translator.load(good).hidden_size == 48


def test_parameter_shapes_name_every_array():
    for kw in (dict(), dict(attention="general", input_feeding=True, num_layers=2, cell="gru"),
               dict(attention="dot", bidirectional=False, bridge="zero", attention_size=5),
               dict(attention="bahdanau", attention_size=5, bidirectional=False)):
        tr = _small(epochs=1, hidden_size=6, embedding_size=4, **kw).fit(PAIRS[:3])
        got = {n: a.shape for n, a in tr.model_.state_dict().items()}
        assert tr._parameter_shapes(tr._fitted_config()) == got, kw


def test_checkpoint_loads_wherever_a_model_file_does(tmp_path):
    ck = tmp_path / "run.ckpt.npz"
    tr = _small(epochs=None, max_steps=3).fit(PAIRS, checkpoint_path=ck)
    for back in (Translator.load(ck), rnnkit.load(ck)):
        assert isinstance(back, Translator) and back.history_.steps == 3
        for n, a in tr.model_.state_dict().items():
            np.testing.assert_array_equal(back.model_.state_dict()[n], a, err_msg=n)


def test_resume_from_other_data_is_refused(tmp_path):
    ck = tmp_path / "run.ckpt.npz"
    _small(epochs=None, max_steps=2).fit(PAIRS, checkpoint_path=ck)
    with pytest.raises(ValueError, match="trained on other data"):
        _small(epochs=None, max_steps=4).fit(PAIRS[:-1] + [("il a faim !", "he is hungry !")],
                                             checkpoint_path=ck, resume=True)
    with pytest.raises(ValueError, match="trained with --hidden-size 48, not --hidden-size 40"):
        _small(epochs=None, max_steps=4, hidden_size=40).fit(PAIRS, checkpoint_path=ck, resume=True)


def test_character_level_model_learns_short_pairs():
    pairs = [("il est grand .", "he is tall ."), ("va !", "go !"), ("salut !", "hi !"), ("je suis là .", "i am here .")]
    tr = _small(tokens="char", epochs=150, batch_size=4).fit(pairs)
    assert tr.tgt_vocab_.itos[4:] and all(len(t) == 1 for t in tr.tgt_vocab_.itos[4:])
    assert [r[0].text for r in tr.translate([s for s, _ in pairs])] == [t for _, t in pairs]


def test_cosine_decay_anneals_over_the_epochs_and_resumes_exactly(tmp_path):
    from rnnkit.translate.data import batches_per_epoch, bucket_batches
    per_epoch = len(bucket_batches([[1]] * len(PAIRS), [[1]] * len(PAIRS), 10, np.random.default_rng(0)))
    assert batches_per_epoch(len(PAIRS), 10) == per_epoch == 3
    assert [batches_per_epoch(n, 4, pool=2) for n in (0, 1, 8, 9, 13)] == [0, 1, 2, 3, 4]
    tr = _small(epochs=4, lr_decay="cosine").fit(PAIRS)
    lrs = [lr for _, lr in tr.history_.lr]
    assert lrs[0] == pytest.approx(1e-2) and all(a > b for a, b in zip(lrs, lrs[1:]))
    T = 4 * per_epoch   # the schedule is CosineAnnealingLR to lr/20 over every step of the run
    assert lrs[-1] == pytest.approx(5e-4 + (1e-2 - 5e-4) * (1 + np.cos(np.pi * (T - 1) / T)) / 2)
    ck = str(tmp_path / "run.ckpt.npz")

    def interrupt(event, info):
        if event == "step" and info["step"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _small(lr_decay="cosine", epochs=4).fit(PAIRS, checkpoint_path=ck, callbacks=[interrupt])
    resumed = _small(lr_decay="cosine", epochs=4).fit(PAIRS, checkpoint_path=ck, resume=True)
    assert resumed.history_.lr == tr.history_.lr and resumed.history_.train == tr.history_.train
    with pytest.raises(HyperparameterError, match=r"lr_decay \(--lr-decay\) cosine needs --epochs, --max-steps or "
                                                  "--max-minutes"):
        _small(epochs=None, max_steps=None, max_minutes=None, lr_decay="cosine").fit(PAIRS)


def test_select_by_bleu_keeps_the_model_of_the_best_validation_bleu():
    # no checkpoint averaging: the kept model is the best validation's own (test_translate_levers covers it)
    tr = _small(epochs=6, bleu_sentences=8, select_by="bleu", average_checkpoints=0).fit(PAIRS[:22], PAIRS[22:])
    val = tr.history_.val
    bleus = [m["bleu"] for _, m in val]
    best = max(range(len(val)), key=lambda i: (bleus[i], -i))      # the first of the highest
    assert tr.history_.best_step == val[best][0]
    assert tr.evaluate(PAIRS[22:], with_loss=False)["bleu"] == pytest.approx(bleus[best])
    by_loss = _small(epochs=6, bleu_sentences=8, select_by="loss").fit(PAIRS[:22], PAIRS[22:])
    losses = [m["loss"] for _, m in by_loss.history_.val]
    assert by_loss.history_.best_val_loss == min(losses)
