r"""Ensembles of translators: decoding with the mean of M models' log-probabilities at each step.

.. math::
    \log p_{ens}(y \mid y_{<t}, x) = \frac{1}{M} \sum_{m=1}^{M} \log p_m(y \mid y_{<t}, x) - \log Z_t,
    \qquad Z_t = \sum_{y'} \exp \frac{1}{M} \sum_m \log p_m(y' \mid y_{<t}, x)

Each model keeps its own encoder memory and decoder state; every step feeds the
same token to all of them (the token the search chose from the combined
distribution). The mean of log-probabilities is a product of experts; the search
renormalises it (the :math:`\log Z_t` term) before ranking, so the beam's scores
and its length penalty see a distribution, and an ensemble of one model, or of M
copies of one model, decodes exactly as that model. The attention weights
reported are the models' mean.

:class:`EnsembleModel` has the parts of a :class:`~rnnkit.translate.model.Seq2Seq`
that :func:`~rnnkit.translate.decode.greedy` and
:func:`~rnnkit.translate.decode.beam_search` use (``encode``, ``decoder.step``,
``decoder.logits``, ``eval_mode``), so both searches run it unchanged.
:class:`Ensemble` is the user-facing side: ``translate`` and ``evaluate`` as on a
:class:`~rnnkit.translate.translator.Translator`. Its members must share the
source and target vocabularies and the text preprocessing; otherwise it is
refused, naming the files.
"""

from __future__ import annotations

import copy
from contextlib import ExitStack, contextmanager
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelFileError
from ..nn.attention import Memory
from ..nn.losses import log_softmax

__all__ = ["Ensemble", "EnsembleModel"]


class _Rows:
    """One array per model, indexed by rows together (what the beam search does to ``mem.values``)."""

    def __init__(self, items: Tuple[np.ndarray, ...]):
        self.items = items

    def __getitem__(self, index) -> "_Rows":
        return _Rows(tuple(a[index] for a in self.items))

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.items[0].shape               # (N, S, .): N and S agree across the models


class _States:
    """One DecoderState per model; ``select`` reorders the rows of all of them (beam search)."""

    def __init__(self, members: Tuple):
        self.members = members

    def select(self, index: np.ndarray) -> "_States":
        return _States(tuple(d.select(index) for d in self.members))


class _EnsembleDecoder:
    def __init__(self, models):
        self.models = models

    def step(self, tokens: np.ndarray, dstate: _States, mem: Memory, rng=None, need_cache: bool = False):
        """One step of every model on the same ``tokens`` (N,); the outputs stay per model."""
        outs, ws, states = [], [], []
        for i, m in enumerate(self.models):
            mem_i = Memory(mem.values.items[i], mem.keys.items[i], mem.mask)
            out, w, ds, _ = m.decoder.step(tokens, dstate.members[i], mem_i, need_cache=False)
            outs.append(out)
            ws.append(w)
            states.append(ds)
        return tuple(outs), np.mean(ws, axis=0), _States(tuple(states)), None   # w: (N, S)

    def logits(self, outs: Tuple[np.ndarray, ...]) -> np.ndarray:
        """The mean of the models' log-probabilities (N, V), in float64 (the search renormalises it)."""
        return _mean_log_probs([m.decoder.logits for m in self.models], outs)

    def with_output_layers(self, layer_of):
        """:meth:`logits` through each member's output layer as ``layer_of(member decoder)`` makes it for one
        decoding call (the search packs each member's weights once, see ``decode._output_layer``)."""
        layers = [layer_of(m.decoder) for m in self.models]
        return lambda outs: _mean_log_probs(layers, outs)


def _mean_log_probs(layers, outs) -> np.ndarray:
    """(1/M) sum_m log_softmax(layer_m(out_m)) (N, V) float64."""
    total = None
    for layer, out in zip(layers, outs):
        logp = log_softmax(layer(out).astype(np.float64))                   # (N, V)
        total = logp if total is None else total + logp
    return total / len(layers)


class EnsembleModel:
    """M Seq2Seq models decoded together (see the module docstring); not trainable."""

    def __init__(self, models: Sequence):
        self.models = list(models)
        if not self.models:
            raise ValueError("EnsembleModel: no models")
        self.decoder = _EnsembleDecoder(self.models)

    @contextmanager
    def eval_mode(self):
        with ExitStack() as stack:
            for m in self.models:
                stack.enter_context(m.eval_mode())
            yield self

    def encode(self, src: np.ndarray, src_len: np.ndarray, rng=None):
        """``(memory, decoder state, None)``: every model's memory and start state, side by side."""
        encoded = [m.encode(src, src_len) for m in self.models]
        mem = Memory(_Rows(tuple(e[0].values for e in encoded)), _Rows(tuple(e[0].keys for e in encoded)),
                     encoded[0][0].mask)
        return mem, _States(tuple(e[1] for e in encoded)), None


class Ensemble:
    """Fitted translators that decode together: ``Ensemble([tr_a, tr_b]).evaluate(pairs, beam=5)``.

    ``names`` (the model files, for messages) default to "model 1", "model 2", ...
    The first member's preprocessing, vocabularies and ``max_length`` serve the ensemble.
    Evaluation reports BLEU, chrF and the exact-match rate (no teacher-forced loss).
    """

    def __init__(self, translators: Sequence, names: Optional[Sequence[str]] = None):
        self.translators = list(translators)
        if not self.translators:
            raise ValueError("Ensemble: no translators")
        self.names = list(names) if names is not None else [f"model {i + 1}" for i in range(len(self.translators))]
        first = self.translators[0]
        for tr in self.translators:
            tr._check_fitted()
        for tr, name in zip(self.translators[1:], self.names[1:]):
            for what, attr in (("source vocabularies", "src_vocab_"), ("target vocabularies", "tgt_vocab_")):
                if list(getattr(tr, attr).itos) != list(getattr(first, attr).itos):
                    raise ModelFileError(f"{name} and {self.names[0]} have different {what} ({len(getattr(tr, attr))}"
                                         f" and {len(getattr(first, attr))} tokens): an ensemble needs models "
                                         "trained on the same pairs with the same vocabulary settings")
            if tr.text_options_ != first.text_options_:
                raise ModelFileError(f"{name} and {self.names[0]} preprocess text differently ({tr.text_options_} "
                                     f"and {first.text_options_}): an ensemble needs one tokenisation")
        # the first member's preprocessing and decoding code, with the ensemble as its network (its memory
        # check counts one model's memory and states: the search's history and (N*B, V) rows, shared, dominate)
        self._view = copy.copy(first)
        self._view.model_ = EnsembleModel([tr.model_ for tr in self.translators])
        self.meta_ = getattr(first, "meta_", None)

    def __len__(self) -> int:
        return len(self.translators)

    def translate(self, sentences: Sequence[str], **kwargs) -> List:
        """As :meth:`Translator.translate`, decoding with the ensemble."""
        return self._view.translate(sentences, **kwargs)

    def evaluate(self, pairs, *, beam: int = 1, length_penalty: float = 0.0, max_length: Optional[int] = None,
                 with_loss: bool = False) -> Dict[str, float]:
        """BLEU, chrF and exact-match rate of the ensemble's translations of ``pairs``."""
        if with_loss:
            raise ValueError("Ensemble.evaluate: an ensemble has no teacher-forced loss; use with_loss=False")
        return self._view.evaluate(pairs, beam=beam, length_penalty=length_penalty, max_length=max_length,
                                   with_loss=False)
