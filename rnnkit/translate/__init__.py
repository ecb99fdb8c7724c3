"""Sequence-to-sequence translation with attention (issue 6).

- :mod:`.data`: pairs files, normalisation, tokens, vocabularies, splits, bucketed batches
- :mod:`.encoder`, :mod:`.decoder`, :mod:`.model`: Seq2Seq with Bahdanau or Luong attention
  (the attention layers themselves are :mod:`rnnkit.nn.attention`)
- :mod:`.sampling`: teacher forcing and scheduled sampling
- :mod:`.decode`: greedy and beam search
- :mod:`.metrics`: BLEU and chrF (sacrebleu); :mod:`.plots`: attention heatmaps
- :mod:`.default_task`: numbers in English words -> French words (num2words)
- :mod:`.translator`: the Translator estimator; :mod:`.api`: train / translate / evaluate / load
- :mod:`.cli`: ``rnnkit translate``
"""

from .api import evaluate, load, train, translate
from .model import Seq2Seq
from .translator import Translation, Translator

__all__ = ["Translator", "Translation", "Seq2Seq", "train", "translate", "evaluate", "load"]
