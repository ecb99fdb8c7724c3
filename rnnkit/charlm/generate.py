r"""Text generation: sampling (temperature, top-k, top-p), greedy decoding and beam search.

All three first *warm* the state on the prime text ``c_1 .. c_P``: one
forward pass over ``c_1 .. c_{P-1}`` (a single chunk, not a Python loop),
then ``c_P`` is the first input. Each later step feeds one character (T = 1)
and draws the next from

.. math::
    p_k \propto \exp(z_k / \tau) \quad\text{restricted to the top-k logits and to the
    smallest set of most likely characters whose mass reaches } p_{top},

with temperature τ. As τ -> 0 the distribution collapses onto the arg-max, so
``temperature=0`` *is* greedy decoding. Beam search keeps the ``beam`` most
likely continuations, scored by their summed log-probability, and returns the
best one of exactly ``length`` characters (all candidates have the same
length, so no length normalisation is needed).

With an empty prime the model starts from a newline (or, if the vocabulary
has none, from its first character); that start character is not part of the
output. Prime characters outside the vocabulary raise a :class:`DataError`.
"""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np

from ..checks import check_count, check_optional_count, check_real
from ..errors import HyperparameterError
from ..estimator import available_memory, flag_of
from ..runs import format_bytes
from ..nn import log_softmax
from ..nn.xp import to_host
from .model import CharLM

__all__ = ["warm_up", "stream", "sample_text", "beam_search", "check_sampling", "check_beam", "MAX_LENGTH",
           "MAX_BEAM", "MAX_BEAM_STEPS"]

MAX_LENGTH = 10 ** 7     # characters per call: 10 MB of text, hours of sampling
MAX_BEAM = 1000          # beams: far past the point where a wider beam still changes the result
# beams x characters of one search: its back-pointers (8 bytes each) stay below 7.5 GiB on any machine,
# so --beam 1000 --length 10000000 is refused even where 75 GiB happen to be free (it would run for hours)
MAX_BEAM_STEPS = 10 ** 9


def _bounded(name: str, value, low: int, high: int) -> int:
    n = check_count(flag_of(name), value, low)
    if n > high:
        raise HyperparameterError(f"{flag_of(name)} must be <= {high:,}, got {n!r}")
    return n


def check_sampling(length: int, temperature: float, top_k: Optional[int], top_p: Optional[float]) -> None:
    """Refuse bad generation settings, naming the flags of ``rnnkit charlm sample``."""
    _bounded("length", length, 0, MAX_LENGTH)
    check_real(flag_of("temperature"), temperature, 0.0)
    check_optional_count(flag_of("top_k"), top_k, 0)
    if top_p is not None:
        check_real(flag_of("top_p"), top_p, 0.0, 1.0, low_open=True)


def check_beam(beam: int, length: int) -> int:
    """``beam`` in [1, MAX_BEAM]; the search's back-pointers (8 bytes per beam and step) must fit in the
    available memory and in ``MAX_BEAM_STEPS``. Checked before anything is allocated."""
    if isinstance(beam, (int, np.integer)) and not isinstance(beam, bool) and beam == 0:   # 0.1's "0 = sample"
        raise HyperparameterError(f"{flag_of('beam')} must be >= 1, got 0: --beam N searches with N beams "
                                  "(1 = greedy); leave --beam out to sample")
    beam = _bounded("beam", beam, 1, MAX_BEAM)
    length = _bounded("length", length, 0, MAX_LENGTH)
    need, have = 8 * beam * length, available_memory()
    what = f"{flag_of('beam')} {beam} over {flag_of('length')} {length:,} needs about {format_bytes(need)} for its " \
           "back-pointers"
    if have is not None and need > have:
        raise HyperparameterError(f"{what}, but {format_bytes(have)} is available; use a smaller --beam or --length")
    if beam * length > MAX_BEAM_STEPS:
        raise HyperparameterError(f"{what}, more than the {format_bytes(8 * MAX_BEAM_STEPS)} one search may use "
                                  f"(--beam x --length at most {MAX_BEAM_STEPS:,}); use a smaller --beam or --length")
    return beam


