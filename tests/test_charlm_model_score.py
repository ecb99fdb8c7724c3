"""benchmarks/charlm_model_score.py: the README's validation figure of a model file written by charlm train.

The 32-stream figure must be exactly what charlm_quality.py's validate() computes on the same split, the
one-stream figure what CharModel.score gives the validation text, and the history the model file's own;
an --out that is the model file is refused before anything is written."""

import json
import os
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import charlm_model_score  # noqa: E402

from rnnkit.charlm.data import split_text  # noqa: E402
from rnnkit.charlm.estimator import CharModel  # noqa: E402
from rnnkit.charlm.training import evaluate_ids  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("score")
    rng = np.random.default_rng(3)
    words = ["the", "king", "queen", "of", "and", "love", "speak", "night", "ROMEO:", "JULIET:"]
    text = " ".join(rng.choice(words, 2500)) + "\n"
    data = d / "text.txt"
    data.write_text(text)
    est = CharModel(cell="gru", hidden_size=24, num_layers=2, embedding_size=8, dropout=0.1, layer_norm=True,
                    zoneout=0.1, seq_len=20, batch_size=8, max_steps=30, validate_every=10, sample_length=0,
                    checkpoint_every=None).fit(text)
    model = d / "m.npz"
    est.save(model)
    return text, data, model


def test_scores_and_history_match_the_model_file(trained, tmp_path):
    text, data, model = trained
    out = tmp_path / "score.json"
    assert charlm_model_score.main([str(model), "--data", str(data), "--out", str(out), "--note", "cmd"]) == 0
    res = json.loads(out.read_text())
    est = CharModel.load(model)
    _, valid_text, _ = split_text(text, 0.1)
    ids = est.vocab_.encode(valid_text)
    assert res["valid_chars"] == len(valid_text)
    assert res["streams32"] == pytest.approx(evaluate_ids(est.model_, ids, batch=32, seq_len=100)["loss"], rel=1e-12)
    assert res["one_stream"] == pytest.approx(est.score(valid_text)["loss"], rel=1e-6)
    assert res["streams32"] != pytest.approx(res["one_stream"], rel=1e-9)     # 32 cold starts cost something
    assert 0.5 < res["one_stream"] < np.log(len(est.vocab_))                  # learned something, below uniform
    assert res["history"]["steps"] == est.history_.steps == 30
    assert [tuple(v) for v in res["history"]["val_loss"]] == [tuple(v) for v in est.history_.val_loss]
    assert res["params"]["layer_norm"] is True and res["params"]["zoneout"] == 0.1 and res["note"] == "cmd"
    kept = res["kept"]                                      # the file's own record of which parameters it holds
    assert kept["averaging"] == est.meta_["averaging"] and kept["averaging"]["k"] == 5
    assert kept["saved_step"] == est.meta_["saved_step"] and kept["valid"] == est.meta_["valid"]


def test_out_naming_the_model_or_the_data_is_refused(trained, capsys):
    _, data, model = trained
    before = model.read_bytes()
    for out in (model, data):
        with pytest.raises(SystemExit) as e:
            charlm_model_score.main([str(model), "--data", str(data), "--out", str(out)])
        assert e.value.code == 2
        assert "is also the input" in capsys.readouterr().err
    assert model.read_bytes() == before
