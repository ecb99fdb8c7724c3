"""``rnnkit music train|eval|sample``: a thin shell over :mod:`rnnkit.music.api`.

The training flags are generated from :class:`~rnnkit.music.estimator.MusicModel`'s
keywords and docstring (:mod:`rnnkit.cli.builder`).
"""

from __future__ import annotations

from functools import partial
from typing import List

from ..cli.builder import (UNSET_BUDGET, add_estimator_flags, add_output_flags, command, estimator_kwargs,
                           subcommands)
from ..train.history import trained_line
from .estimator import MusicModel

__all__ = ["register"]


def _train(args, names: List[str]) -> int:
    from . import api
    run = api.train(args.datafile, out=args.out, resume=args.resume, progress=args.progress,
                    **estimator_kwargs(args, names))
    h = run.history
    print(f"{trained_line(h.steps, h.elapsed_s, h.stop_reason)}; "
          f"{run.model.cell} {run.model.num_layers}x{run.model._units()}, {run.parameters:,} parameters")
    print(f"{'':<11} {'model':>8} {'marginal per-key baseline':>26}   (NLL per time step, nats, summed over 88 keys)")
    for name, m in (("validation", run.valid), ("test", run.test)):
        print(f"{name:<11} {m['nll']:>8.3f} {run.baseline['valid' if name == 'validation' else 'test']:>26.3f}")
    print(f"model: {run.model_path}  (checkpoint: {run.checkpoint_path})")
    return 0


def _eval(args) -> int:
    from . import api
    m = api.evaluate(args.model, args.datafile, split=args.split)
    print(f"{args.datafile} {args.split}: {m['pieces']} pieces, {m['steps']:,} predicted steps\n"
          f"NLL per time step {m['nll']:.3f} nats (marginal per-key baseline {m['baseline_nll']:.3f})")
    return 0


def _sample(args) -> int:
    from . import api
    roll = api.sample(args.model, length=args.length, midi=args.midi, png=args.png, random_state=args.random_state,
                      steps_per_beat=args.steps_per_beat, tempo_bpm=args.tempo_bpm)
    print(f"sampled {roll.shape[0]} steps, {int(roll.sum()):,} sounding key-steps "
          f"({roll.sum(axis=1).mean():.2f} keys per step)")
    for what, path in (("MIDI", args.midi), ("piano roll", args.png)):
        if path is not None:
            print(f"{what}: {path}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("music", help="polyphonic music (88-key piano rolls): train, eval, sample",
                              description="Polyphonic music modelling on 88-key piano rolls (JSB Chorales, "
                                          "Nottingham, MuseData, Piano-midi.de .mat files, or JSON): one sigmoid "
                                          "per key, NLL per time step summed over keys, beside the marginal "
                                          "per-key Bernoulli baseline.")
    sub = subcommands(p, "music_command")
    t = command(sub, "train", help="train on the training pieces of a .mat or .json file, report valid/test NLL")
    t.add_argument("datafile", metavar="DATAFILE",
                   help=".mat (traindata/validdata/testdata: cell arrays of T x 88 piano rolls) or .json "
                        "({\"train\": [...], \"valid\": [...], \"test\": [...]}: each a list of pieces, a piece a "
                        "list of time steps, a step a list of the MIDI pitches 21-108 sounding, [] for a rest)")
    add_output_flags(t, out="music.npz", out_help="the model file; the checkpoint (NAME.ckpt.npz) goes beside it",
                     resume=True, progress=True)
    names = add_estimator_flags(t, MusicModel, exclude=("progress",), title="model and training",
                                defaults=UNSET_BUDGET)
    t.set_defaults(func=partial(_train, names=names))

    e = command(sub, "eval", help="NLL per time step of a model on one split of a data file", func=_eval)
    e.add_argument("model", metavar="MODEL", help="model file, or the checkpoint of a training run")
    e.add_argument("datafile", metavar="DATAFILE", help=".mat or .json data file")
    e.add_argument("--split", default="test", help="train, valid or test")

    s = command(sub, "sample", help="draw a new piece: a MIDI file and a piano-roll PNG", func=_sample)
    s.add_argument("model", metavar="MODEL", help="model file, or the checkpoint of a training run")
    s.add_argument("--length", type=int, default=128, help="time steps to draw")
    s.add_argument("--midi", default="sample.mid", metavar="MID", help="MIDI file to write")
    s.add_argument("--png", default=None, metavar="PNG", help="piano-roll image to write (default: none)")
    s.add_argument("--steps-per-beat", type=int, default=1, help="time steps per beat (JSB: 1, a quarter note)")
    s.add_argument("--tempo-bpm", type=float, default=100.0, help="beats per minute of the MIDI file")
    add_estimator_flags(s, MusicModel, ["random_state"], defaults={"random_state": None},
                        helps={"random_state": "seed of the sample (default: none = fresh entropy)"})
