"""The benchmark cases: rnnkit's recurrent layers against torch.nn.RNN/LSTM/GRU on identical work.

A case is a cell, a shape (T, N, I, H), a mode (inference, or a training step:
forward and backward down to the input), a layer count, a direction count and
whether the batch has variable lengths. Both sides get the same weights, the
same input, the same upstream gradient, the same dtype and the same number of
threads; torch handles variable lengths with ``pack_padded_sequence`` (the
packing is part of what a torch user pays), rnnkit with ``lengths``.

FLOPs count the matrix products only (2 per multiply-add): per layer and
direction ``2 T N G H (D + H)`` forward, twice that again for backward
(input/state gradients and weight gradients).

The ``variants`` suite times the recurrent variants (:data:`VARIANTS`: projection,
peepholes, layer norm, variational dropout, weight drop, zoneout) against the plain
cell on configs A and D, rnnkit alone except the projection, which PyTorch has.
Their FLOPs are counted as the plain cell's.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..nn.shapes import CELL_MODES, GATES as MODE_GATES

__all__ = ["CONFIGS", "QUICK_CONFIG", "Case", "suite", "build", "GATES", "VARIANTS"]

CONFIGS: Dict[str, Tuple[int, int, int, int]] = {   # (T, N, I, H)
    "A": (64, 32, 64, 256),
    "B": (100, 64, 128, 512),
    "C": (50, 1, 65, 100),
    "D": (200, 16, 32, 128),
}
QUICK_CONFIG = ("Q", (8, 4, 8, 16))
CELLS = tuple(CELL_MODES)
MODES = ("inference", "train")
GATES = {cell: MODE_GATES[mode] for cell, mode in CELL_MODES.items()}
VARIANTS = {   # name -> (cells, Recurrent keywords); "proj" is proj_size = H/2
    "proj": (("lstm",), {}),
    "peephole": (("lstm",), {"peephole": True}),
    "layer_norm": (("lstm", "gru"), {"layer_norm": True}),
    "variational": (("lstm", "gru", "rnn"), {"variational_dropout": 0.25}),
    "weight_drop": (("lstm", "gru", "rnn"), {"weight_drop": 0.25}),
    "zoneout": (("lstm", "gru", "rnn"), {"zoneout": 0.1}),
}


@dataclass(frozen=True)
class Case:
    cell: str
    config: str
    T: int
    N: int
    I: int
    H: int
    mode: str
    layers: int = 1
    bidirectional: bool = False
    varlen: bool = False
    variant: str = ""                 # "" (the plain cell) or a key of VARIANTS

    @property
    def name(self) -> str:
        return (f"{self.config} {self.cell} {self.mode} L{self.layers} {'bi' if self.bidirectional else 'uni'}"
                f"{' varlen' if self.varlen else ''}{' ' + self.variant if self.variant else ''}")

    def layer_kw(self) -> dict:
        """The Recurrent keywords of the variant."""
        if self.variant == "proj":
            return {"proj_size": self.H // 2}
        return dict(VARIANTS[self.variant][1]) if self.variant else {}

    @property
    def tokens(self) -> int:
        return self.T * self.N

    def flops(self) -> float:
        K = 2 if self.bidirectional else 1
        G = GATES[self.cell]
        fwd = 0.0
        for layer in range(self.layers):
            D = self.I if layer == 0 else K * self.H
            fwd += K * 2.0 * self.T * self.N * G * self.H * (D + self.H)
        return fwd if self.mode == "inference" else 3.0 * fwd

    def as_dict(self) -> dict:
        return dict(asdict(self), name=self.name, flops=self.flops())


def suite(name: str = "standard", cells: Sequence[str] = CELLS, configs: Optional[Sequence[str]] = None,
          modes: Sequence[str] = MODES) -> List[Case]:
    """The cases of a suite, filtered by cell, config and mode.

    - ``standard``: every config, 1 layer, unidirectional, equal lengths; and on
      config A the three variants (2 layers; bidirectional; variable lengths);
    - ``full``: every combination of configs, layers 1-2, directions and lengths;
    - ``quick``: a tiny shape (T, N, I, H) = (8, 4, 8, 16), the plain case and one
      with 2 layers, both directions and variable lengths (a smoke test);
    - ``variants``: configs A and D (or ``configs``), 1 layer, the plain cell and each
      of its :data:`VARIANTS`.
    """
    for cell in cells:
        if cell not in CELLS:
            raise ValueError(f"cells (--cells): expected some of {', '.join(CELLS)}, got {cell!r}")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"modes (--modes): expected some of {', '.join(MODES)}, got {mode!r}")
    if name == "variants":
        chosen = ["A", "D"] if configs is None else list(configs)
        for c in chosen:
            if c not in CONFIGS:
                raise ValueError(f"configs (--configs): expected some of {', '.join(CONFIGS)}, got {c!r}")
        return [Case(cell, c, *CONFIGS[c], mode, variant=v) for c in chosen for cell in cells for mode in modes
                for v in ("",) + tuple(k for k, (allowed, _) in VARIANTS.items() if cell in allowed)]
    if name == "quick":
        if configs is not None:
            raise ValueError("configs (--configs) do not apply to the quick suite, which times one tiny shape; "
                             "leave out --quick (or --configs)")
        variants = [(1, False, False), (2, True, True)]
        shapes = {QUICK_CONFIG[0]: QUICK_CONFIG[1]}
    else:
        if name not in ("standard", "full"):
            raise ValueError(f"suite: expected 'quick', 'standard', 'full' or 'variants', got {name!r}")
        chosen = list(CONFIGS) if configs is None else list(configs)
        for c in chosen:
            if c not in CONFIGS:
                raise ValueError(f"configs (--configs): expected some of {', '.join(CONFIGS)}, got {c!r}")
        shapes = {c: CONFIGS[c] for c in chosen}
        variants = ([(1, False, False)] if name == "standard"
                    else list(itertools.product((1, 2), (False, True), (False, True))))
    cases = []
    for config, (T, N, I, H) in shapes.items():
        extra = [(2, False, False), (1, True, False), (1, False, True)] if name == "standard" and config == "A" else []
        for (layers, bi, varlen), cell, mode in itertools.product(variants + extra, cells, modes):
            if varlen and N == 1:
                continue           # one sequence has nothing to pad
            cases.append(Case(cell, config, T, N, I, H, mode, layers, bi, varlen))
    return cases


def _lengths(case: Case, rng: np.random.Generator) -> Optional[np.ndarray]:
    if not case.varlen:
        return None
    lengths = rng.integers(case.T // 2, case.T + 1, size=case.N)
    lengths[0] = case.T                                  # the batch's padded length is real for one sequence
    return lengths


def build(case: Case, torch_module=None, backend: Optional[str] = None, dtype=np.float32,
          seed: int = 0, onnx_threads: Optional[int] = None) -> Dict[str, Callable[[], object]]:
    """Closures running one iteration of the case: ``{"rnnkit": f}`` and, with torch, ``"torch": g``.

    With ``onnx_threads`` (an inference case in float32), also ``"onnxruntime"``:
    the same layer exported to ONNX, run on that many threads (:mod:`rnnkit.bench.onnx_side`).
    """
    from ..nn import Recurrent

    rng = np.random.default_rng(seed)
    layer = Recurrent(CELL_MODES[case.cell], case.I, case.H, case.layers, bidirectional=case.bidirectional,
                      dtype=dtype, rng=seed, backend=backend, **case.layer_kw())
    K = 2 if case.bidirectional else 1
    x = rng.standard_normal((case.T, case.N, case.I)).astype(dtype)
    lengths = _lengths(case, rng)
    dy = rng.standard_normal((case.T, case.N, K * layer.output_size)).astype(dtype)
    masks_rng = np.random.default_rng(seed + 1)            # the regularisers draw fresh masks every step
    if lengths is not None:
        dy *= (np.arange(case.T)[:, None] < lengths[None, :])[:, :, None]

    if case.mode == "inference":
        layer.eval()

        def rnnkit_step():
            return layer.forward(x, None, lengths, need_cache=False)[0]
    else:
        def rnnkit_step():
            layer.zero_grad()
            y, _, cache = layer.forward(x, None, lengths, rng=masks_rng)
            return layer.backward(dy, cache)[0]

    fns = {"rnnkit": rnnkit_step}
    if torch_module is not None and case.variant in ("", "proj"):      # PyTorch has no other variant
        fns["torch"] = _torch_step(case, layer, x, lengths, dy, torch_module)
    if onnx_threads is not None and case.mode == "inference" and np.dtype(dtype) == np.float32:
        from .onnx_side import ort_step
        fns["onnxruntime"] = ort_step(layer, x, lengths, onnx_threads)
    return fns


def _torch_step(case: Case, layer, x, lengths, dy, torch):
    kw = dict(num_layers=case.layers, bidirectional=case.bidirectional, **case.layer_kw())
    if case.cell == "rnn":
        module = torch.nn.RNN(case.I, case.H, nonlinearity="tanh", **kw)
    else:
        module = getattr(torch.nn, case.cell.upper())(case.I, case.H, **kw)
    module = module.to(torch.float64 if x.dtype == np.float64 else torch.float32)
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.state_dict().items()})
    xt = torch.from_numpy(x.copy())
    dyt = torch.from_numpy(dy.copy())
    lt = None if lengths is None else torch.from_numpy(np.asarray(lengths, np.int64))
    pack = torch.nn.utils.rnn

    def run(inp):
        if lt is None:
            return module(inp)[0]
        packed = pack.pack_padded_sequence(inp, lt, enforce_sorted=False)
        return pack.pad_packed_sequence(module(packed)[0], total_length=case.T)[0]

    if case.mode == "inference":
        module.eval()

        def torch_step():
            with torch.inference_mode():
                return run(xt)
        return torch_step

    xg = xt.clone().requires_grad_(True)

    def torch_step():
        module.zero_grad()
        xg.grad = None
        run(xg).backward(dyt)
        return xg.grad
    return torch_step
