"""The music model's function API: what ``rnnkit music train|eval|sample`` call, keywords named like the flags.

::

    from rnnkit import music
    run = music.train("JSB_Chorales.mat", cell="gru", max_minutes=5, out="jsb-gru.npz")
    print(run.test, run.baseline)             # NLL per step of the model and of the per-key Bernoulli
    music.sample("jsb-gru.npz", length=128, midi="chorale.mid", png="chorale.png", random_state=1)

``train`` fits on the file's training pieces, picks parameters on its
validation pieces and reports the test pieces (the file's own splits), always
beside the marginal per-key Bernoulli baseline fitted on the training pieces.
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass
from typing import Dict, Optional, Union

import numpy as np

from ..errors import HyperparameterError
from ..estimator import prepare_run
from ..io.atomic import check_outputs
from ..train.history import History
from ..train.progress import say
from .data import SPLITS, marginal_baseline, read_rolls
from .estimator import MusicModel
from .midi import MAX_STEPS_PER_BEAT, MIN_TEMPO_BPM

__all__ = ["train", "evaluate", "sample", "load", "TrainResult"]

ModelLike = Union[str, os.PathLike, MusicModel]


@dataclass
class TrainResult:
    """The fitted model, its history, its file, and valid/test NLL per step beside the baselines."""

    model: MusicModel
    history: History
    model_path: str
    checkpoint_path: str
    valid: Dict[str, float]
    test: Dict[str, float]
    baseline: Dict[str, float]
    parameters: int
    train_seconds: float


def _settings(params: dict) -> dict:
    valid = set(inspect.signature(MusicModel.__init__).parameters) - {"self", "progress"}
    for name in params:
        if name not in valid:
            raise TypeError(f"train() got an unexpected keyword argument {name!r} (the settings are MusicModel's "
                            f"keywords: {', '.join(sorted(valid))})")
    return params


def train(datafile, *, out="music.npz", resume: bool = False, progress: bool = True, **params) -> TrainResult:
    """Train a :class:`MusicModel` on the training pieces of ``datafile`` (.mat or .json) and save it to ``out``."""
    est = MusicModel(progress=progress, **_settings(params))
    est._check_params()
    ckpt = prepare_run(out, resume=resume, kind=MusicModel.kind, inputs={"DATAFILE": datafile},
                       examples={"--out": "music.npz"})
    data = read_rolls(datafile)
    if est.validation_fraction is not None:       # the same split MusicModel.fit makes: the last training pieces
        n = math.ceil(est.validation_fraction * len(data["train"]))
        if n >= len(data["train"]):
            raise HyperparameterError(f"validation_fraction (--validation-fraction) {est.validation_fraction} leaves "
                                      f"no training piece out of {len(data['train'])}; choose a smaller fraction")
        data = dict(data, train=data["train"][:-n], valid=data["train"][-n:])
    baseline = {s: marginal_baseline(data["train"], data[s]) for s in ("valid", "test")}
    if progress:
        say(f"music: {os.fspath(datafile)}: " + ", ".join(f"{s} {len(data[s])} pieces" for s in SPLITS)
            + f"; marginal per-key baseline test NLL {baseline['test']:.3f}")
    est.fit(data["train"], valid=data["valid"], checkpoint_path=ckpt, resume=resume)
    test = est.score(data["test"], what=f"{os.fspath(datafile)} test")
    est.meta_.update(data_source=os.fspath(datafile), test=test, baseline=baseline)
    est.save(out)
    return TrainResult(est, est.history_, os.fspath(out), ckpt, est.meta_["valid"], test, baseline,
                       est.meta_["parameters"], est.history_.elapsed_s)


def load(path) -> MusicModel:
    """A fitted :class:`MusicModel` from a "music" model file or a training checkpoint (best parameters)."""
    return MusicModel.load(path)


def _estimator(model: ModelLike) -> MusicModel:
    return model if isinstance(model, MusicModel) else MusicModel.load(model)


def evaluate(model: ModelLike, datafile, *, split: str = "test") -> Dict[str, float]:
    """NLL per predicted step of ``split`` of ``datafile``, with the marginal baseline (from its training pieces)."""
    if split not in SPLITS:
        raise HyperparameterError(f"split (--split) must be one of {', '.join(SPLITS)}, got {split!r}")
    est = _estimator(model)
    data = read_rolls(datafile)
    out = est.score(data[split], what=f"{os.fspath(datafile)} {split}")
    out["baseline_nll"] = marginal_baseline(data["train"], data[split])
    out["pieces"] = len(data[split])
    return out


def sample(model: ModelLike, *, length: int = 128, midi: Optional[str] = "sample.mid",
           png: Optional[str] = None, random_state: Optional[int] = None, steps_per_beat: int = 1,
           tempo_bpm: float = 100.0) -> np.ndarray:
    """Draw a (length, 88) roll; write it as MIDI (``midi``) and as a piano-roll image (``png``).

    Every output is checked before the model is read. ``steps_per_beat`` is 1 for
    JSB's quarter-note steps (4 for sixteenth-note rolls).
    """
    check_outputs({"--midi": midi, "--png": png}, inputs={"MODEL": None if isinstance(model, MusicModel) else model},
                  examples={"--midi": "sample.mid", "--png": "sample.png"})
    if not (isinstance(steps_per_beat, int) and 1 <= steps_per_beat <= MAX_STEPS_PER_BEAT):
        raise HyperparameterError(f"steps_per_beat (--steps-per-beat) must be an integer in [1, {MAX_STEPS_PER_BEAT}] "
                                  f"(a MIDI file counts at most 32,767 ticks a beat), got {steps_per_beat!r}")
    if not (isinstance(tempo_bpm, (int, float)) and MIN_TEMPO_BPM <= tempo_bpm <= 1000):
        raise HyperparameterError(f"tempo_bpm (--tempo-bpm) must be in [{MIN_TEMPO_BPM:g}, 1000] (a MIDI beat lasts "
                                  f"at most 16.8 s), got {tempo_bpm!r}")
    est = _estimator(model)
    roll = est.sample(length, random_state)
    if midi is not None:
        from .midi import write_midi
        write_midi(midi, roll, steps_per_beat, tempo_bpm)
    if png is not None:
        from .midi import save_roll_png
        save_roll_png(png, roll, title=f"music sample: {est.cell} {est.num_layers}x{est._units()}")
    return roll
