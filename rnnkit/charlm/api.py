"""The character model's user-facing functions; the ``rnnkit charlm`` commands call exactly these.

Keyword names equal the CLI flags (``seq_len`` is ``--seq-len``)::

    from rnnkit import charlm
    run = charlm.train("input.txt", hidden=256, layers=2, seq_len=100, batch=32, max_minutes=10)
    print(charlm.sample(run.model_path, prime="ROMEO:", length=500, temperature=0.8, seed=1))
    print(charlm.evaluate(run.model_path, "input.txt"))    # loss, bits/char, perplexity

``train`` writes three files: the model (``out``, kind "charlm": config with
the vocabulary, weights, training history), a checkpoint beside it
(``<name>.ckpt.npz``, written atomically every ``checkpoint_every`` steps and
at the end; ``resume=True`` continues from it) and the loss curve
(``<name>.loss.png``).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Union

import numpy as np

from ..errors import DataError, ModelFileError, RnnkitError
from ..io.modelfile import check_writable, load_model_file, save_model_file
from ..optim import Adam, CosineAnnealingLR
from ..optim.checks import check_real
from ..train import fit
from ..train.checkpoint import load_checkpoint
from ..train.history import History
from .corpus import DEFAULT_CORPUS_NAME, default_corpus
from .data import Vocab, read_text, split_text
from .generate import beam_search, check_sampling, stream
from .model import CharLM
from .training import evaluate_ids, make_batches, make_step_fn

__all__ = ["train", "sample", "sample_stream", "evaluate", "load", "save", "TrainResult", "MODEL_KIND",
           "DEFAULTS", "QUICK_DEFAULTS"]

MODEL_KIND = "charlm"
# What `layers`, `lr` and the stopping rule mean when left as None. With a TEXTFILE: char-rnn's
# classic 2x256 model for 10 epochs. With the embedded corpus, a demo sized to finish in a few
# minutes on two CPU cores: one layer and a higher learning rate reach a lower validation loss in
# that time (measured at equal steps: 1.36 vs 1.62 nats/char after 300 steps at lr 5e-3 vs 2e-3,
# 1.51 for 2x128 at 5e-3; 2x256 takes about 2.5x longer per step).
DEFAULTS = {"layers": 2, "lr": 2e-3, "epochs": 10}
QUICK_DEFAULTS = {"layers": 1, "lr": 5e-3, "max_minutes": 2.5}

ModelLike = Union[str, os.PathLike, CharLM]


@dataclass
class TrainResult:
    """What :func:`train` produced: the trained model, its history, the files and the final metrics."""

    model: CharLM
    history: History
    model_path: str
    checkpoint_path: str
    plot_path: Optional[str]
    valid: Optional[Dict[str, float]]
    test: Optional[Dict[str, float]]
    sample: str


def _say(message: str) -> None:
    """A line on stderr that does not break a running tqdm bar."""
    try:
        from tqdm import tqdm
        tqdm.write(message, file=sys.stderr)
    except ImportError:
        print(message, file=sys.stderr, flush=True)


def _positive(name: str, v, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        flag = "--" + name.replace("_", "-")
        raise DataError(f"{name} ({flag}): expected a positive integer, got {v!r}")


def _seed(seed) -> None:
    """None, a non-negative integer, or NumPy randomness (a Generator or SeedSequence) passed in."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise DataError(f"seed (--seed): expected a non-negative integer, got {seed!r}")


def _lr_schedule(lr_decay: str, lr: float, steps_per_epoch: int, epochs: Optional[int],
                 max_steps: Optional[int]) -> Optional[CosineAnnealingLR]:
    """None for a constant rate; for "cosine", lr -> lr / 20 over the steps the run will take.

    The schedule counts steps, not seconds, so a resumed run continues it exactly.
    """
    if lr_decay == "none":
        return None
    total = [n for n in (epochs * steps_per_epoch if epochs else None, max_steps) if n]
    if not total:
        raise DataError("lr_decay (--lr-decay) cosine needs --epochs or --max-steps: the schedule is laid out "
                        "over a known number of steps (--max-minutes alone cannot say how many)")
    return CosineAnnealingLR(lr, T_max=min(total), eta_min=lr / 20)


