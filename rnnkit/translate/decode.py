r"""Greedy and beam-search decoding, batched over sentences, returning attention weights.

Greedy decoding picks :math:`\hat y_t = \arg\max_y \log p(y \mid \hat y_{<t}, x)` until <eos>.

Beam search keeps the B best partial hypotheses per sentence by total log
probability; a hypothesis that emits <eos> is finished and ranked by the length
penalty of Wu et al. (2016):

.. math::
    s(Y) = \frac{\log P(Y \mid X)}{lp(Y)}, \qquad lp(Y) = \frac{(5 + |Y|)^\alpha}{(5 + 1)^\alpha}

(|Y| counts <eos>; α = 0 ranks by log probability). A sentence's search stops
when no live beam can still enter its B best finished hypotheses (stopping at
the first B finished ones instead would let short, improbable hypotheses end
the search before a long, likely one finishes), and every search stops at
``max_length`` tokens, when the unfinished beams join the candidates. All beams of all sentences run
through the decoder as one batch of N*B rows. With B = 1 beam search is greedy
decoding, token for token.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional

import numpy as np

from ..checks import check_count, check_real
from ..errors import HyperparameterError
from ..estimator import flag_of
from ..nn.attention import Memory
from ..nn.losses import log_softmax
from .data import EOS, PAD, SOS

__all__ = ["Hypothesis", "greedy", "beam_search", "length_penalty", "check_decoding", "decoding_bytes", "MAX_BEAM",
           "MAX_LENGTH"]


class Hypothesis(NamedTuple):
    tokens: List[int]          # target ids, without <sos> and <eos>
    log_prob: float            # log P(Y | X), <eos> included when finished
    score: float               # log_prob / lp(Y): what the beam ranks by
    weights: np.ndarray        # (output steps, source length): attention for each emitted token (<eos> included)
    finished: bool             # ended with <eos> (False: cut at max_length)


MAX_BEAM = 1000          # beams per sentence: far beyond any useful search, and (N*B, V) stays in memory
MAX_LENGTH = 10000      # target tokens per translation


def check_decoding(*, beam: int = 1, n_best: int = 1, length_penalty: float = 0.0,
                   max_length: Optional[int] = None) -> None:
    """Refuse decoding settings that cannot work or would run away, naming the flag."""
    beam = check_count(flag_of("beam"), beam, 1)
    if beam > MAX_BEAM:
        raise HyperparameterError(f"{flag_of('beam')} must be <= {MAX_BEAM}, got {beam}; "
                                  "beams of 5 to 10 are usual")
    n_best = check_count(flag_of("n_best"), n_best, 1)
    if n_best > beam:
        raise HyperparameterError(f"{flag_of('n_best')} must be <= the beam size {beam}, got {n_best}; "
                                  "raise --beam too")
    if length_penalty is not None:
        check_real(flag_of("length_penalty"), length_penalty)
    if max_length is not None:
        _check_max_length(max_length)


def decoding_bytes(n: int, beam: int, max_length: int, src_len: int, hidden: int, directions: int,
                   attention: int, layers: int, vocab: int) -> int:
    """Bytes a search over ``n`` sentences keeps at its longest, R = n * beam rows, T = max_length steps:

        tokens (R, T) int64 and attention weights (R, T, S) float64, each twice while extended,
        plus the finished hypotheses' copies of both (up to 2 * beam per sentence and step),
        the memory (R, S, K*H) and its keys (R, S, A) float32, the states (R, 2*L*H),
        and the step's log-probabilities, candidates and their order (R, V) float64/int64.
    """
    R, T, S = n * beam, max_length, src_len
    history = 2 * R * T * (8 + 8 * S)                        # hist, hist_w and their extended copies
    finished = R * T * (8 + 8 * S)                           # finished hypotheses copy their rows
    memory = 4 * R * S * (directions * hidden + attention)   # (R, S, K*H) values, (R, S, A) keys
    step = 8 * R * (4 * vocab + 4 * layers * hidden)         # logp, cand, argsort, states
    return int(history + finished + memory + step)


def length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha


def _never_emitted(logp: np.ndarray) -> np.ndarray:
    """``logp`` with <pad> and <sos> ruled out (-inf): they are inputs, never outputs. An undertrained model
    could pick them, and the text (which drops them) came out shorter than its attention weights."""
    logp[:, PAD] = logp[:, SOS] = -np.inf
    return logp


def greedy(model, src: np.ndarray, src_len: np.ndarray, max_length: int = 50) -> List[Hypothesis]:
    """The greedy translation of each source in the batch ``src`` (S, N)."""
    _check_max_length(max_length)
    N = src.shape[1]
    dec = model.decoder
    with model.eval_mode():
        mem, dstate, _ = model.encode(src, src_len)
        project = _output_layer(dec)                                   # packed once for every step
        tokens = np.full(N, SOS, dtype=np.int64)
        out_tokens, out_w = [], []
        log_prob = np.zeros(N)
        finished = np.zeros(N, dtype=bool)
        for _ in range(max_length):
            out, w, dstate, _ = dec.step(tokens, dstate, mem, need_cache=False)
            logp = _never_emitted(log_softmax(project(out)))           # (N, V)
            tokens = logp.argmax(axis=1)
            log_prob += np.where(finished, 0.0, logp[np.arange(N), tokens])
            out_tokens.append(tokens)
            out_w.append(w)
            finished |= tokens == EOS
            if finished.all():
                break
    ys = np.stack(out_tokens, axis=1)                                  # (N, T)
    ws = np.stack(out_w, axis=1)                                       # (N, T, S)
    hyps = []
    for n in range(N):
        row = list(ys[n])
        done = EOS in row
        L = row.index(EOS) if done else len(row)
        steps = L + 1 if done else L
        hyps.append(Hypothesis([int(t) for t in row[:L]], float(log_prob[n]), float(log_prob[n]),
                               ws[n, :steps, :src_len[n]], done))
    return hyps


def _output_layer(dec):
    """``out -> dec.logits(out)`` for one decoding call (tied embeddings: through ``out_proj`` first), the
    weights packed once for the compiled product where it runs
    (:func:`rnnkit.kernels.projection.packed_linear`; they cannot change while decoding), else the layer itself."""
    if hasattr(dec, "with_output_layers"):                             # an ensemble: each member's, packed
        return dec.with_output_layers(_output_layer)
    try:
        from ..kernels.projection import packed_linear
    except ImportError:                                                # no numba: the layer itself
        return dec.logits
    out_layer = packed_linear(dec.out)
    if "out_proj" not in dec._modules:
        return out_layer
    proj = packed_linear(dec.out_proj)                                 # tied: out -> (N, E) first
    return lambda out: out_layer(proj(out))


def _best(cand: np.ndarray, k: int) -> np.ndarray:
    """``np.argsort(-cand, axis=1, kind="stable")[:, :k]`` (N, k) without sorting whole rows of B*V: per row,
    the entries at least as good as its k-th best (a partition), stably sorted (ties by index, as there)."""
    neg = -cand                                                        # (N, B*V)
    if k >= neg.shape[1]:
        return np.argsort(neg, axis=1, kind="stable")[:, :k]
    kth = np.partition(neg, k - 1, axis=1)[:, k - 1]                   # (N,) the k-th smallest of each row
    order = np.empty((neg.shape[0], k), np.int64)
    for n in range(neg.shape[0]):
        idx = np.flatnonzero(neg[n] <= kth[n])                         # ascending: ties stay in index order
        if idx.size < k:                                               # NaNs: the full sort puts them last
            order[n] = np.argsort(neg[n], kind="stable")[:k]
            continue
        order[n] = idx[np.argsort(neg[n, idx], kind="stable")[:k]]
    return order


def _expand(mem: Memory, index: np.ndarray) -> Memory:
    return Memory(mem.values[index], mem.keys[index], None if mem.mask is None else mem.mask[index])


def _check_max_length(max_length) -> None:
    n = check_count(flag_of("max_length"), max_length, 1)
    if n > MAX_LENGTH:
        raise HyperparameterError(f"{flag_of('max_length')} must be <= {MAX_LENGTH} tokens, got {n}")


def _cannot_improve(finished: List[Hypothesis], best_alive: float, B: int, alpha: float, max_length: int) -> bool:
    """True when no live beam can enter the B best finished hypotheses any more.

    Extending a hypothesis only lowers its log probability (a negative number),
    while the length penalty grows with the length, so ``best_alive / lp(max_length)``
    bounds every score a live beam can still reach.
    """
    if len(finished) < B:
        return False
    kth = sorted((h.score for h in finished), reverse=True)[B - 1]
    return best_alive / length_penalty(max_length, alpha) <= kth


def beam_search(model, src: np.ndarray, src_len: np.ndarray, beam_size: int = 5, n_best: int = 1,
                alpha: float = 0.0, max_length: int = 50) -> List[List[Hypothesis]]:
    """The ``n_best`` best hypotheses of each source in ``src`` (S, N), best first."""
    _check_max_length(max_length)
    check_decoding(beam=beam_size, n_best=n_best, length_penalty=alpha)
    N, B = src.shape[1], beam_size
    dec = model.decoder
    with model.eval_mode():
        mem, dstate, _ = model.encode(src, src_len)
        expand = np.repeat(np.arange(N), B)                            # row n*B + b is beam b of sentence n
        mem, dstate = _expand(mem, expand), dstate.select(expand)
        project = _output_layer(dec)
        S = mem.values.shape[1]
        scores = np.full((N, B), -np.inf)
        scores[:, 0] = 0.0                                             # one live beam to start: no duplicates
        tokens = np.full(N * B, SOS, dtype=np.int64)
        hist = np.zeros((N * B, 0), dtype=np.int64)                    # (N*B, t) tokens so far
        hist_w = np.zeros((N * B, 0, S))                               # (N*B, t, S) their attention
        finished: List[List[Hypothesis]] = [[] for _ in range(N)]
        done = np.zeros(N, dtype=bool)
        for t in range(max_length):
            out, w, dstate, _ = dec.step(tokens, dstate, mem, need_cache=False)
            logp = _never_emitted(log_softmax(project(out)).astype(np.float64))   # (N*B, V)
            V = logp.shape[1]
            cand = (scores.reshape(N * B, 1) + logp).reshape(N, B * V)  # (N, B*V)
            order = _best(cand, 2 * B)                                 # 2B: enough to refill B after <eos>s
            parents = np.zeros(N * B, dtype=np.int64)
            new_tokens = np.full(N * B, EOS, dtype=np.int64)
            new_scores = np.full((N, B), -np.inf)
            for n in range(N):
                if done[n]:
                    parents[n * B:(n + 1) * B] = n * B                 # keep shapes; the rows are ignored
                    continue
                alive = 0
                for j in order[n]:
                    s = cand[n, j]
                    if not np.isfinite(s) or alive == B:
                        break
                    b, y = divmod(int(j), V)
                    r = n * B + b
                    if y == EOS:
                        L = t + 1
                        finished[n].append(Hypothesis([int(v) for v in hist[r]], float(s),
                                                      float(s / length_penalty(L, alpha)),
                                                      np.concatenate([hist_w[r], w[r][None]])[:, :src_len[n]], True))
                    else:
                        parents[n * B + alive] = r
                        new_tokens[n * B + alive] = y
                        new_scores[n, alive] = s
                        alive += 1
                if alive == 0 or _cannot_improve(finished[n], new_scores[n, 0], B, alpha, max_length):
                    done[n] = True
                else:
                    parents[n * B + alive:(n + 1) * B] = n * B        # unused slots: score -inf, never chosen
            hist = np.concatenate([hist[parents], new_tokens[:, None]], axis=1)
            hist_w = np.concatenate([hist_w[parents], w[parents][:, None]], axis=1)
            dstate = dstate.select(parents)
            tokens, scores = new_tokens, new_scores
            if done.all():
                break
    results = []
    for n in range(N):
        hyps = list(finished[n])
        if len(hyps) < n_best:                                         # cut at max_length: unfinished beams too
            for b in range(B):
                if np.isfinite(scores[n, b]) and not done[n]:
                    r = n * B + b
                    hyps.append(Hypothesis([int(v) for v in hist[r]], float(scores[n, b]),
                                           float(scores[n, b] / length_penalty(hist.shape[1], alpha)),
                                           hist_w[r][:, :src_len[n]], False))
        hyps.sort(key=lambda h: -h.score)
        results.append(hyps[:n_best])
    return results
