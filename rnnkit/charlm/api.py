"""The character model's function API: thin wrappers over :class:`~rnnkit.charlm.estimator.CharModel`.

The ``rnnkit charlm train|sample|eval`` commands call exactly these, and their
keyword names are the flags (``hidden_size`` is ``--hidden-size``)::

    from rnnkit import charlm
    run = charlm.train("input.txt", hidden_size=256, num_layers=2, seq_len=100, batch_size=32, max_minutes=10)
    print(charlm.sample(run.model_path, prime="ROMEO:", length=500, temperature=0.8, random_state=1))
    print(charlm.evaluate(run.model_path, "input.txt"))    # loss, bits/char, perplexity

``train`` writes three files: the model (``out``, kind "charlm"), a checkpoint
beside it (``<name>.ckpt.npz``, written atomically every ``checkpoint_every``
steps, at the end and on Ctrl-C or SIGTERM; ``resume=True`` continues from it)
and the loss curve (``<name>.loss.png``, or ``plot``). Every output is checked
before the text is read, and written atomically.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Union

from ..errors import HyperparameterError, RnnkitError
from ..estimator import beside, prepare_run
from ..io.inputs import check_input
from ..train.history import History
from .corpus import DEFAULT_CORPUS_NAME, default_corpus
from .data import read_text
from ..train.progress import say
from .estimator import CharModel, check_score_args

__all__ = ["train", "sample", "sample_stream", "evaluate", "load", "save", "TrainResult", "DEFAULTS",
           "QUICK_DEFAULTS", "plot_path_beside"]

# What `num_layers`, `learning_rate` and the stopping rule mean when left as None. With a TEXTFILE:
# char-rnn's classic 2x256 model for 10 epochs. With the embedded corpus, a demo sized to finish in a
# few minutes on two CPU cores: one layer and a higher learning rate reach a lower validation loss in
# that time (measured at equal steps: 1.36 vs 1.62 nats/char after 300 steps at lr 5e-3 vs 2e-3,
# 1.51 for 2x128 at 5e-3; 2x256 takes about 2.5x longer per step).
DEFAULTS = {"num_layers": 2, "learning_rate": 2e-3, "epochs": 10}
QUICK_DEFAULTS = {"num_layers": 1, "learning_rate": 5e-3, "max_minutes": 2.5}
# the names of rnnkit 0.1's charlm functions, for a helpful TypeError
RENAMED = {"hidden": "hidden_size", "layers": "num_layers", "batch": "batch_size", "lr": "learning_rate",
           "seed": "random_state", "embedding": "embedding_size", "valid_fraction": "validation_fraction"}

ModelLike = Union[str, os.PathLike, CharModel]


@dataclass
class TrainResult:
    """What :func:`train` produced: the fitted estimator, its history, the files and the final metrics."""

    model: CharModel
    history: History
    model_path: str
    checkpoint_path: str
    plot_path: Optional[str]
    valid: Optional[Dict[str, float]]
    test: Optional[Dict[str, float]]
    sample: str


def plot_path_beside(out) -> str:
    """The loss curve's default path for model file ``out``: ``run.npz`` -> ``run.loss.png``."""
    return beside(out, ".loss.png")


def _settings(textfile, params: dict) -> dict:
    """CharModel keywords from ``params``, with the presets for those left as None."""
    valid = set(inspect.signature(CharModel.__init__).parameters) - {"self", "progress"}
    for name in params:
        if name not in valid:
            hint = f"; it is now called {RENAMED[name]}" if name in RENAMED else ""
            raise TypeError(f"train() got an unexpected keyword argument {name!r}{hint} "
                            f"(the settings are CharModel's keywords: {', '.join(sorted(valid))})")
    preset = QUICK_DEFAULTS if textfile is None else DEFAULTS
    out = dict(params)
    for name in ("num_layers", "learning_rate"):
        if out.get(name) is None:
            out[name] = preset[name]
    if all(out.get(k) is None for k in ("epochs", "max_steps", "max_minutes")):
        out["epochs"], out["max_minutes"] = preset.get("epochs"), preset.get("max_minutes")
    return out


