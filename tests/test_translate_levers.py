"""Issue 15's last levers: weight tying, ensembles and checkpoint averaging.

Tying: central finite differences in float64 through the tied model (random upstream gradients, T >= 3,
non-zero biases), the shared matrix's gradient being the sum of its two uses, and the tie surviving a
model file. Ensembles: one model, and two copies of one model, decode exactly as that model (greedy and
beam); two different models follow the mean of their log-probabilities. Averaging: the mean of identical
snapshots is the identity, the K best are kept, and a run with averaging trains exactly as one without.
"""

import numpy as np
import pytest

from helpers import assert_grad_close, numeric_grad
from rnnkit.cli.main import main
from rnnkit.errors import ModelFileError
from rnnkit.io.modelfile import load_model_file, save_model_file
from rnnkit.nn.losses import log_softmax
from rnnkit.train.averaging import CheckpointAverager, average_states
from rnnkit.translate.data import PAD, make_batch
from rnnkit.translate.decode import beam_search, greedy
from rnnkit.translate.ensemble import Ensemble, EnsembleModel
from rnnkit.translate.model import Seq2Seq
from rnnkit.translate.translator import Translator

pytestmark = pytest.mark.usefixtures("one_blas_thread")

V_SRC, V_TGT = 9, 8
SRC = [[4, 5, 6, 7], [8, 4], [5, 6, 7]]
TGT = [[4, 5, 6], [7, 4, 5, 6], [5, 4]]          # T = 5 decoder steps with <eos>

TIED = {
    "general-bi-projected": dict(attention="general", bidirectional=True, embedding_size=5, hidden_size=4),
    "general-feeding-projected": dict(attention="general", bidirectional=True, input_feeding=True,
                                      embedding_size=5, hidden_size=4),
    "dot-square-no-projection": dict(attention="dot", bidirectional=False, embedding_size=4, hidden_size=4),
    "bahdanau-gru-projected": dict(cell="gru", attention="bahdanau", bidirectional=True, embedding_size=5,
                                   hidden_size=4),
}


def _model(cfg, seed=0, **kw):
    m = Seq2Seq(V_SRC, V_TGT, dtype=np.float64, rng=seed, **dict(cfg, **kw))
    rng = np.random.default_rng(seed + 100)
    for name, p in m.named_parameters():
        if "bias" in name:
            p.data[...] = rng.uniform(-0.5, 0.5, p.shape)
    return m


def _upstream(batch, seed):
    """A random upstream gradient on the real target positions (padding carries none, as in the loss)."""
    G = np.random.default_rng(seed).standard_normal(batch.tgt_out.shape + (V_TGT,))   # (T, N, V)
    return G * (batch.tgt_out != PAD)[..., None]


def _objective(model, batch, G):
    logits = model.forward(batch.src, batch.src_len, batch.tgt_in)[0]
    return float((logits * G).sum())


@pytest.mark.parametrize("name", sorted(TIED))
def test_tied_model_gradient_by_finite_differences(name):
    model = _model(TIED[name], tie_embeddings=True)
    dec = model.decoder
    assert dec.out.weight is dec.embedding.weight
    assert ("out_proj" in dec._modules) == (dec.out.in_features != (dec.hidden_size if dec.luong else
                                                                      dec.hidden_size + dec.memory_size)
                                            or "projected" in name)
    batch = make_batch(SRC, TGT, [0, 1, 2])
    G = _upstream(batch, 3)
    model.zero_grad()
    logits, _, cache = model.forward(batch.src, batch.src_len, batch.tgt_in)
    model.backward(G, cache)
    f = lambda: _objective(model, batch, G)
    rng = np.random.default_rng(1)
    for pname, p in model.named_parameters():
        # the shared matrix entirely (every row: input lookups and output logits); others sampled
        idx = np.arange(p.data.size) if p is dec.embedding.weight else rng.choice(p.data.size, min(6, p.data.size),
                                                                                     replace=False)
        assert_grad_close(p.grad, numeric_grad(f, p.data, indices=idx), pname, rtol=1e-5, atol=1e-8)


