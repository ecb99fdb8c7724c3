"""rnnkit on CuPy against PyTorch on CUDA: training steps and inference passes, configs A-D, L, XL and the char LM.

    python benchmarks/gpu_bench.py [--out benchmarks/results/gpu_bench.json] [--rounds 30] [--device cuda:0]
                                   [--configs A B C D L XL] [--modes train inference]

Cases (sizes from :mod:`rnnkit.bench.cases` and :mod:`rnnkit.bench.charlm_case`):

- configs A-D (T, N, I, H) for each cell (lstm, gru, rnn), one layer, one direction: a training step is the
  forward pass and the backward pass down to the input (weight gradients included), from the same
  weights, input and upstream gradient on both sides; an inference pass (``--modes inference``) is the forward
  pass alone, keeping nothing for a backward (rnnkit ``need_cache=False``, PyTorch ``inference_mode``);
- larger shapes L (64, 256, 512, 1024) and XL (64, 1024, 1024, 2048), where a GPU's width starts to pay;
- the char LM (embedding 65 x 64, 2-layer LSTM 256, linear head, T 64, N 32): forward, cross-entropy,
  backward and an Adam update.

Both sides compute in float32 on the same GPU. Steps are timed interleaved (one rnnkit step, one
PyTorch step, case after case, round after round) after warm-up, each ended by a device synchronisation,
and the medians are reported, so a busy GPU or host slows both sides alike. Results go to a JSON file
(written atomically through rnnkit.io.atomic) and a table on stdout.

Without CuPy, a GPU or PyTorch with CUDA, the script says which in one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import numpy as np

from rnnkit.bench.cases import CONFIGS
from rnnkit.bench.charlm_case import CharLMCase
from rnnkit.errors import RnnkitError
from rnnkit.io.atomic import check_outputs, write_json
from rnnkit.nn.xp import resolve_device, to_device

CELLS = {"lstm": ("LSTM", "LSTM"), "gru": ("GRU", "GRU"), "rnn": ("RNN_TANH", "RNN")}
# sizes past the CPU table's, where a GPU's width starts to count: (T, N, I, H)
LARGE = {"L": (64, 256, 512, 1024), "XL": (64, 1024, 1024, 2048)}
SHAPES = {**CONFIGS, **LARGE}
MODES = ("train", "inference")


def _fail(message: str) -> None:
    print(f"gpu_bench: {message}", file=sys.stderr)
    sys.exit(2)


def _setup(device: str, tf32: bool = False):
    """(cupy, cupy device, torch, torch device) or a one-line exit naming what is missing.

    ``tf32``: both sides multiply on the tensor cores in TF32 (CuPy's ``CUPY_TF32``, read at its first product;
    PyTorch's cuDNN and cuBLAS switches); else both in strict float32. PyTorch's own default is TF32 in
    cuDNN (its RNNs) and float32 in cuBLAS, CuPy's float32 everywhere: left alone they would not compute
    the same thing."""
    os.environ["CUPY_TF32"] = "1" if tf32 else "0"
    if not device.startswith("cuda"):
        _fail(f"--device {device}: this benchmark compares GPUs; give cuda or cuda:K (rnnkit bench times the CPU)")
    try:
        cp, dev = resolve_device(device)
    except RnnkitError as e:
        _fail(str(e).replace(", or use --device cpu", ""))
    try:
        import torch
    except ImportError:
        _fail("PyTorch is not installed; the comparison needs torch with CUDA")
    if not torch.cuda.is_available():
        _fail(f"PyTorch {torch.__version__} sees no CUDA device (a CPU-only build?); install a CUDA build of torch")
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    from rnnkit.nn.module import Module
    if not hasattr(Module, "to"):
        _fail("this rnnkit cannot move a network to a device yet (Module.to: the array API engine core)")
    return cp, dev, torch, torch.device(f"cuda:{dev.id}")


def _recurrent_case(cell, T, N, I, H, cp, dev, torch, tdev, mode="train", seed=0):
    """Closures for one training step (or one inference pass: forward only, nothing kept for a backward) on
    each side, same weights, input and upstream gradient."""
    from rnnkit.nn import Recurrent

    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    cell_mode, torch_name = CELLS[cell]
    rng = np.random.default_rng(seed)
    layer = Recurrent(cell_mode, I, H, 1, dtype=np.float32, rng=seed)
    x_h = rng.standard_normal((T, N, I)).astype(np.float32)           # (T, N, I)
    dy_h = rng.standard_normal((T, N, H)).astype(np.float32)          # (T, N, H)
    twin = getattr(torch.nn, torch_name)(I, H, 1)
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.state_dict().items()})
    twin = twin.to(tdev).float()
    layer.to(dev)
    x, dy = to_device(x_h, dev, cp), to_device(dy_h, dev, cp)
    tx = torch.from_numpy(x_h).to(tdev).requires_grad_(True)
    tdy = torch.from_numpy(dy_h).to(tdev)

    def ours():
        layer.zero_grad()
        y, _, cache = layer.forward(x)
        layer.backward(dy, cache)
        dev.synchronize()

    def theirs():
        twin.zero_grad(set_to_none=False)
        tx.grad = None
        y, _ = twin(tx)
        y.backward(tdy)
        torch.cuda.synchronize(tdev)

    def ours_inference():
        layer.forward(x, need_cache=False)
        dev.synchronize()

    def theirs_inference():
        with torch.inference_mode():
            twin(tx)
        torch.cuda.synchronize(tdev)

    return (ours, theirs) if mode == "train" else (ours_inference, theirs_inference)


def _charlm_case(c: CharLMCase, cp, dev, torch, tdev, seed=0):
    from rnnkit.nn import LSTM, Embedding, Linear, Module, cross_entropy
    from rnnkit.optim import Adam

    class LM(Module):
        def __init__(self):
            super().__init__()
            self.embed = Embedding(c.vocab, c.embedding, rng=seed)
            self.rnn = LSTM(c.embedding, c.hidden, c.layers, rng=seed + 1)
            self.head = Linear(c.hidden, c.vocab, rng=seed + 2)

    lm = LM()
    rng = np.random.default_rng(seed)
    ids_h = rng.integers(0, c.vocab, (c.T + 1, c.N))                 # (T+1, N) one chunk and its targets

    class TorchLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(c.vocab, c.embedding)
            self.rnn = torch.nn.LSTM(c.embedding, c.hidden, c.layers)
            self.head = torch.nn.Linear(c.hidden, c.vocab)

    twin = TorchLM()
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in lm.state_dict().items()})
    twin = twin.to(tdev).float()
    lm.to(dev)
    opt = Adam(lm.parameters(), lr=2e-3)
    topt = torch.optim.Adam(twin.parameters(), lr=2e-3)
    ids, targets = to_device(ids_h[:-1], dev, cp), to_device(ids_h[1:], dev, cp)
    tids, ttargets = torch.from_numpy(ids_h[:-1]).to(tdev), torch.from_numpy(ids_h[1:]).to(tdev)

    def ours():
        lm.zero_grad()
        x, c_emb = lm.embed(ids)                                      # (T, N, E)
        h, _, c_rnn = lm.rnn.forward(x)                               # (T, N, H)
        logits, c_head = lm.head(h)                                   # (T, N, V)
        loss, d_logits = cross_entropy(logits, targets)               # one float read back, as in training
        dx, _ = lm.rnn.backward(lm.head.backward(d_logits, c_head), c_rnn)
        lm.embed.backward(dx, c_emb)
        opt.step()
        dev.synchronize()

    def theirs():
        topt.zero_grad(set_to_none=False)
        h, _ = twin.rnn(twin.embed(tids))
        loss = torch.nn.functional.cross_entropy(twin.head(h).reshape(-1, c.vocab), ttargets.reshape(-1))
        loss.backward()
        topt.step()
        loss.item()                                                   # the same read-back as rnnkit's
        torch.cuda.synchronize(tdev)

    return ours, theirs


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("benchmarks", "results", "gpu_bench.json"))
    ap.add_argument("--rounds", type=int, default=30, help="timed rounds per case (medians reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda", help="cuda or cuda:K")
    ap.add_argument("--configs", nargs="+", default=sorted(CONFIGS), choices=sorted(SHAPES),
                    help=f"the speed table's A-D, and larger shapes {LARGE} (T, N, I, H)")
    ap.add_argument("--modes", nargs="+", default=["train"], choices=MODES)
    ap.add_argument("--tf32", action="store_true",
                    help="both sides in TF32 on the tensor cores (default: both in strict float32)")
    ap.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    args = ap.parse_args(argv)
    try:
        check_outputs({"--out": args.out})
    except RnnkitError as e:
        _fail(str(e))
    cp, dev, torch, tdev = _setup(args.device, args.tf32)

    cases = {}
    with dev:
        for name in args.configs:
            T, N, I, H = SHAPES[name]
            for cell in args.cells:
                for mode in args.modes:
                    cases[f"{name} {cell} {mode}"] = _recurrent_case(cell, T, N, I, H, cp, dev, torch, tdev, mode)
        cases["charlm train step"] = _charlm_case(CharLMCase(), cp, dev, torch, tdev)
        for ours, theirs in cases.values():                           # compile kernels, fill caches
            for _ in range(args.warmup):
                ours()
                theirs()
        times = {k: {"rnnkit": [], "torch": []} for k in cases}
        for _ in range(args.rounds):
            for k, (ours, theirs) in cases.items():
                times[k]["rnnkit"].append(_time(ours))
                times[k]["torch"].append(_time(theirs))

    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    gpu = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    rows = []
    print(f"{gpu}, float32{' (TF32 products)' if args.tf32 else ''}, median of {args.rounds} interleaved rounds "
          "(ms per training step or inference pass)")
    print(f"{'case':24s} {'rnnkit':>10s} {'torch':>10s} {'ratio':>7s}")
    for k, t in times.items():
        ours_ms, theirs_ms = 1000 * float(np.median(t["rnnkit"])), 1000 * float(np.median(t["torch"]))
        rows.append({"case": k, "rnnkit_ms": ours_ms, "torch_ms": theirs_ms, "ratio": ours_ms / theirs_ms})
        print(f"{k:24s} {ours_ms:10.3f} {theirs_ms:10.3f} {ours_ms / theirs_ms:7.2f}")
    write_json(args.out, {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": gpu, "dtype": "float32", "tf32": args.tf32, "rounds": args.rounds, "warmup": args.warmup,
        "modes": args.modes,
        "cupy": cp.__version__, "torch": torch.__version__,
        "configs": {k: SHAPES[k] for k in args.configs},
        "charlm": CharLMCase().as_dict(), "results": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
