"""Character-level language model (issue 4): train on a text, sample, beam search, evaluate.

:class:`CharModel` is the estimator (``fit(text)``, ``sample``, ``score``,
``save`` / ``CharModel.load``); the functions ``train``, ``sample``,
``evaluate`` are what ``rnnkit charlm train|sample|eval`` call, with the flags
as keyword arguments. The building blocks live in ``data`` (vocabulary, splits,
stream batching), ``model`` (:class:`CharLM`, the network), ``training`` (the
TBPTT step and evaluation), ``generate`` (sampling and beam search) and
``corpus`` (the embedded default text).
"""

from .api import TrainResult, evaluate, load, sample, sample_stream, save, train
from .data import Vocab
from .estimator import CharModel
from .generate import beam_search
from .model import CharLM

__all__ = ["CharModel", "train", "sample", "sample_stream", "evaluate", "load", "save", "beam_search",
           "TrainResult", "CharLM", "Vocab"]
