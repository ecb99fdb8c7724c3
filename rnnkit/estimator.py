"""The one contract every rnnkit application follows, and :func:`load` for any model file.

Every user-facing model (``CharModel``, ``RNNForecaster``, ``Translator``) is an
:class:`Estimator`, in scikit-learn's sense:

- hyperparameters are keyword arguments of ``__init__``, stored verbatim, checked
  in ``fit``; ``get_params(deep=True)`` / ``set_params`` / ``sklearn.base.clone``
  work; learned state ends in ``_``;
- ``fit(data, ..., checkpoint_path=None, resume=False)`` returns ``self``; every
  estimator has ``random_state``, ``max_minutes`` and ``progress``; with a
  ``checkpoint_path`` training writes atomic checkpoints, and ``resume=True``
  continues from one bit for bit (SIGINT and SIGTERM save one first);
- ``save(path)`` writes a model file of the estimator's ``kind``;
  :func:`rnnkit.load` reads any model file *or training checkpoint* back as the
  right estimator; ``Cls.load(path)`` does the same but refuses files of another
  application.

A model file holds ``config = {"params": get_params(), "fitted": ...}`` (the
fitted part is what a subclass needs besides the weights: vocabularies,
scalers), the network's arrays, and ``meta`` (training history, thinned to at
most ``HISTORY_POINTS`` entries per curve, data facts). A checkpoint written by
:meth:`Estimator._fit_loop` holds the same config plus ``"kind"``.

Before a model is built from a file, :meth:`Estimator._parameter_shapes` (computed
from the configuration without allocating anything) must name exactly the
arrays the file holds, with the same shapes: a crafted configuration cannot make
rnnkit allocate more than the file's own data. :meth:`Estimator._check_memory`
refuses settings whose parameters, gradients and optimiser state would not fit
in the memory this machine has, with the number.

Subclasses define ``kind``, ``_resume_fixed`` (parameters a resumed run must
share with its checkpoint), ``_fitted_config()``, ``_restore(fitted, arrays,
meta)`` and ``_parameter_shapes(fitted)``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .checks import check_seed, flag, flag_of  # noqa: F401 (flag_of re-exported)
from .errors import HyperparameterError, ModelFileError, NotFittedError, PathError
from .io.inputs import refuse_special
from .train.history import thin_history
from .runs import (format_bytes, available_memory, beside, check_memory, checkpoint_beside,  # noqa: F401 (re-exported)
                   prepare_run)
from .io.jsonable import plain
from .io.modelfile import load_model_file, save_model_file
from .nn.shapes import count

__all__ = ["Estimator", "load", "KINDS", "flag_of", "available_memory", "thin_history", "fingerprint", "checkpoint_beside", "beside", "prepare_run", "HISTORY_POINTS"]

# model-file kind -> "module:Class"; imported only when a file of that kind is loaded
KINDS = {
    "charlm": "rnnkit.charlm.estimator:CharModel",
    "forecaster": "rnnkit.forecast.estimator:RNNForecaster",
    "translator": "rnnkit.translate.translator:Translator",
    "music": "rnnkit.music.estimator:MusicModel",
}
CHECKPOINT_KIND = "checkpoint"
HISTORY_POINTS = 500      # entries kept per curve in a model file's header


def _resolve_kind(kind: str, path: str):
    target = KINDS.get(kind)
    if target is None:
        raise ModelFileError(f"{path}: a model file of kind {kind!r}, which this rnnkit does not know; "
                             f"known kinds: {', '.join(sorted(KINDS))}")
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def load(path) -> "Estimator":
    """The estimator saved in ``path``: a model file of any application, or a training checkpoint.

    From a checkpoint the best validated parameters are used when there are
    any, else the latest. The returned estimator is fitted and ready to use.
    """
    return Estimator._load_any(path, None)


class Estimator:
    """Base class: the scikit-learn parameter contract, files and the training hook (see the module docstring)."""

    kind: ClassVar[str] = ""
    _resume_fixed: ClassVar[Tuple[str, ...]] = ()
    # parameters added after files were written, with the value a file that does not record one was trained
    # with (not today's default): loading and resuming read an absent parameter as this value
    _absent_params: ClassVar[Dict[str, Any]] = {}

    # -- scikit-learn parameters ------------------------------------------------
    @classmethod
    def _param_names(cls) -> List[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """The constructor's keyword arguments as stored (``deep`` is accepted for scikit-learn; no nesting)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "Estimator":
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters are {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = value is default or value == default
            except Exception:       # arrays and other values without a plain ==
                same = False
            if not (same is True):
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_is_fitted__(self) -> bool:
        return self._is_fitted()

    def __sklearn_tags__(self):
        """scikit-learn's tags (its ``check_is_fitted`` and ``clone`` ask for them since 1.6): an estimator that
        is fitted before use and takes its data unvalidated by scikit-learn. Only called by scikit-learn."""
        from sklearn.utils import Tags, TargetTags
        return Tags(estimator_type=None, target_tags=TargetTags(required=False), no_validation=True,
                    requires_fit=True)

    def _is_fitted(self) -> bool:
        return hasattr(self, "history_")

    def _check_fitted(self) -> None:
        if not self._is_fitted():
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit(...) first, or "
                                 f"{type(self).__name__}.load(path) / rnnkit.load(path) for a saved model")

    # -- what subclasses provide ------------------------------------------------
    def _fitted_config(self) -> Dict[str, Any]:
        """JSON-able learned state besides the weights (vocabularies, scaler statistics)."""
        raise NotImplementedError

    def _restore(self, fitted: Dict[str, Any], arrays: Dict[str, np.ndarray], meta: Dict[str, Any]) -> None:
        """Rebuild the fitted estimator from a file's ``fitted`` config, its arrays and meta."""
        raise NotImplementedError

    def _parameter_shapes(self, fitted: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
        """Name -> shape of every network array, from the parameters and ``fitted`` alone (no allocation)."""
        raise NotImplementedError

    def _network_state(self) -> Dict[str, np.ndarray]:
        """The arrays :meth:`save` stores (the network's ``state_dict``)."""
        raise NotImplementedError

    # -- checks shared by every application ---------------------------------------
    def _seed(self) -> int:
        """The integer seed of a fit: ``random_state`` itself, or one drawn from a Generator or from entropy."""
        rs = check_seed(flag_of("random_state"), self.random_state)
        if isinstance(rs, int):
            return rs
        return int(np.random.default_rng(rs).integers(2 ** 31 - 1))

    def _check_lr_decay(self) -> None:
        """``lr_decay`` "cosine" needs a budget to decay over: --epochs, --max-steps or --max-minutes (or the
        application's default budget, its ``_stopping()``)."""
        budget = self._stopping() if hasattr(self, "_stopping") else (self.epochs, self.max_steps, self.max_minutes)
        if self.lr_decay == "cosine" and all(v is None for v in budget):
            raise HyperparameterError(f"{flag_of('lr_decay')} cosine needs --epochs, --max-steps or --max-minutes: "
                                      "the learning rate decays over that budget")

    def _lr_schedule(self, epochs: Optional[int], per_epoch: Callable[[], int], max_steps: Optional[int],
                     max_minutes: Optional[float]):
        """The schedule of ``lr_decay``: None, or a cosine from ``learning_rate`` to ``learning_rate/20``.

        Counted in steps over the smaller of ``epochs * per_epoch()`` and ``max_steps``, so that a resumed
        run continues it exactly; with neither, over the ``max_minutes`` budget
        (:class:`~rnnkit.optim.schedules.TimeCosineLR`), so that the decay ends when the clock stops
        however fast the machine is.
        """
        if self.lr_decay != "cosine":
            return None
        from .optim.schedules import CosineAnnealingLR, TimeCosineLR
        low = self.learning_rate / 20
        if epochs is None and max_steps is None:
            return TimeCosineLR(self.learning_rate, eta_min=low)
        total = min(n for n in (epochs * per_epoch() if epochs else None, max_steps) if n)
        return CosineAnnealingLR(self.learning_rate, T_max=total, eta_min=low)

    def _check_weight_decay(self) -> None:
        """``weight_decay`` >= 0, and small enough that a step's factor 1 - learning_rate * weight_decay stays > 0."""
        from .optim.adam import check_weight_decay
        check_weight_decay(self.weight_decay, self.learning_rate, flag_of("weight_decay"), flag_of("learning_rate"))

    def _optimizer(self, model):
        """The optimiser of a fit: :func:`rnnkit.optim.adam.adam_for` (Adam, or AdamW with ``weight_decay``)."""
        from .optim.adam import adam_for
        return adam_for(model, self.learning_rate, getattr(self, "weight_decay", 0.0))

    _size_flags: ClassVar[Tuple[str, ...]] = ("--hidden-size", "--num-layers", "--batch-size")
    # fitted facts computed after training and stored in a finished run's checkpoint (the forecaster's
    # calibration scores): the resume check compares the rest
    _fitted_after_training: ClassVar[Tuple[str, ...]] = ()

    def _check_memory(self, shapes: Mapping[str, Tuple[int, ...]], dtype, extra_bytes: int = 0,
                      what: str = "these settings") -> None:
        """Refuse, before allocating, a model whose training state would not fit (:func:`rnnkit.runs.check_memory`)."""
        check_memory(shapes, dtype, extra_bytes, what=what, size_flags=self._size_flags)

    # -- files ---------------------------------------------------------------
    def _file_config(self, fitted: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """``{"params", "fitted"}`` as files store them; ``fitted`` defaults to the fitted estimator's own."""
        # a setting given as a NumPy array (quantiles=np.array([...])) is written as the list it holds
        params = plain({k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self.get_params().items()})
        if not (params.get("random_state") is None or isinstance(params.get("random_state"), int)):
            params["random_state"] = None    # a Generator is not JSON; the fit's own seed is in the checkpoint
        return {"params": params, "fitted": dict(self._fitted_config() if fitted is None else fitted)}

    def save(self, path, meta: Optional[Mapping[str, Any]] = None) -> str:
        """Write a model file of this estimator's kind (atomically); ``meta`` adds JSON-able facts.

        As in the command line, it does not replace a training checkpoint, a model of another application or a
        file of another kind (:func:`rnnkit.io.atomic.check_outputs`); a model of its own kind it does."""
        self._check_fitted()
        self._check_output("path", path)
        config, arrays = self._file_config(), self._network_state()
        shapes = self._parameter_shapes(config["fitted"])
        if shapes != {name: tuple(a.shape) for name, a in arrays.items()}:
            # set_params(hidden_size=...) after fit: such a file would be refused on load, so refuse it now
            changed = sorted(k for k in self._resume_fixed if k in config["params"])
            raise NotFittedError(f"the settings of this {type(self).__name__} changed since it was fitted "
                                 f"(one of {', '.join(changed)}); fit it again before saving")
        info = {"history": thin_history(self.history_.to_dict(), HISTORY_POINTS) if getattr(self, "history_", None) else None}
        info.update(getattr(self, "meta_", None) or {})
        info.update(meta or {})
        save_model_file(path, kind=self.kind, config=config, arrays=arrays, meta=info)
        return os.fspath(path)

    def _check_output(self, name: str, path, checkpoint: bool = False) -> None:
        """The output checks of :meth:`save` (``name`` a model file) and of ``fit(checkpoint_path=...)``
        (``checkpoint``: a checkpoint, of any run, may be replaced; a model file may not)."""
        from .io.atomic import check_model_kind, check_outputs
        check_outputs({name: path}, examples={name: "run.ckpt.npz" if checkpoint else "model.npz"},
                      models=() if checkpoint else (name,), checkpoints=(name,) if checkpoint else ())
        if checkpoint:
            check_model_kind(name, path, None, "writing the checkpoints")
        else:
            check_model_kind(name, path, self.kind, f"writing a {self.kind} model")

    @classmethod
    def load(cls, path) -> "Estimator":
        """A fitted estimator of this class from a model file or checkpoint; other kinds are refused."""
        return cls._load_any(path, cls)

    @staticmethod
    def _load_any(path, expected: Optional[type]) -> "Estimator":
        from .train.checkpoint import load_checkpoint
        from .train.history import History
        path = os.fspath(path)
        refuse_special(path, "model file")   # a FIFO would block the reader forever
        mf = load_model_file(path)
        history = None
        if mf.kind == CHECKPOINT_KIND:
            ck = load_checkpoint(path)
            kind = (ck.config or {}).get("kind")
            if not isinstance(kind, str):
                raise ModelFileError(f"{path}: this checkpoint was not written by an rnnkit application "
                                     "(its config names no kind); load it with rnnkit.train.load_checkpoint")
            config, arrays, meta = ck.config, ck.best_state or ck.model_state, dict(ck.meta)
            history = ck.history
        else:
            kind, config, arrays, meta = mf.kind, mf.config, mf.arrays, dict(mf.meta)
            if isinstance(meta.get("history"), dict):
                try:
                    history = History.from_dict(meta["history"])
                except (KeyError, TypeError, ValueError) as e:
                    raise ModelFileError(f"{path}: its training history is malformed ({e})") from None
        if expected is not None and kind != expected.kind:   # refused by name: nothing imported or built
            what = f"the checkpoint of a {kind} run" if history is not None and mf.kind == CHECKPOINT_KIND \
                else f"a {kind} model file"
            raise ModelFileError(f"{path}: this is {what}, not a {expected.kind} one; load it with "
                                 f"rnnkit.load, or pass a file written by "
                                 f"`rnnkit {_COMMAND.get(expected.kind, expected.kind)} train`")
        cls = expected or _resolve_kind(kind, path)
        if not isinstance(config, Mapping) or not isinstance(config.get("params"), Mapping) \
                or not isinstance(config.get("fitted"), Mapping):
            raise ModelFileError(f"{path}: the {kind} configuration is malformed (no params/fitted); "
                                 "the file was not written by this rnnkit, re-create it")
        valid = set(cls._param_names())
        params = dict(cls._absent_params)
        params.update({k: v for k, v in config["params"].items() if k in valid})
        try:
            est = cls(**params)
            shapes = est._parameter_shapes(dict(config["fitted"]))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ModelFileError(f"{path}: the {kind} configuration is malformed ({type(e).__name__}: {e}); "
                                 "the file was not written by this rnnkit, re-create it") from None
        got = {name: tuple(a.shape) for name, a in arrays.items()}
        if shapes != got:
            missing = sorted(set(shapes) - set(got))
            extra = sorted(set(got) - set(shapes))
            wrong = sorted(n for n in set(shapes) & set(got) if shapes[n] != got[n])
            detail = (f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}" if extra else
                      f"{wrong[0]} is {got[wrong[0]]}, the configuration says {shapes[wrong[0]]}")
            raise ModelFileError(f"{path}: the configuration does not match the stored arrays ({detail}); the "
                                 "file is damaged or was edited, re-create it")
        bad = sorted(n for n, a in arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all())
        if bad:
            raise ModelFileError(f"{path}: the weights {bad[:3]} hold NaN or infinity; the model is broken (training "
                                 "diverged, or the file was edited): re-create it")
        try:
            est._restore(dict(config["fitted"]), dict(arrays), meta)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ModelFileError(f"{path}: cannot rebuild the {kind} model ({type(e).__name__}: {e}); "
                                 "re-create the file") from None
        est.history_ = history
        est.meta_ = {k: v for k, v in meta.items() if k != "history"}
        return est

    # -- training --------------------------------------------------------------
    def _fit_loop(self, net, optimizer, step_fn: Callable, batches: Callable, *, seed: int,
                  checkpoint_path=None, resume: bool = False, data_fingerprint: str = "",
                  checkpoint_every: Optional[int] = None, fitted: Optional[Mapping[str, Any]] = None,
                  **fit_kwargs):
        """Run :func:`rnnkit.train.fit` with this estimator's config in the checkpoints.

        ``fitted`` is the fitted config of the run being trained (its vocabulary, scalers), which the
        checkpoints carry; the estimator's own fitted attributes change only after training succeeded.

        ``resume=True`` needs an existing checkpoint, made with the same
        ``_resume_fixed`` parameters, fitted state and data (``data_fingerprint``);
        otherwise it is refused, naming the flag that differs.
        """
        from .train import fit
        if checkpoint_path is not None:
            checkpoint_path = os.fspath(checkpoint_path)
            self._check_output("checkpoint_path", checkpoint_path, checkpoint=True)
        config = dict(self._file_config(fitted), kind=self.kind)
        meta = {"data_sha256": data_fingerprint}
        if resume:
            if checkpoint_path is None:
                raise HyperparameterError("resume=True needs the checkpoint_path of the run to continue")
            if not os.path.exists(checkpoint_path):
                raise PathError(f"resume: there is no checkpoint {checkpoint_path} to continue from; pass the "
                                "checkpoint_path of the run, or start afresh with resume=False")
            ran_with = self._check_resume(checkpoint_path, config, data_fingerprint, type(optimizer).__name__)
            if isinstance(ran_with, int) and ran_with != self.random_state:
                # the run goes on with its own seed (rnnkit.train.resume says so): the files record that one
                self.random_state = config["params"]["random_state"] = ran_with
        return fit(net, optimizer, step_fn, batches, seed=seed, checkpoint_path=checkpoint_path,
                   checkpoint_every=checkpoint_every if checkpoint_path is not None else None,
                   resume=resume and checkpoint_path is not None, config=config, meta=meta, **fit_kwargs)

    def _check_resume(self, checkpoint_path: str, config: Mapping[str, Any], data_fingerprint: str,
                      optimizer: str = "Adam") -> Any:
        """Refuse, in one line, to resume from a checkpoint of another model, other settings or other data.

        Returns the ``random_state`` the checkpoint's run was started with.
        """
        from .optim.checks import check_optimizer_state
        from .train.checkpoint import load_checkpoint
        ck = load_checkpoint(checkpoint_path)
        old = ck.config or {}
        if old.get("kind") != self.kind:
            raise PathError(f"{checkpoint_path}: this checkpoint is not from a {self.kind} run "
                            f"(kind {old.get('kind')!r}); resume with the checkpoint of the same command, or start "
                            "afresh without --resume")
        old_params, new_params = dict(self._absent_params, **old.get("params", {})), config["params"]
        trained_by = check_optimizer_state(ck.optimizer_state)[0]["optimizer"]   # damaged: ModelFileError
        decay = old_params.get("weight_decay") or 0   # the forecaster's was Adam's L2 term before 2026-12-05
        if trained_by == "Adam" and decay:
            raise PathError(f"{checkpoint_path}: this checkpoint's run trained with Adam's L2 weight decay "
                            f"({flag('weight_decay')} {decay}, as the forecaster had it before 2026-12-05), which "
                            "this rnnkit replaced by AdamW's; its optimiser state cannot continue: start afresh "
                            "without --resume")
        # the optimiser's state, its learning rate included, comes back from the checkpoint: another
        # --learning-rate would be silently ignored, so it is refused like the shapes; and so is another
        # --lr-decay (its length may change: a longer run extends its decay, with a warning) or --weight-decay
        fixed = self._resume_fixed + tuple(k for k in ("learning_rate", "lr_decay", "weight_decay")
                                           if k in new_params)
        old_params.setdefault("lr_decay", "none")          # a checkpoint from before --lr-decay: no decay
        old_params.setdefault("weight_decay", 0.0)         # ... from before --weight-decay: none
        diff = [k for k in fixed if old_params.get(k) != new_params.get(k)]
        if diff:
            def said(k, v):                                                 # as the CLI takes it
                if isinstance(v, bool):                                     # a switch: --layer-norm or not
                    return flag(k) if v else f"no {flag(k)}"
                return f"{flag(k)} {'none' if v is None else v}"
            was = ", ".join(said(k, old_params.get(k)) for k in diff)
            now = ", ".join(said(k, new_params.get(k)) for k in diff)
            raise PathError(f"{checkpoint_path}: this checkpoint was trained with {was}, not {now}; resume with "
                            "the same settings, or start afresh without --resume")
        if trained_by != optimizer:
            raise PathError(f"{checkpoint_path}: this checkpoint's run trained with {trained_by}, this one would "
                            f"train with {optimizer}; its optimiser state cannot continue: start afresh without "
                            "--resume")
        after = self._fitted_after_training         # facts a finished run adds to its last checkpoint
        same = ({k: v for k, v in (old.get("fitted") or {}).items() if k not in after}
                == {k: v for k, v in config["fitted"].items() if k not in after})
        if not same or ck.meta.get("data_sha256", "") != data_fingerprint:
            raise PathError(f"{checkpoint_path}: this checkpoint was trained on other data; resume with the same "
                            "data file and data settings, or start afresh without --resume")
        return old_params.get("random_state")


_COMMAND = {"charlm": "charlm", "forecaster": "forecast", "translator": "translate", "music": "music"}


def fingerprint(*parts: Any) -> str:
    """SHA-256 of the given data (arrays, strings, numbers) for the resume check."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype.str}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, (bytes, bytearray)):
            h.update(part)
        else:
            h.update(repr(part).encode("utf-8", "surrogatepass"))
        h.update(b"|")
    return h.hexdigest()
