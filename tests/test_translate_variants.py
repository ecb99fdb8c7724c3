"""The recurrent variants in the translator: layer norm / peepholes in both stacks, regularisers in the encoder."""

import numpy as np
import pytest

from rnnkit.errors import HyperparameterError
from rnnkit.translate.translator import Translator

pytestmark = pytest.mark.usefixtures("one_blas_thread")

PAIRS = [("je suis fatigué .", "i am tired ."), ("il est grand .", "he is tall ."),
         ("elle est petite .", "she is small ."), ("nous sommes prêts .", "we are ready ."),
         ("ils sont ici .", "they are here ."), ("tu es en retard .", "you are late .")]
VARIANTS = [dict(cell="lstm", peephole=True, variational_dropout=0.2, weight_drop=0.2, zoneout=0.1),
            dict(cell="gru", layer_norm=True, zoneout=0.1, attention="general", input_feeding=True, num_layers=2),
            dict(cell="lstm", layer_norm=True, attention="general")]


def _small(**kw):
    params = dict(embedding_size=8, hidden_size=12, batch_size=3, learning_rate=1e-2, dropout=0.0, epochs=2,
                  bleu_sentences=0, random_state=0, progress=False)
    params.update(kw)
    return Translator(**params)


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_variant_translator_trains_saves_and_rebuilds_exactly(kw, tmp_path):
    tr = _small(**kw).fit(PAIRS)
    enc, dec = tr.model_.encoder.rnn, tr.model_.decoder.rnn
    for name in ("layer_norm", "peephole"):
        assert getattr(enc, name) == getattr(dec, name) == kw.get(name, False)
    for name in ("variational_dropout", "weight_drop", "zoneout"):
        assert getattr(enc, name) == kw.get(name, 0.0) and getattr(dec, name) == 0.0
    got = {n: a.shape for n, a in tr.model_.state_dict().items()}
    assert tr._parameter_shapes(tr._fitted_config()) == got
    back = Translator.load(tr.save(str(tmp_path / "m.npz")))
    assert back.get_params() == tr.get_params()
    a = [r[0].text for r in tr.translate([s for s, _ in PAIRS], beam=2)]
    assert a == [r[0].text for r in back.translate([s for s, _ in PAIRS], beam=2)]


@pytest.mark.parametrize("kw,flag", [(dict(cell="gru", peephole=True), "--peephole"),
                                     (dict(layer_norm=True, peephole=True), "--peephole"),
                                     (dict(zoneout=1.0), "--zoneout"), (dict(weight_drop=-1), "--weight-drop")])
def test_bad_variant_settings_name_the_flag(kw, flag):
    with pytest.raises(HyperparameterError, match=flag):
        _small(**kw).fit(PAIRS)