def _paths(out) -> Dict[str, str]:
    out = os.fspath(out)
    stem = out[:-4] if out.endswith(".npz") else out
    return {"model": out, "checkpoint": stem + ".ckpt.npz", "plot": stem + ".loss.png"}


def _check_resume(ckpt_path: str, config: dict, data_sha: str) -> None:
    """Refuse to resume from a missing checkpoint or one made with another model or text, naming the difference."""
    if not os.path.exists(ckpt_path):
        raise DataError(f"{ckpt_path}: no checkpoint to resume from (it is kept beside --out); pass the --out "
                        "of the run to continue, or start afresh without --resume")
    ck = load_checkpoint(ckpt_path)
    old = ck.config
    diff = [k for k in ("cell", "hidden", "layers", "embedding", "dropout") if old.get(k) != config.get(k)]
    if diff:
        was = ", ".join(f"--{k} {old.get(k)}" for k in diff)
        raise DataError(f"{ckpt_path}: this checkpoint was trained with {was}; resume with the same model "
                        "flags, or start afresh without --resume")
    if ck.meta.get("data_sha256") != data_sha:
        raise DataError(f"{ckpt_path}: this checkpoint was trained on another text "
                        f"({ck.meta.get('data_source')!r}); resume with the same TEXTFILE (and --encoding, "
                        "--valid-fraction, --test-fraction), or start afresh without --resume")


