"""Polyphonic music modelling (issue 13): 88-key piano rolls, one sigmoid per key, Chung et al. 2014's setting.

:class:`MusicModel` is the estimator; ``train``, ``evaluate``, ``sample`` are what
``rnnkit music train|eval|sample`` call. ``data`` reads the .mat and .json forms
and gives the marginal per-key baseline; ``model`` is the network; ``midi``
writes MIDI files and piano-roll images.
"""

from .api import TrainResult, evaluate, load, sample, train
from .data import marginal_baseline, read_rolls
from .estimator import MusicModel
from .model import MusicNet

__all__ = ["MusicModel", "MusicNet", "train", "evaluate", "sample", "load", "TrainResult", "read_rolls",
           "marginal_baseline"]
