"""Generation speed: characters/s of char-LM sampling, sentences/s of translation decoding; rnnkit against PyTorch.

The same untrained models on both sides (rnnkit's weights copied into small PyTorch
twins written here), float32, one thread each, timed interleaved (each round calls
every side once, the order rotated; medians, as ``rnnkit bench`` does):

- **char-LM sampling**: :class:`rnnkit.charlm.model.CharLM` (vocabulary 65, embedding 64,
  2-layer LSTM, hidden 256), one stream, 200 characters per call, temperature 1, each
  character drawn by the inverse CDF from the same numpy Generator on every side (so the
  sides draw the same text unless float rounding moves a draw across a boundary).
  ``rnnkit`` steps with ``step_forward(need_cache=False)`` (the compiled inference loops),
  ``rnnkit, per-step caches`` with the reference step that builds the cell caches
  (what generation ran before issue 14), ``torch`` with ``nn.LSTM`` under ``inference_mode``.
- **translation**: :class:`rnnkit.translate.model.Seq2Seq` (vocabularies 4,000, embedding 128,
  hidden 256, bidirectional 1-layer LSTM encoder, Bahdanau attention), a batch of 32 random
  sources of 8-20 tokens, at most 30 target tokens; ``greedy`` and ``beam_search`` (beam 5) of
  :mod:`rnnkit.translate.decode` against a PyTorch twin of the encoder, bridge and decoder step
  driving the same decoding loops (the beam's bookkeeping is copied from rnnkit's).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 python benchmarks/generation_speed.py \\
        --out benchmarks/results/generation_speed.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rnnkit.bench.timing import environment, interleaved, load_average, set_threads, summarize
from rnnkit.io.atomic import check_outputs, write_json


# -- character LM -------------------------------------------------------------------------------

def _draw(logits, rng):
    """Inverse-CDF draw from softmax(logits) (V,), float64: one uniform per character."""
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    return min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), z.size - 1)


def charlm_sides(torch, chars: int, seed: int):
    from rnnkit.charlm.data import Vocab
    from rnnkit.charlm.model import CharLM

    text = "".join(chr(32 + i) for i in range(65))
    model = CharLM(Vocab.from_text(text), hidden_size=256, num_layers=2, embedding_size=64, rng=seed)
    model.eval()

    def rnnkit_side(need_cache):
        def sample():
            rng = np.random.default_rng(seed)
            state, cur, out = None, 0, []
            for _ in range(chars):
                x, _ = model.embed.forward(np.array([[cur]]))                   # (1, 1, E)
                h, state, _ = model.rnn.step_forward(x[0], state, need_cache=need_cache)   # (1, H)
                logits, _ = model.head.forward(h)                                # (1, V)
                cur = _draw(logits[0], rng)
                out.append(cur)
            return out
        return sample

    emb = torch.nn.Embedding(len(model.vocab), 64)
    emb.weight.data = torch.from_numpy(model.embed.weight.data.copy())
    rnn = torch.nn.LSTM(64, 256, num_layers=2)
    rnn.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.rnn.state_dict().items()})
    head = torch.nn.Linear(256, len(model.vocab))
    head.weight.data = torch.from_numpy(model.head.weight.data.copy())
    head.bias.data = torch.from_numpy(model.head.bias.data.copy())

    def torch_side():
        rng = np.random.default_rng(seed)
        state, cur, out = None, 0, []
        with torch.inference_mode():
            for _ in range(chars):
                h, state = rnn(emb(torch.tensor([[cur]])), state)              # (1, 1, H)
                cur = _draw(head(h[0, 0]).numpy(), rng)
                out.append(cur)
        return out

    return {"rnnkit": rnnkit_side(False), "rnnkit, per-step caches": rnnkit_side(True), "torch": torch_side}


# -- translation ------------------------------------------------------------------------------

def _sources(rng, N, vocab):
    lengths = rng.integers(8, 21, N)
    src = np.zeros((lengths.max(), N), np.int64)                                # (S, N), PAD = 0 after the end
    for n, L in enumerate(lengths):
        src[:L, n] = rng.integers(4, vocab, L)
    return src, lengths


class TorchTranslator:
    """The Seq2Seq's encoder, bridge, Bahdanau decoder step and output layer in PyTorch, same weights."""

    def __init__(self, torch, model):
        self.torch = torch
        enc, dec = model.encoder, model.decoder
        t = lambda a: torch.from_numpy(np.array(a, copy=True))                  # noqa: E731
        self.emb_s, self.emb_t = t(enc.embedding.weight.data), t(dec.embedding.weight.data)
        self.rnn_e = torch.nn.LSTM(enc.rnn.input_size, enc.rnn.hidden_size, bidirectional=True)
        self.rnn_e.load_state_dict({k: t(v) for k, v in enc.rnn.state_dict().items()})
        self.rnn_d = torch.nn.LSTM(dec.rnn.input_size, dec.rnn.hidden_size)
        self.rnn_d.load_state_dict({k: t(v) for k, v in dec.rnn.state_dict().items()})
        self.bh = (t(enc.bridge_h.weight.data), t(enc.bridge_h.bias.data))
        self.bc = (t(enc.bridge_c.weight.data), t(enc.bridge_c.bias.data))
        att = dec.attention
        self.W, self.U, self.v = t(att.W.data), t(att.U.data), t(att.v.data)
        self.out = (t(dec.out.weight.data), t(dec.out.bias.data))

    def encode(self, src, src_len):
        torch = self.torch
        x = self.emb_s[torch.from_numpy(src)]                                    # (S, N, E)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.from_numpy(src_len), enforce_sorted=False)
        y, (hn, cn) = self.rnn_e(packed)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=src.shape[0])
        mem = y.transpose(0, 1).contiguous()                                     # (N, S, 2H)
        both = lambda f: torch.cat([f[0::2], f[1::2]], dim=2)                    # noqa: E731  (L, N, 2H)
        h = torch.tanh(both(hn) @ self.bh[0].T + self.bh[1])
        c = both(cn) @ self.bc[0].T + self.bc[1]
        mask = torch.from_numpy(np.arange(src.shape[0])[None, :] < src_len[:, None])
        return (mem, mem @ self.U.T, mask), (h, c)                                # keys once, as rnnkit's prepare

    def step(self, tokens, state, memory):
        """log-probabilities (N, V) as numpy, the attention weights, the new state."""
        torch = self.torch
        mem, keys, mask = memory
        h, c = state
        e = torch.tanh((h[-1] @ self.W.T)[:, None, :] + keys) @ self.v          # (N, S)
        w = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=1)
        ctx = torch.bmm(w[:, None, :], mem)[:, 0]                                # (N, 2H)
        x = torch.cat([self.emb_t[torch.from_numpy(tokens)], ctx], dim=1)
        y, (h, c) = self.rnn_d(x[None], (h, c))
        logits = torch.cat([y[0], ctx], dim=1) @ self.out[0].T + self.out[1]
        return torch.log_softmax(logits, dim=1).numpy(), w.numpy(), (h, c)

    @staticmethod
    def select(state, memory, index):
        h, c = state
        return (h[:, index], c[:, index]), tuple(m[index] for m in memory) if memory is not None else None