def warm_up(model: CharLM, prime: str, n: int = 1):
    """State after reading all but the last prime character, and that character's id.

    Returns ``(last_id, state)`` for ``n`` identical streams.
    """
    if not prime:
        prime = "\n" if "\n" in model.vocab else model.vocab.chars[0]
    ids = model.vocab.encode(prime, what="the prime text (--prime)")
    state = model.initial_state(n)
    if len(ids) > 1:
        body = np.repeat(ids[:-1, None], n, axis=1)               # (P-1, n)
        _, state, _ = model.forward(body, state)
    return int(ids[-1]), state


def _next_id(logits: np.ndarray, temperature: float, top_k: Optional[int], top_p: Optional[float],
             rng: np.random.Generator) -> int:
    """Draw one id from logits (V,) as in the module docstring."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature                  # (V,)
    if top_k and top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        mass = np.cumsum(p[order]) / p.sum()
        keep = order[: int(np.searchsorted(mass, top_p)) + 1]    # smallest prefix reaching top_p
        kept = np.zeros_like(p)
        kept[keep] = p[keep]
        p = kept
    cdf = np.cumsum(p)                                            # inverse-CDF draw: one uniform per step
    k = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return min(k, z.size - 1)


def stream(model: CharLM, prime: str = "", length: int = 500, temperature: float = 1.0,
           top_k: Optional[int] = None, top_p: Optional[float] = None, seed=None) -> Iterator[str]:
    """An iterator over ``length`` generated characters (the prime itself is not repeated).

    Arguments and the prime are checked, and the state warmed, before this
    returns, so a bad prime fails here rather than at the first character.
    """
    check_sampling(length, temperature, top_k, top_p)
    rng = np.random.default_rng(seed)
    with model.eval_mode():
        cur, state = warm_up(model, prime)
    return _emit(model, cur, state, length, temperature, top_k, top_p, rng)


def _emit(model, cur, state, length, temperature, top_k, top_p, rng) -> Iterator[str]:
    chars = model.vocab.chars
    ids = np.empty(1, dtype=np.int64)
    with model.eval_mode():
        for _ in range(length):
            ids[0] = cur
            logits, state = model.step(ids, state)                   # (1, V)
            cur = _next_id(to_host(logits)[0], temperature, top_k, top_p, rng)   # drawn on the host
            yield chars[cur]


def sample_text(model: CharLM, prime: str = "", length: int = 500, temperature: float = 1.0,
                top_k: Optional[int] = None, top_p: Optional[float] = None, seed=None) -> str:
    """``length`` sampled characters following ``prime`` (same seed, same text)."""
    return "".join(stream(model, prime, length, temperature, top_k, top_p, seed))


def beam_search(model: CharLM, prime: str = "", length: int = 100, beam: int = 5) -> Tuple[str, float]:
    """The most likely continuation of ``length`` characters found with ``beam`` beams.

    Returns ``(text, log_probability)`` (natural log). All beams advance
    together as one batch of ``beam`` streams; each step keeps back-pointers
    (which beam, which character), and the best beam is traced back at the end.
    """
    check_sampling(length, 0.0, None, None)
    beam = check_beam(beam, length)
    with model.eval_mode():
        cur, state = warm_up(model, prime)
        V = len(model.vocab)
        cur = np.array([cur])                                      # (b,) current input per beam
        scores = np.zeros(1)                                       # (b,) log p of each beam so far
        src_of = np.zeros((length, beam), dtype=np.int32)          # (steps, B) beam each came from
        char_of = np.zeros((length, beam), dtype=np.int32)         # (steps, B) character it added
        for t in range(length):
            logits, state = model.step(cur, state)                # (b, V)
            logits = to_host(logits)                               # the search runs on the host
            total = (scores[:, None] + log_softmax(logits.astype(np.float64))).ravel()  # (b*V,)
            k = min(beam, total.size)
            top = np.argpartition(-total, k - 1)[:k]
            top = top[np.argsort(-total[top], kind="stable")]     # best first
            src, cur = np.divmod(top, V)                           # which beam, which character
            scores = total[top]
            src_of[t, :k], char_of[t, :k] = src, cur
            state = model.select_state(state, src)
    ids, b = np.zeros(length, dtype=np.int64), 0                   # trace the best beam back
    for t in range(length - 1, -1, -1):
        ids[t] = char_of[t, b]
        b = src_of[t, b]
    return model.vocab.decode(ids), float(scores[0])
