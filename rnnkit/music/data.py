r"""Polyphonic music as 88-key piano rolls: reading the standard files, checking them, the marginal baseline.

A piece is a binary piano roll :math:`v \in \{0, 1\}^{T \times 88}`; column k is
the piano key k, MIDI pitch :math:`21 + k` (A0 .. C8); :math:`v_{t,k} = 1` when
the key sounds at step t. Two file forms are read, both with the splits of
Boulanger-Lewandowski et al. (2012):

- MATLAB (``.mat``: JSB_Chorales, Nottingham, MuseData, Piano_midi): keys
  ``traindata``, ``validdata``, ``testdata``, each a 1 x N cell array of
  (T_i, 88) rolls (scipy, the optional extra ``music``);
- JSON (``.json``, e.g. jsb-chorales-quarter.json): ``{"train", "valid", "test"}``
  -> pieces -> steps -> the MIDI pitches sounding (an empty list is a rest).

The held-out splits are those of the files: validation and test pieces are
never trained on.

The marginal baseline treats every key as an independent coin with the
training frequency :math:`p_k` (add-one smoothed):

.. math::
    \mathrm{NLL} = -\frac{1}{M} \sum_{t} \sum_{k=1}^{88} [v_{t,k} \log p_k + (1 - v_{t,k}) \log(1 - p_k)]

over the M predicted steps (every step after the first of each piece, as the model predicts them).
"""

from __future__ import annotations

import json
import os
from typing import Dict, List

import numpy as np

from ..errors import DataError
from ..nn.xp import to_host
from ..io.inputs import read_bytes, read_text

__all__ = ["KEYS", "LOWEST_PITCH", "SPLITS", "read_rolls", "check_rolls", "marginal_baseline", "predicted_steps"]

KEYS, LOWEST_PITCH = 88, 21
SPLITS = ("train", "valid", "test")
_MAT_KEYS = {"train": "traindata", "valid": "validdata", "test": "testdata"}


def check_rolls(rolls, where: str) -> List[np.ndarray]:
    """Each roll as a (T, 88) uint8 array of 0/1 with T >= 2, or one DataError naming ``where`` and the piece."""
    out = []
    for i, r in enumerate(rolls):
        a = np.asarray(to_host(r))           # device arrays come to the host: the music model trains there
        if a.ndim != 2 or a.shape[1] != KEYS:
            raise DataError(f"{where}: piece {i} has shape {a.shape}; a piano roll is (time steps, {KEYS} keys)")
        if a.shape[0] < 2:
            raise DataError(f"{where}: piece {i} has {a.shape[0]} time step(s); a piece needs at least 2 "
                            "(the model predicts each step from the ones before)")
        if a.dtype.kind not in "biuf" or not np.isin(a, (0, 1)).all():
            raise DataError(f"{where}: piece {i} holds values other than 0 and 1; a piano roll marks each key "
                            "as sounding (1) or silent (0)")
        out.append(a.astype(np.uint8))
    if not out:
        raise DataError(f"{where}: no pieces")
    return out


def _read_mat(path: str) -> Dict[str, List[np.ndarray]]:
    try:
        import scipy.io
    except ImportError:  # pragma: no cover - depends on the environment
        raise DataError(f"{path}: reading .mat files needs scipy: pip install 'rnnkit[music]'") from None
    import io
    data = read_bytes(path, "DATAFILE")
    try:
        mat = scipy.io.loadmat(io.BytesIO(data))
    except Exception as e:        # scipy raises ValueError, TypeError, MatReadError ... for a damaged file
        raise DataError(f"{path}: not a readable MATLAB file ({type(e).__name__}: {e})") from None
    missing = [k for k in _MAT_KEYS.values() if k not in mat]
    if missing:
        raise DataError(f"{path}: the .mat file has no {', '.join(missing)}; expected the keys traindata, validdata "
                        "and testdata, each a cell array of (T, 88) piano rolls")
    out = {}
    for split, key in _MAT_KEYS.items():
        cell = np.asarray(mat[key])
        items = list(cell.ravel()) if cell.dtype == object else [cell]
        out[split] = check_rolls(items, f"{path} {key}")
    return out


def _roll_from_pitches(steps, where: str) -> np.ndarray:
    if not isinstance(steps, list):
        raise DataError(f"{where}: expected a list of time steps, got {type(steps).__name__}")
    roll = np.zeros((len(steps), KEYS), np.uint8)                               # (T, 88)
    for t, pitches in enumerate(steps):
        if not isinstance(pitches, list):
            raise DataError(f"{where}, step {t}: expected a list of MIDI pitches, got {type(pitches).__name__}")
        for p in pitches:
            # the range first: int() of an infinity (1e400, Infinity in JSON) or NaN raises
            if isinstance(p, bool) or not isinstance(p, (int, float)) \
                    or not LOWEST_PITCH <= p < LOWEST_PITCH + KEYS or p != int(p):
                raise DataError(f"{where}, step {t}: pitch {p!r} is not a piano key (MIDI 21 to 108)")
            roll[t, int(p) - LOWEST_PITCH] = 1
    return roll


def _read_json(path: str) -> Dict[str, List[np.ndarray]]:
    try:
        doc = json.loads(read_text(path, "DATAFILE", encoding_flag=None))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    except RecursionError:      # lists nested thousands deep: not a piano roll (pieces nest 3 deep)
        raise DataError(f"{path}: its JSON is nested too deeply for pieces (expected train/valid/test -> pieces "
                        "-> time steps -> MIDI pitches, 3 levels of lists)") from None
    if not isinstance(doc, dict) or any(s not in doc for s in SPLITS):
        raise DataError(f"{path}: expected a JSON object with the keys train, valid and test, each a list of "
                        "pieces (lists of time steps, each a list of MIDI pitches)")
    out = {}
    for split in SPLITS:
        pieces = doc[split]
        if not isinstance(pieces, list):
            raise DataError(f"{path} {split}: expected a list of pieces, got {type(pieces).__name__}")
        out[split] = check_rolls([_roll_from_pitches(p, f"{path} {split} piece {i}") for i, p in enumerate(pieces)],
                                 f"{path} {split}")
    return out


def read_rolls(path) -> Dict[str, List[np.ndarray]]:
    """``{"train", "valid", "test"}`` -> list of (T, 88) uint8 rolls, from a .mat or .json file."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".mat":
        return _read_mat(path)
    if ext == ".json":
        return _read_json(path)
    raise DataError(f"DATAFILE {path}: expected a .mat file (traindata/validdata/testdata) or a .json file "
                    f"(train/valid/test), got the extension {ext or '(none)'!r}")


def predicted_steps(rolls: List[np.ndarray]) -> int:
    """M: the steps a next-step model predicts (every step after the first of each piece)."""
    return int(sum(r.shape[0] - 1 for r in rolls))


def marginal_baseline(train: List[np.ndarray], rolls: List[np.ndarray]) -> float:
    """NLL per predicted step of the independent per-key Bernoulli fitted on ``train`` (module docstring)."""
    counts = np.sum([r.sum(axis=0, dtype=np.int64) for r in train], axis=0)    # (88,)
    frames = sum(r.shape[0] for r in train)
    p = (counts + 1.0) / (frames + 2.0)                                          # (88,) add-one smoothed
    on = np.sum([r[1:].sum(axis=0, dtype=np.int64) for r in rolls], axis=0)      # (88,) targets that sound
    M = predicted_steps(rolls)
    return float(-(on * np.log(p) + (M - on) * np.log1p(-p)).sum() / M)