def torch_greedy(tt, src, src_len, max_length):
    from rnnkit.translate.data import EOS, SOS
    torch = tt.torch
    with torch.inference_mode():
        memory, state = tt.encode(src, src_len)
        N = src.shape[1]
        tokens = np.full(N, SOS, np.int64)
        out, finished = [], np.zeros(N, bool)
        for _ in range(max_length):
            logp, _, state = tt.step(tokens, state, memory)
            tokens = logp.argmax(axis=1)
            out.append(tokens)
            finished |= tokens == EOS
            if finished.all():
                break
    return np.stack(out, axis=1)


def torch_beam(tt, src, src_len, B, max_length):
    """rnnkit's beam search (alpha 0, n_best 1), its bookkeeping copied, the network steps in PyTorch."""
    from rnnkit.translate.data import EOS, SOS
    from rnnkit.translate.decode import _best
    torch = tt.torch
    N = src.shape[1]
    with torch.inference_mode():
        memory, state = tt.encode(src, src_len)
        expand = torch.from_numpy(np.repeat(np.arange(N), B))
        state, memory = tt.select(state, memory, expand)
        S = memory[0].shape[1]
        scores = np.full((N, B), -np.inf)
        scores[:, 0] = 0.0
        tokens = np.full(N * B, SOS, np.int64)
        hist, hist_w = np.zeros((N * B, 0), np.int64), np.zeros((N * B, 0, S))
        finished = [[] for _ in range(N)]
        done = np.zeros(N, bool)
        for t in range(max_length):
            logp, w, state = tt.step(tokens, state, memory)
            logp = logp.astype(np.float64)
            V = logp.shape[1]
            cand = (scores.reshape(N * B, 1) + logp).reshape(N, B * V)
            order = _best(cand, 2 * B)                  # rnnkit's selection (its stable-sort order)
            parents = np.zeros(N * B, np.int64)
            new_tokens = np.full(N * B, EOS, np.int64)
            new_scores = np.full((N, B), -np.inf)
            for n in range(N):
                if done[n]:
                    parents[n * B:(n + 1) * B] = n * B
                    continue
                alive = 0
                for j in order[n]:
                    s = cand[n, j]
                    if not np.isfinite(s) or alive == B:
                        break
                    b, y = divmod(int(j), V)
                    r = n * B + b
                    if y == EOS:
                        finished[n].append((float(s), [int(v) for v in hist[r]],
                                            np.concatenate([hist_w[r], w[r][None]])))
                    else:
                        parents[n * B + alive], new_tokens[n * B + alive], new_scores[n, alive] = r, y, s
                        alive += 1
                best = sorted((f[0] for f in finished[n]), reverse=True)
                if alive == 0 or (len(best) >= B and new_scores[n, 0] <= best[B - 1]):
                    done[n] = True
                else:
                    parents[n * B + alive:(n + 1) * B] = n * B
            hist = np.concatenate([hist[parents], new_tokens[:, None]], axis=1)
            hist_w = np.concatenate([hist_w[parents], w[parents][:, None]], axis=1)
            state, _ = tt.select(state, None, torch.from_numpy(parents))
            tokens, scores = new_tokens, new_scores
            if done.all():
                break
    return finished