def test_shared_matrix_gets_both_gradients():
    """Tied (E = H, no projection): the shared gradient is the untied model's embedding + output gradients."""
    cfg = TIED["dot-square-no-projection"]
    tied, untied = _model(cfg, tie_embeddings=True), _model(cfg)
    untied.load_state_dict(tied.state_dict())        # out.weight := the embedding, now two separate arrays
    batch = make_batch(SRC, TGT, [0, 1, 2])
    G = _upstream(batch, 4)
    for m in (tied, untied):
        m.zero_grad()
        m.backward(G, m.forward(batch.src, batch.src_len, batch.tgt_in)[2])
    np.testing.assert_allclose(untied.forward(batch.src, batch.src_len, batch.tgt_in)[0],
                               tied.forward(batch.src, batch.src_len, batch.tgt_in)[0], rtol=1e-12)
    d_emb, d_out = untied.decoder.embedding.weight.grad, untied.decoder.out.weight.grad
    assert np.abs(d_emb).sum() > 0 and np.abs(d_out).sum() > 0
    np.testing.assert_allclose(tied.decoder.embedding.weight.grad, d_emb + d_out, rtol=1e-12, atol=1e-14)
    assert len(tied.parameters()) == len(untied.parameters()) - 1     # the optimiser sees one matrix


PAIRS = [(f"le {w} est {c}", f"the {w} is {c}") for w in ("chat", "chien", "ciel", "livre", "pain", "train")
         for c in ("bleu", "grand", "ici", "froid")]


def _tiny(**kw):
    base = dict(embedding_size=8, hidden_size=12, epochs=4, batch_size=8, bleu_sentences=4, dropout=0.1,
                learning_rate=0.01, random_state=0)
    base.update(kw)
    return Translator(**base)


def test_tie_is_recorded_and_rebuilt_on_load_and_an_edited_file_is_refused(tmp_path):
    tr = _tiny(tie_embeddings=True, hidden_size=8).fit(PAIRS[:20], PAIRS[20:])   # hidden = embedding: no P
    path = tr.save(tmp_path / "tied.npz")
    back = Translator.load(path)
    assert back.tie_embeddings and back.model_.decoder.out.weight is back.model_.decoder.embedding.weight
    assert "out_proj" not in back.model_.decoder._modules
    assert [t.text for t, in back.translate(["le chat est ici"])] == [t.text for t, in tr.translate(["le chat est ici"])]
    mf = load_model_file(path)
    arrays = dict(mf.arrays)
    arrays["decoder.out.weight"] = arrays["decoder.out.weight"] + 1.0
    save_model_file(tmp_path / "edited.npz", kind=mf.kind, config=mf.config, arrays=arrays, meta=mf.meta)
    with pytest.raises(ModelFileError, match="differs from decoder.embedding.weight"):
        Translator.load(tmp_path / "edited.npz")


# -- ensembles ------------------------------------------------------------------
ENS_CFG = dict(attention="general", bidirectional=True, embedding_size=5, hidden_size=6)


def _f32(seed):
    m = Seq2Seq(V_SRC, V_TGT, dtype=np.float32, rng=seed, **ENS_CFG)
    for p in m.parameters():                          # sharper distributions: long, varied hypotheses
        p.data *= 3
    return m


def _same(a, b, atol=1e-5):
    assert [h.tokens for h in a] == [h.tokens for h in b]
    np.testing.assert_allclose([h.log_prob for h in a], [h.log_prob for h in b], rtol=1e-5, atol=atol)
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5, atol=atol)


@pytest.mark.parametrize("copies", [1, 2])
def test_ensemble_of_one_model_or_of_copies_decodes_as_that_model(copies):
    model = _f32(1)
    batch = make_batch(SRC, None, [0, 1, 2])
    ens = EnsembleModel([model] + [_f32(1) for _ in range(copies - 1)])
    _same(greedy(ens, batch.src, batch.src_len, 8), greedy(model, batch.src, batch.src_len, 8))
    for alpha in (0.0, 0.6):
        got = beam_search(ens, batch.src, batch.src_len, 3, 3, alpha, 8)
        want = beam_search(model, batch.src, batch.src_len, 3, 3, alpha, 8)
        for g, w in zip(got, want):
            _same(g, w)


def test_ensemble_of_two_models_follows_their_mean_log_probabilities():
    a, b = _f32(1), _f32(2)
    batch = make_batch(SRC, None, [0, 1, 2])
    hyps = greedy(EnsembleModel([a, b]), batch.src, batch.src_len, 6)
    # by hand: feed both models the ensemble's tokens and take the argmax of the mean log-probabilities
    mems = [m.encode(batch.src, batch.src_len) for m in (a, b)]
    states = [s for _, s, _ in mems]
    tokens = np.full(3, 1)
    for t in range(3):
        logps = []
        for i, m in enumerate((a, b)):
            out, _, states[i], _ = m.decoder.step(tokens, states[i], mems[i][0], need_cache=False)
            logps.append(log_softmax(m.decoder.logits(out).astype(np.float64)))
        tokens = np.mean(logps, axis=0).argmax(axis=1)
        for n in range(3):
            if len(hyps[n].tokens) > t:
                assert hyps[n].tokens[t] == tokens[n]
    single = [greedy(m, batch.src, batch.src_len, 6) for m in (a, b)]
    assert [h.tokens for h in hyps] != [h.tokens for h in single[0]] or \
        [h.tokens for h in hyps] != [h.tokens for h in single[1]]