def train(textfile=None, *, out="charlm.npz", resume: bool = False, plot: Union[bool, str, os.PathLike] = True,
          encoding: str = "utf-8", progress: bool = True, **params) -> TrainResult:
    """Train a :class:`CharModel` on ``textfile`` (default: the embedded Python documentation) and save it.

    ``params`` are CharModel's keywords (``hidden_size``, ``num_layers``,
    ``seq_len``, ``batch_size``, ``learning_rate``, ``epochs``, ``max_minutes``,
    ...). ``num_layers``, ``learning_rate`` and the stopping rule left as None
    take their values from ``DEFAULTS`` with a TEXTFILE (2 layers, 2e-3, 10
    epochs) and from ``QUICK_DEFAULTS`` on the embedded corpus (1 layer, 5e-3,
    2.5 minutes). The text's end is held out for validation (and an optional
    test split), contiguously. ``plot`` True draws the loss curve beside
    ``out``, a path draws it there, False not at all. ``resume=True`` continues
    from the checkpoint beside ``out``, which must exist and match the settings
    and the text. Everything is checked before the text is read.
    """
    est = CharModel(progress=progress, **_settings(textfile, params))
    est._check_params()
    png = (plot_path_beside(out) if plot is True else None) if isinstance(plot, bool) else os.fspath(plot)
    plot_flag = "the loss curve beside --out" if plot is True else "--plot"   # name what the user gave
    ckpt = prepare_run(out, resume=resume, kind=CharModel.kind, outputs={plot_flag: png},
                       inputs={"TEXTFILE": textfile}, examples={"--out": "charlm.npz", plot_flag: "charlm.loss.png"})
    source = DEFAULT_CORPUS_NAME if textfile is None else os.fspath(textfile)
    text = default_corpus() if textfile is None else read_text(textfile, encoding)
    if progress:
        say(f"charlm: training on {source}")
    est.fit(text, checkpoint_path=ckpt, resume=resume)
    final_sample = est.sample(length=est.sample_length, temperature=est.temperature,
                              random_state=est.random_state) if est.sample_length else ""
    est.meta_.update(data_source=source, encoding=encoding)
    est.save(out)
    plot_path = None
    if png is not None:
        try:
            plot_path = save_loss_curve(png, est, title=f"charlm {est.cell} {est.num_layers}x{est.hidden_size} "
                                                        f"on {os.path.basename(source)}")
        except RnnkitError as e:      # matplotlib is an optional extra
            if progress:
                say(f"charlm: no loss curve ({e})")
    return TrainResult(est, est.history_, os.fspath(out), ckpt, plot_path, est.meta_["valid"], est.meta_["test"],
                       final_sample)


def save_loss_curve(path, est: CharModel, title: str = "") -> str:
    """Training and validation loss (nats/char) against the step, written atomically to ``path``.

    The validation curve ends with the final parameters' loss when the run
    stopped between validations (``meta_["final_valid"]``).
    """
    from ..plotting import save_loss_curve as plot_loss
    h = est.history_
    valid = list(h.val_loss)
    if est.meta_.get("final_valid") and (not valid or valid[-1][0] != h.steps):
        valid.append((h.steps, est.meta_["final_valid"]["loss"]))
    return plot_loss(path, h.train, valid, ylabel="nats/char", title=title, what="--plot")


def load(path) -> CharModel:
    """A fitted :class:`CharModel` from a "charlm" model file or a training checkpoint (best parameters)."""
    return CharModel.load(path)


def save(model: CharModel, path, meta: Optional[dict] = None) -> str:
    """Write ``model`` as a "charlm" model file (atomically); returns the path."""
    return model.save(path, meta)


def _estimator(model: ModelLike) -> CharModel:
    if isinstance(model, CharModel):
        return model
    if os.path.exists(model) and not os.path.isdir(model):
        # a FIFO or device would block or never end inside the model-file reader; its own size limits apply
        check_input(model, "MODEL", max_bytes=1 << 62)
    return CharModel.load(model)


def sample_stream(model: ModelLike, *, prime: str = "", length: int = 500, temperature: float = 0.8,
                  top_k: int = 0, top_p: float = 1.0, random_state: Optional[int] = None) -> Iterator[str]:
    """Generated characters one at a time (see :func:`sample`); ``model`` is a path or a CharModel."""
    return _estimator(model).sample_stream(prime, length, temperature, top_k, top_p, random_state)


def sample(model: ModelLike, *, prime: str = "", length: int = 500, temperature: float = 0.8, top_k: int = 0,
           top_p: float = 1.0, random_state: Optional[int] = None, beam: Optional[int] = None) -> str:
    """``length`` characters continuing ``prime`` from a model file, checkpoint or CharModel.

    See :meth:`CharModel.sample`: ``beam`` None samples (``temperature`` 0 is
    greedy, ``top_k`` 0 and ``top_p`` 1 are off); ``beam`` N >= 1 is beam
    search with N beams, as in ``rnnkit translate`` (1 = greedy). A beam search
    draws nothing, so sampling settings other than their defaults are refused with it.
    """
    if beam is not None:
        given = [flag for flag, value, default in (("--temperature", temperature, 0.8), ("--top-k", top_k, 0),
                                                  ("--top-p", top_p, 1.0), ("--random-state", random_state, None))
                 if value != default]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise HyperparameterError(f"beam (--beam) searches for the most likely text; {', '.join(given)} {verb} "
                                      "to sampling and would be ignored: leave out --beam to sample, or leave out "
                                      f"{', '.join(given)}")
    return _estimator(model).sample(prime, length, temperature, top_k, top_p, random_state, beam)


def evaluate(model: ModelLike, textfile, *, batch_size: int = 1, seq_len: int = 100,
             encoding: str = "utf-8") -> Dict[str, float]:
    """Loss (nats/char), bits/char, perplexity and characters predicted (``chars``) on a text file, and how many
    it has to predict (``predictable``: all but the first).

    ``batch_size=1`` evaluates the text in one exact pass; N runs N streams in
    parallel, faster, each starting from a zero state (and up to N-1 characters at the end left out).
    """
    est = _estimator(model)
    check_score_args(batch_size, seq_len)
    text = read_text(textfile, encoding)
    out = est.score(text, batch_size=batch_size, seq_len=seq_len, what=f"TEXTFILE {os.fspath(textfile)}")
    return dict(out, predictable=len(text) - 1)