def save(model: CharLM, path, meta: Optional[dict] = None) -> str:
    """Write ``model`` as a "charlm" model file (atomic); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_model_file(path, kind=MODEL_KIND, config=model.config(), arrays=model.state_dict(), meta=meta or {})
    return path


def load(path) -> CharLM:
    """A model from a "charlm" model file or from a training checkpoint, in eval mode.

    The file's ``meta`` (training history, data, settings) is kept as ``model.meta``.
    """
    path = os.fspath(path)
    mf = load_model_file(path)
    if mf.kind == "checkpoint":
        ck = load_checkpoint(path)
        config, state, meta = ck.config, ck.best_state or ck.model_state, dict(ck.meta)
        meta["history"] = ck.history.to_dict()
    elif mf.kind == MODEL_KIND:
        config, state, meta = mf.config, mf.arrays, mf.meta
    else:
        raise ModelFileError(f"{path}: this is a {mf.kind} model file, not a charlm one; pass a file "
                             "written by `rnnkit charlm train`")
    try:
        model = CharLM.from_config(config)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: the file does not describe a character model ({e}); pass a file "
                             "written by `rnnkit charlm train`") from None
    model.meta = meta
    return model.eval()


def _model(model: ModelLike) -> CharLM:
    if isinstance(model, CharLM):
        return model
    return load(model)


def train(textfile=None, *, out="charlm.npz", cell: str = "lstm", hidden: int = 256, layers: Optional[int] = None,
          embedding: int = 64, dropout: float = 0.0, seq_len: int = 100, batch: int = 32,
          lr: Optional[float] = None, lr_decay: str = "none",
          clip_norm: Optional[float] = 5.0, epochs: Optional[int] = None, max_steps: Optional[int] = None,
          max_minutes: Optional[float] = None, valid_fraction: float = 0.1, test_fraction: float = 0.0,
          validate_every: Optional[int] = None, checkpoint_every: Optional[int] = 100, resume: bool = False,
          seed: int = 0, encoding: str = "utf-8", sample_length: int = 200, temperature: float = 0.8,
          progress: bool = True, plot: bool = True) -> TrainResult:
    """Train a character model on ``textfile`` (default: the embedded Python documentation).

    Stops at ``epochs``, ``max_steps`` or ``max_minutes``, whichever comes first.
    ``layers``, ``lr`` and the stopping rule left as None take their values
    from ``DEFAULTS`` with a TEXTFILE (2 layers, lr 2e-3, 10 epochs) and from
    ``QUICK_DEFAULTS`` on the embedded corpus (1 layer, lr 5e-3, 2.5 minutes).
    The text's last ``valid_fraction`` (before an optional final
    ``test_fraction``) is held out: at the end of every epoch and every
    ``validate_every`` steps its loss is reported with a
    ``sample_length``-character sample. Adam with learning rate ``lr``,
    gradients clipped to global norm ``clip_norm``. The model with the best
    validation loss is the one saved. ``lr_decay="cosine"`` anneals the
    learning rate from ``lr`` to ``lr / 20`` over the run's steps (so it needs
    ``epochs`` or ``max_steps``; it is what reaches 1.44 nats/char on
    tiny-shakespeare in 30 minutes, see the README). ``resume=True`` continues from the
    checkpoint beside ``out``, which must exist and match the model flags and
    the text (a run that silently restarted would waste the budget).
    """
    preset = QUICK_DEFAULTS if textfile is None else DEFAULTS
    layers = preset["layers"] if layers is None else layers
    lr = preset["lr"] if lr is None else lr
    for name, v in (("hidden", hidden), ("layers", layers), ("seq_len", seq_len), ("batch", batch)):
        _positive(name, v)
    for name, v in (("epochs", epochs), ("max_steps", max_steps), ("validate_every", validate_every),
                    ("checkpoint_every", checkpoint_every)):
        _positive(name, v, allow_none=True)
    if max_minutes is not None and not (isinstance(max_minutes, (int, float)) and max_minutes > 0):
        raise DataError(f"max_minutes (--max-minutes): expected a positive number, got {max_minutes!r}")
    check_real("lr (--lr)", lr, low_open=True)
    if lr_decay not in ("none", "cosine"):
        raise DataError(f"lr_decay (--lr-decay): expected 'none' or 'cosine', got {lr_decay!r}")
    _seed(seed)
    check_sampling(sample_length, temperature, None, None)
    if epochs is None and max_steps is None and max_minutes is None:
        epochs, max_minutes = preset.get("epochs"), preset.get("max_minutes")
    paths = _paths(out)
    os.makedirs(os.path.dirname(os.path.abspath(paths["model"])), exist_ok=True)
    check_writable(paths["model"], "out (--out)")    # now, not after the training
    if plot:
        check_writable(paths["plot"], "out (--out), for the loss curve,", example="charlm.loss.png")

    text = default_corpus() if textfile is None else read_text(textfile, encoding)
    source = DEFAULT_CORPUS_NAME if textfile is None else os.fspath(textfile)
    train_text, valid_text, test_text = split_text(text, valid_fraction, test_fraction)
    vocab = Vocab.from_text(text)
    train_ids = vocab.encode(train_text)
    valid_ids = vocab.encode(valid_text) if len(valid_text) > 1 else None
    batches = make_batches(train_ids, batch, seq_len)          # checks the text is long enough
    schedule = _lr_schedule(lr_decay, lr, len(batches(0, None)), epochs, max_steps)
    data_sha = hashlib.sha256(f"{valid_fraction}|{test_fraction}|".encode() + text.encode("utf-8")).hexdigest()

    model = CharLM(vocab, cell=cell, hidden=hidden, layers=layers, embedding=embedding, dropout=dropout,
                   rng=np.random.default_rng([seed, 7]))
    if resume:
        _check_resume(paths["checkpoint"], model.config(), data_sha)
    optimizer = Adam(model.parameters(), lr=lr)
    if progress:
        _say(f"charlm: {len(text):,} characters from {source} ({len(vocab)} distinct; train {len(train_text):,}, "
             f"validation {len(valid_text):,}{f', test {len(test_text):,}' if test_text else ''}); "
             f"{cell.upper()} {layers}x{hidden}, {model.num_parameters():,} parameters; stopping after "
             + ", ".join(f"{v} {k}" for k, v in (("epochs", epochs), ("steps", max_steps),
                                                 ("minutes", max_minutes)) if v is not None))
    validate = None
    if valid_ids is not None:
        # N streams instead of one: N times fewer sequential steps, a negligible cold-start cost
        validate = lambda m: evaluate_ids(m, valid_ids, batch=min(batch, len(valid_ids) - 1), seq_len=seq_len)

    def show_sample(event, info):
        if event == "validate" and progress and sample_length:
            text = "".join(stream(model, "", sample_length, temperature, seed=seed))
            _say(f"--- sample at step {info['step']} ---\n{text}\n---")

    settings = dict(seq_len=seq_len, batch=batch, lr=lr, lr_decay=lr_decay, clip_norm=clip_norm, seed=seed,
                    valid_fraction=valid_fraction, test_fraction=test_fraction, encoding=encoding)
    meta = {"data_source": source, "data_sha256": data_sha, "data_chars": len(text), "settings": settings}
    history = fit(model, optimizer, make_step_fn(model), batches, seed=seed, epochs=epochs, max_steps=max_steps,
                  max_minutes=max_minutes, clip_norm=clip_norm, schedule=schedule, validate=validate,
                  validate_every=validate_every if validate else None, checkpoint_path=paths["checkpoint"],
                  checkpoint_every=checkpoint_every, resume=resume, callbacks=[show_sample], progress=progress,
                  unit="char", config=model.config(), meta=meta)
    model.eval()
    valid = validate(model) if validate else None
    saved_step = history.best_step if valid is not None else history.steps
    val_curve = list(history.val_loss)
    if valid is not None and history.best_step != history.steps:
        # fit() ends on the best *validated* parameters; a time or step budget usually stops
        # between validations, so also try the final ones (the checkpoint holds them)
        best_params = model.state_dict()
        model.load_state_dict(load_checkpoint(paths["checkpoint"]).model_state)
        last = validate(model)
        val_curve.append((history.steps, last["loss"]))
        if last["loss"] <= valid["loss"]:
            valid, saved_step = last, history.steps
        else:
            model.load_state_dict(best_params)
    meta["saved_step"] = saved_step
    test = None
    if len(test_text) > 1:
        test = evaluate_ids(model, vocab.encode(test_text), batch=min(batch, len(test_text) - 1), seq_len=seq_len)
    final_sample = "".join(stream(model, "", sample_length, temperature, seed=seed)) if sample_length else ""
    save(model, paths["model"], dict(meta, history=history.to_dict(), valid=valid, test=test))
    model.meta = dict(meta, history=history.to_dict(), valid=valid, test=test)
    plot_path = None
    if plot:
        try:
            from ..plotting import save_loss_curve
            plot_path = save_loss_curve(paths["plot"], history.train, val_curve, ylabel="nats/char",
                                        title=f"charlm {cell} {layers}x{hidden} on {os.path.basename(source)}")
        except RnnkitError as e:      # matplotlib is an optional extra
            if progress:
                _say(f"charlm: no loss curve ({e})")
    return TrainResult(model, history, paths["model"], paths["checkpoint"], plot_path, valid, test, final_sample)


def sample_stream(model: ModelLike, *, prime: str = "", length: int = 500, temperature: float = 0.8,
                  top_k: int = 0, top_p: float = 1.0, seed: Optional[int] = None) -> Iterator[str]:
    """Generated characters one at a time (see :func:`sample`)."""
    _seed(seed)
    return stream(_model(model), prime, length, temperature, top_k or None, top_p, seed)


def sample(model: ModelLike, *, prime: str = "", length: int = 500, temperature: float = 0.8, top_k: int = 0,
           top_p: float = 1.0, seed: Optional[int] = None, beam: int = 0) -> str:
    """``length`` characters continuing ``prime`` (the prime itself is not included).

    ``temperature`` 0 is greedy decoding; ``top_k`` (0 = off) and ``top_p``
    (1 = off) restrict the draw; the same ``seed`` gives the same text. With
    ``beam`` > 0, beam search with that many beams returns the most likely
    continuation instead (no randomness). Prime characters the model does not
    know are an error.
    """
    _seed(seed)
    m = _model(model)
    if beam:
        return beam_search(m, prime, length, beam)[0]
    return "".join(stream(m, prime, length, temperature, top_k or None, top_p, seed))


def evaluate(model: ModelLike, textfile, *, batch: int = 1, seq_len: int = 100,
             encoding: str = "utf-8") -> Dict[str, float]:
    """Loss (nats/char), bits/char and perplexity of the model on a text file.

    ``batch=1`` evaluates the text in one pass (exact); ``batch`` N runs N
    streams in parallel, faster, each starting from a zero state.
    """
    _positive("batch", batch)
    _positive("seq_len", seq_len)
    m = _model(model)
    text = read_text(textfile, encoding)
    if len(text) < 2:
        raise DataError(f"{os.fspath(textfile)}: has {len(text)} character; evaluation needs at least 2")
    ids = m.vocab.encode(text, what=f"{os.fspath(textfile)}")
    return evaluate_ids(m, ids, batch=min(batch, len(ids) - 1), seq_len=seq_len)