def test_ensemble_refuses_other_vocabularies_naming_the_files():
    a = _tiny().fit(PAIRS[:20], PAIRS[20:])
    b = _tiny().fit(PAIRS[4:24], PAIRS[:4])          # other training pairs: other vocabularies
    with pytest.raises(ModelFileError, match=r"^b\.npz and a\.npz have different (source|target) vocabular"):
        Ensemble([a, b], names=["a.npz", "b.npz"])
    same = Ensemble([a, _tiny(random_state=1).fit(PAIRS[:20], PAIRS[20:])])
    r = same.evaluate(PAIRS[20:], beam=2)
    assert set(r) >= {"bleu", "chrf", "exact"} and "loss" not in r


# -- checkpoint averaging -----------------------------------------------------------
def test_average_of_identical_snapshots_is_the_identity_and_of_two_the_mean():
    rng = np.random.default_rng(0)
    s = {"w": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    avg = average_states([s, {k: v.copy() for k, v in s.items()}, s])
    for k in s:
        assert avg[k].dtype == np.float32 and np.array_equal(avg[k], s[k])
    t = {k: v + 2.0 for k, v in s.items()}
    np.testing.assert_allclose(average_states([s, t])["w"], s["w"] + 1.0, rtol=1e-6)
    with pytest.raises(ValueError):
        average_states([s, {"w": s["w"]}])


class _Net:
    def __init__(self):
        self.value = 0.0

    def state_dict(self):
        return {"w": np.array([self.value])}


@pytest.mark.parametrize("maximize,expect", [(True, [5, 3, 4]), (False, [1, 2, 7])])
def test_averager_keeps_the_k_best_validations(maximize, expect):
    net, av = _Net(), CheckpointAverager(3, monitor="bleu", maximize=maximize)
    for step, bleu in enumerate([10.0, 12.0, 30.0, 25.0, 31.0, float("nan"), 12.0], start=1):
        net.value = float(step)
        av("step", {"step": step, "model": net})             # other events are ignored
        av("validate", {"step": step, "model": net, "metrics": {"bleu": bleu, "loss": 1.0}})
    assert av.steps == expect
    assert av.average()["w"][0] == pytest.approx(np.mean(expect))


def test_averaging_does_not_change_training():
    plain = _tiny(epochs=5).fit(PAIRS[:20], PAIRS[20:])
    averaged = _tiny(epochs=5, average_checkpoints=3).fit(PAIRS[:20], PAIRS[20:])
    assert [e for e in averaged.history_.train] == [e for e in plain.history_.train]
    assert averaged.history_.val == plain.history_.val and averaged.history_.best_step == plain.history_.best_step
    info = averaged.averaging_
    assert len(info["steps"]) == 3 and plain.history_.best_step in info["steps"] and info["kept"] in ("best", "averaged")
    best_state = plain.model_.state_dict()
    kept_best = averaged.unkept_state_ if info["kept"] == "averaged" else averaged.model_.state_dict()
    for k, v in best_state.items():
        assert np.array_equal(kept_best[k], v)          # the best single model is the plain run's model
    # kept when better on BLEU, or level on BLEU with a lower loss
    better = info["averaged"]["bleu"] > info["best"]["bleu"] or (
        info["averaged"]["bleu"] == info["best"]["bleu"] and info["averaged"]["loss"] < info["best"]["loss"])
    assert better == (info["kept"] == "averaged")


# -- the command line ------------------------------------------------------------
@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("levers")
    pairs = d / "pairs.tsv"
    pairs.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS), encoding="utf-8")
    small = ["--embedding-size", "8", "--hidden-size", "12", "--batch-size", "8", "--epochs", "3",
             "--bleu-sentences", "4", "--no-progress", "--test-fraction", "0.2"]
    assert main(["translate", "train", str(pairs), "--out", str(d / "a.npz")] + small) == 0
    assert main(["translate", "train", str(pairs), "--out", str(d / "b.npz"), "--tie-embeddings",
                 "--random-state", "1", "--average-checkpoints", "2"] + small) == 0
    other = d / "other.tsv"
    other.write_text("".join(f"{s} x\t{t} y\n" for s, t in PAIRS), encoding="utf-8")
    assert main(["translate", "train", str(other), "--out", str(d / "c.npz")] + small) == 0
    return d, pairs