def translate_sides(torch, N: int, max_length: int, beam: int, seed: int):
    from rnnkit.translate import decode
    from rnnkit.translate.data import EOS
    from rnnkit.translate.model import Seq2Seq

    model = Seq2Seq(4000, 4000, embedding_size=128, hidden_size=256, attention="bahdanau", rng=seed)
    src, src_len = _sources(np.random.default_rng(seed), N, 4000)
    tt = TorchTranslator(torch, model)
    greedy = {"rnnkit": lambda: decode.greedy(model, src, src_len, max_length),
              "torch": lambda: torch_greedy(tt, src, src_len, max_length)}
    beams = {"rnnkit": lambda: decode.beam_search(model, src, src_len, beam, 1, 0.0, max_length),
             "torch": lambda: torch_beam(tt, src, src_len, beam, max_length)}
    ours = [h.tokens for h in greedy["rnnkit"]()]
    theirs = [list(row[:list(row).index(EOS)] if EOS in row else row) for row in greedy["torch"]()]
    agree = float(np.mean([list(map(int, a)) == list(map(int, b)) for a, b in zip(ours, theirs)]))
    return greedy, beams, agree


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="JSON results (written atomically)")
    p.add_argument("--chars", type=int, default=200)
    p.add_argument("--sentences", type=int, default=32)
    p.add_argument("--max-length", type=int, default=30)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--target-seconds", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.out:
        check_outputs({"--out": args.out}, examples={"--out": "generation_speed.json"})
    import torch
    threads = set_threads(1, torch)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": threads,
              "environment": environment(torch), "load_average_start": load_average(), "args": vars(args)}

    lm = charlm_sides(torch, args.chars, args.seed)
    texts = {k: f() for k, f in lm.items()}
    samples = interleaved(lm, target_s=args.target_seconds, min_reps=5)
    result["charlm_sampling"] = {
        "same_text_as_torch": {k: texts[k] == texts["torch"] for k in texts if k != "torch"},
        "sides": {k: dict(summarize(v), chars_per_s=args.chars / float(np.median(v))) for k, v in samples.items()}}
    print("char-LM sampling (chars/s): " + ", ".join(f"{k} {v['chars_per_s']:,.0f}"
                                                     for k, v in result["charlm_sampling"]["sides"].items()))

    greedy, beams, agree = translate_sides(torch, args.sentences, args.max_length, args.beam, args.seed)
    for name, fns in (("greedy", greedy), ("beam", beams)):
        samples = interleaved(fns, target_s=args.target_seconds, min_reps=5)
        sides = {k: dict(summarize(v), sentences_per_s=args.sentences / float(np.median(v)))
                 for k, v in samples.items()}
        result[f"translate_{name}"] = {"sides": sides, "speedup": sides["torch"]["median_ms"] / sides["rnnkit"]["median_ms"]}
        print(f"translation {name} (sentences/s): " + ", ".join(f"{k} {v['sentences_per_s']:,.1f}"
                                                                for k, v in sides.items()))
    result["translate_greedy"]["same_tokens_as_torch"] = agree
    cs = result["charlm_sampling"]["sides"]
    result["charlm_sampling"]["speedup"] = cs["torch"]["median_ms"] / cs["rnnkit"]["median_ms"]
    result["load_average_end"] = load_average()
    if args.out:
        write_json(args.out, result, what="--out")
        print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
