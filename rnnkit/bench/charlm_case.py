"""End-to-end case: a character-level language model, built here from the engine's pieces, against PyTorch.

The model is char-rnn's: embedding (V, E), a 2-layer LSTM (H), a linear head
to V logits, softmax cross-entropy, Adam. It is assembled directly from
:mod:`rnnkit.nn` and :mod:`rnnkit.optim` (not from :mod:`rnnkit.charlm`, so
the benchmark measures the engine), and the PyTorch twin gets the same
weights. Two measurements:

- a training step on a (T, N) batch: forward, loss, backward, Adam update;
- sampling at batch 1, one character per step with the state carried
  (embedding, LSTM step, head, softmax, draw), in characters per second; with
  onnxruntime installed also the same model exported to ONNX, stepped by onnxruntime.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional

import numpy as np

__all__ = ["CharLMCase", "build_training", "build_sampling"]


@dataclass(frozen=True)
class CharLMCase:
    vocab: int = 65            # tiny-shakespeare's character set
    embedding: int = 64
    hidden: int = 256
    layers: int = 2
    T: int = 64
    N: int = 32
    sample_chars: int = 200

    def as_dict(self) -> dict:
        return asdict(self)

    def flops(self) -> float:
        """Training-step matrix FLOPs: LSTM forward+backward (3x forward) and the head (3x)."""
        G, H = 4, self.hidden
        fwd = sum(2.0 * self.T * self.N * G * H * ((self.embedding if l == 0 else H) + H) for l in range(self.layers))
        fwd += 2.0 * self.T * self.N * H * self.vocab
        return 3.0 * fwd


class _RnnkitLM:
    def __init__(self, c: CharLMCase, seed: int):
        from ..nn import LSTM, Embedding, Linear

        self.embed = Embedding(c.vocab, c.embedding, rng=seed)
        self.rnn = LSTM(c.embedding, c.hidden, c.layers, rng=seed + 1)
        self.head = Linear(c.hidden, c.vocab, rng=seed + 2)
        self.params = self.embed.parameters() + self.rnn.parameters() + self.head.parameters()

    def train_step(self, ids, targets, opt):
        from ..nn import cross_entropy

        opt.zero_grad()
        x, c_emb = self.embed.forward(ids)                  # (T, N, E)
        h, _, c_rnn = self.rnn.forward(x)                   # (T, N, H)
        logits, c_head = self.head.forward(h)               # (T, N, V)
        loss, d_logits = cross_entropy(logits, targets)
        dx, _ = self.rnn.backward(self.head.backward(d_logits, c_head), c_rnn)
        self.embed.backward(dx, c_emb)
        opt.step()
        return loss


def _torch_lm(torch, c: CharLMCase, lm: _RnnkitLM):
    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(c.vocab, c.embedding)
            self.rnn = torch.nn.LSTM(c.embedding, c.hidden, c.layers)
            self.head = torch.nn.Linear(c.hidden, c.vocab)

    m = LM()
    with torch.no_grad():
        m.embed.weight.copy_(torch.from_numpy(lm.embed.weight.data))
        m.rnn.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in lm.rnn.state_dict().items()})
        m.head.weight.copy_(torch.from_numpy(lm.head.weight.data))
        m.head.bias.copy_(torch.from_numpy(lm.head.bias.data))
    return m


def build_training(c: CharLMCase, torch_module=None, seed: int = 0) -> Dict[str, Callable[[], float]]:
    """Closures doing one training step each (they keep training the same model; loss values are returned)."""
    from ..optim import Adam

    rng = np.random.default_rng(seed)
    data = rng.integers(0, c.vocab, size=(c.T + 1, c.N))
    ids, targets = data[:-1], data[1:]                      # (T, N) each
    lm = _RnnkitLM(c, seed)
    opt = Adam(lm.params, lr=2e-3)
    fns = {"rnnkit": lambda: lm.train_step(ids, targets, opt)}
    if torch_module is not None:
        torch = torch_module
        m = _torch_lm(torch, c, lm)
        topt = torch.optim.Adam(m.parameters(), lr=2e-3)
        ti, tt = torch.from_numpy(ids), torch.from_numpy(targets)

        def torch_step():
            topt.zero_grad()
            h, _ = m.rnn(m.embed(ti))
            loss = torch.nn.functional.cross_entropy(m.head(h).reshape(-1, c.vocab), tt.reshape(-1))
            loss.backward()
            topt.step()
            return loss.item()
        fns["torch"] = torch_step
    return fns


def _onnx_sampler(c: CharLMCase, lm: _RnnkitLM, seed: int, threads: int) -> Callable[[], list]:
    """The same model exported as a character LM (:func:`rnnkit.io.onnx_export.to_onnx`), sampled through
    onnxruntime one step (T = 1) at a time with the state fed back, with the same draws as rnnkit's side."""
    import onnxruntime as ort

    from ..charlm.data import Vocab
    from ..charlm.model import CharLM
    from ..io.onnx_export import to_onnx
    from ..nn import softmax

    net = CharLM(Vocab([chr(0x100 + i) for i in range(c.vocab)]), cell="lstm", hidden_size=c.hidden,
                 num_layers=c.layers, embedding_size=c.embedding, rng=seed)
    weights = {"embed.weight": lm.embed.weight.data, "head.weight": lm.head.weight.data, "head.bias": lm.head.bias.data}
    weights.update({"rnn." + k: v for k, v in lm.rnn.state_dict().items()})
    net.load_state_dict(weights)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = int(threads), 1, 3
    sess = ort.InferenceSession(to_onnx(net).SerializeToString(), opts, providers=["CPUExecutionProvider"])
    zeros = np.zeros((c.layers, 1, c.hidden), np.float32)

    def onnx_sample():
        rng = np.random.default_rng(seed)
        ids, h, cc, out = np.zeros((1, 1), np.int64), zeros, zeros, []
        for _ in range(c.sample_chars):
            logits, h, cc = sess.run(None, {"ids": ids, "h0": h, "c0": cc})      # (1, 1, V), state
            p = softmax(logits[0, 0].astype(np.float64))
            cur = min(int(np.searchsorted(np.cumsum(p), rng.random() * p.sum())), c.vocab - 1)
            ids[0, 0] = cur
            out.append(cur)
        return out
    return onnx_sample