def test_cli_ensemble_eval_and_translate(two_models, capsys):
    d, pairs = two_models
    capsys.readouterr()
    assert main(["translate", "eval", str(d / "a.npz"), str(pairs), "--beam", "2", "--ensemble", str(d / "b.npz")]) == 0
    out = capsys.readouterr().out
    assert "an ensemble of 2 models: BLEU" in out and "loss" not in out
    assert main(["translate", str(d / "a.npz"), "le chat est ici", "--ensemble", str(d / "b.npz"),
                 str(d / "a.npz")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["translate", str(d / "a.npz"), "--ensemble", str(d / "b.npz"), "--", "le chat est ici"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


@pytest.mark.parametrize("argv,message", [
    (["eval", "{d}/a.npz", "{pairs}", "--ensemble", "{d}/c.npz"], "c.npz and {d}/a.npz have different"),
    (["{d}/a.npz", "le chat", "--ensemble", "{d}/c.npz"], "c.npz and {d}/a.npz have different"),
    (["eval", "{d}/a.npz", "{pairs}", "--ensemble", "{d}/missing.npz"], "missing.npz"),
    (["{d}/a.npz", "--ensemble", "{d}/b.npz", "le chat"],          # the sentence swallowed by --ensemble
     "--ensemble le chat: no such model file; if that is the sentence, write it before --ensemble"),
    (["train", "{pairs}", "--average-checkpoints", "-1"], "--average-checkpoints"),
    (["train", "{pairs}", "--tie-embeddings", "maybe"], ""),
])
def test_cli_errors_exit_2_in_one_line(two_models, capsys, argv, message):
    d, pairs = two_models
    argv = [a.format(d=d, pairs=pairs) for a in argv]
    capsys.readouterr()
    code = main(["translate"] + argv + ["--out", str(d / "never.npz")] * (argv[0] == "train"))
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert message.format(d=d) in err
    assert not (d / "never.npz").exists()


def test_cli_train_reports_the_averaging(two_models, capsys):
    d, pairs = two_models
    capsys.readouterr()
    assert main(["translate", "train", str(pairs), "--out", str(d / "avg.npz"), "--embedding-size", "8",
                 "--hidden-size", "12", "--batch-size", "8", "--epochs", "3", "--bleu-sentences", "4",
                 "--no-progress", "--average-checkpoints", "2", "--select-by", "loss"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint averaging: the mean of the 2 best validations (steps " in out
    assert "validation loss" in out and ("kept the average" in out or "kept the best single model" in out)


def test_a_file_from_before_tying_loads_untied(tmp_path):
    """Files written before tie_embeddings existed (now on by default) record no such setting: read as untied."""
    tr = _tiny(tie_embeddings=False, average_checkpoints=0).fit(PAIRS[:20], PAIRS[20:])
    mf = load_model_file(tr.save(tmp_path / "new.npz"))
    config = {"params": {k: v for k, v in mf.config["params"].items()
                         if k not in ("tie_embeddings", "average_checkpoints")}, "fitted": mf.config["fitted"]}
    save_model_file(tmp_path / "old.npz", kind=mf.kind, config=config, arrays=mf.arrays, meta=mf.meta)
    old = Translator.load(tmp_path / "old.npz")
    assert old.tie_embeddings is False and old.average_checkpoints == 0
    assert old.model_.decoder.out.weight is not old.model_.decoder.embedding.weight
    assert [t.text for t, in old.translate(["le chat est ici"])] == [t.text for t, in tr.translate(["le chat est ici"])]


def test_input_feeding_is_on_by_default_for_luong_attention_only():
    from rnnkit.errors import HyperparameterError
    from rnnkit.translate.shapes import feeds, seq2seq_shapes
    assert feeds(Translator()) is True                                  # general attention
    assert feeds(Translator(attention="bahdanau")) is False
    assert feeds(Translator(input_feeding=False)) is False
    E, H = 8, 12
    fed = seq2seq_shapes(Translator(embedding_size=E, hidden_size=H), 20, 30)
    plain = seq2seq_shapes(Translator(embedding_size=E, hidden_size=H, input_feeding=False), 20, 30)
    assert fed["decoder.rnn.weight_ih_l0"] == (4 * H, E + H)            # [embedding | attentional vector]
    assert plain["decoder.rnn.weight_ih_l0"] == (4 * H, E)
    Translator(attention="bahdanau")._check_params()                    # the default is not an error there
    with pytest.raises(HyperparameterError, match="--input-feeding"):
        Translator(attention="bahdanau", input_feeding=True)._check_params()
