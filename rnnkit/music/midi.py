"""Writing a piano roll out: a standard MIDI file (mido, the optional extra ``music``) and a PNG.

A roll (T, 88) becomes one track: a key that turns on at step t gets a
note-on, and a note-off when it turns off (or at the end); every step lasts
``step_ticks`` ticks at ``ticks_per_beat`` = 4 * ``step_ticks`` (a step is a
sixteenth note: for JSB's quarter-note steps pass ``steps_per_beat=1``).
Both files are written through :mod:`rnnkit.io.atomic`.
"""

from __future__ import annotations

import io

import numpy as np

from ..errors import RnnkitError
from ..io.atomic import atomic_write
from .data import KEYS, LOWEST_PITCH

__all__ = ["roll_to_midi_bytes", "write_midi", "save_roll_png", "MAX_STEPS_PER_BEAT", "MIN_TEMPO_BPM"]


STEP_TICKS = 120                       # ticks a time step
MAX_STEPS_PER_BEAT = 32767 // STEP_TICKS   # a MIDI header's ticks per beat is a 15-bit number: 273
MIN_TEMPO_BPM = 4                      # a set_tempo of 60e6 / bpm microseconds fits 24 bits above 3.58 bpm


def roll_to_midi_bytes(roll: np.ndarray, steps_per_beat: int = 1, tempo_bpm: float = 100.0,
                       velocity: int = 80) -> bytes:
    """The bytes of a type-0 MIDI file playing ``roll`` (T, 88)."""
    try:
        import mido
    except ImportError:  # pragma: no cover - depends on the environment
        raise RnnkitError("writing MIDI needs mido: pip install 'rnnkit[music]'") from None
    step_ticks = STEP_TICKS
    mid = mido.MidiFile(type=0, ticks_per_beat=step_ticks * steps_per_beat)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    padded = np.vstack([np.zeros((1, KEYS), np.int8), np.asarray(roll, np.int8), np.zeros((1, KEYS), np.int8)])
    change = np.diff(padded, axis=0)                                             # (T+1, 88): +1 on, -1 off
    last = 0
    for t in range(change.shape[0]):
        for k in np.flatnonzero(change[t] < 0):                                  # offs before ons at one tick
            track.append(mido.Message("note_off", note=LOWEST_PITCH + int(k), velocity=0, time=(t - last) * step_ticks))
            last = t
        for k in np.flatnonzero(change[t] > 0):
            track.append(mido.Message("note_on", note=LOWEST_PITCH + int(k), velocity=velocity,
                                      time=(t - last) * step_ticks))
            last = t
    track.append(mido.MetaMessage("end_of_track", time=0))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def write_midi(path, roll: np.ndarray, steps_per_beat: int = 1, tempo_bpm: float = 100.0) -> str:
    """Write ``roll`` as a MIDI file at ``path`` (atomically); returns the path."""
    data = roll_to_midi_bytes(roll, steps_per_beat, tempo_bpm)
    return atomic_write(path, lambda f: f.write(data), what="--midi")


def save_roll_png(path, roll: np.ndarray, title: str = "") -> str:
    """The roll as an image: time across, MIDI pitch up; written atomically."""
    from ..plotting import printable, require_pyplot, save_png
    plt = require_pyplot()
    roll = np.asarray(roll)
    fig, ax = plt.subplots(figsize=(min(12, 3 + roll.shape[0] / 40), 3.5))
    ax.imshow(roll.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
              extent=(0, roll.shape[0], LOWEST_PITCH - 0.5, LOWEST_PITCH + KEYS - 0.5))
    ax.set_xlabel("time step")
    ax.set_ylabel("MIDI pitch")
    if title:
        ax.set_title(printable(title), fontsize=10)
    return save_png(fig, path, what="--png")