def build_sampling(c: CharLMCase, torch_module=None, seed: int = 0,
                   onnx_threads: Optional[int] = None) -> Dict[str, Callable[[], str]]:
    """Closures each generating ``c.sample_chars`` characters at batch 1 (ids; temperature 1).

    With ``onnx_threads``, also ``"onnxruntime"``: the same model exported to ONNX (:func:`_onnx_sampler`).
    """
    from ..nn import softmax

    lm = _RnnkitLM(c, seed)
    lm.rnn.eval()

    def rnnkit_sample():
        rng = np.random.default_rng(seed)
        state, cur, out = None, 0, []
        for _ in range(c.sample_chars):
            x, _ = lm.embed.forward(np.array([[cur]]))          # (1, 1, E)
            h, state, _ = lm.rnn.forward(x, state, need_cache=False)
            logits, _ = lm.head.forward(h[0])                   # (1, V)
            p = softmax(logits[0].astype(np.float64))
            cur = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum()))
            cur = min(cur, c.vocab - 1)
            out.append(cur)
        return out

    fns = {"rnnkit": rnnkit_sample}
    if torch_module is not None:
        torch = torch_module
        m = _torch_lm(torch, c, lm).eval()

        def torch_sample():
            gen = torch.Generator().manual_seed(seed)
            state, cur, out = None, torch.zeros((1, 1), dtype=torch.long), []
            with torch.inference_mode():
                for _ in range(c.sample_chars):
                    h, state = m.rnn(m.embed(cur), state)
                    p = torch.softmax(m.head(h[0]), dim=-1)      # (1, V)
                    cur = torch.multinomial(p, 1, generator=gen)  # (1, 1)
                    out.append(int(cur))
            return out
        fns["torch"] = torch_sample
    if onnx_threads is not None:
        fns["onnxruntime"] = _onnx_sampler(c, lm, seed, onnx_threads)
    return fns
