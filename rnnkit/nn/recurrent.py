"""Multi-layer, optionally bidirectional recurrent layers: RNN, LSTM, GRU.

One class, :class:`Recurrent`, stacks the scanner (:mod:`rnnkit.nn.scan`) over
layers and directions for any cell; ``RNN``, ``LSTM`` and ``GRU`` only choose
the cell. Constructor arguments, parameter names, shapes, gate order and the
default initialisation are PyTorch's (``torch.nn.RNN/LSTM/GRU``), so a
``state_dict`` copies across one to one.

Shapes (T time steps, N batch, D input features, H hidden, L layers,
K = 2 if bidirectional else 1, G gates: 1 RNN, 4 LSTM, 3 GRU):

- input ``x``: (T, N, D), or (N, T, D) with ``batch_first``;
- output: (T, N, K*H) (batch-first likewise), the last layer's h at each step,
  directions concatenated [forward, reverse]; zero at padded steps;
- state: ``h`` of shape (L*K, N, H), for LSTM the pair ``(h, c)``; entry
  ``l*K + k`` is layer l, direction k;
- ``weight_ih_l{l}{_reverse}``: (G*H, D) for l = 0, (G*H, K*H) above;
  ``weight_hh_l{l}{_reverse}``: (G*H, H); ``bias_ih_*``, ``bias_hh_*``: (G*H,).

Layer l > 0 sees layer l-1's output after dropout (training mode only).

Variants (keyword arguments; see :mod:`rnnkit.nn.variants` for the equations):

- ``proj_size`` P (LSTM only, exactly ``torch.nn.LSTM(proj_size=P)``): h = (o * tanh(c)) W_hr^T,
  so ``h`` and the output have P features and ``c`` keeps H; ``weight_hh_l{l}`` is (4H, P),
  ``weight_ih_l{l}`` (4H, K*P) above layer 0, and ``weight_hr_l{l}{_reverse}`` (P, H) is added;
- ``variational_dropout`` p: one mask per sequence on each layer's input and on h_{t-1} in the
  recurrent product, the same at every step;
- ``weight_drop`` p: DropConnect on every ``weight_hh``, one mask per forward call;
- ``zoneout`` p (and ``zoneout_cell`` for LSTM's c, default the same p): each unit keeps its
  previous value with probability p in training, the expectation at evaluation;
- ``layer_norm`` (LSTM, GRU): layer normalisation of both products and of LSTM's c before its
  tanh (:mod:`rnnkit.nn.layernorm_cells`), adding ``ln_weight_ih_l{l}``, ``ln_weight_hh_l{l}``
  (G*H,) and for LSTM ``ln_weight_c_l{l}``, ``ln_bias_c_l{l}`` (H,);
- ``peephole`` (LSTM only): diagonal peephole weights ``weight_ph_l{l}{_reverse}`` (3H,) =
  [p_i, p_f, p_o] from c to the i, f, o gates (:mod:`rnnkit.nn.peephole`; ONNX packs [i, o, f]).

The three regularisers act in training mode only (zoneout's expectation at evaluation) and draw
their masks from the ``rng`` passed to :meth:`forward`.

Loops that feed each output back into the next input (decoders, sampling)
step a unidirectional stack with ``step_forward`` / ``step_backward`` /
``steps_backward`` (:mod:`rnnkit.nn.recurrent_step`).

Arrays of any library: the layer computes with the namespace of its input
(:mod:`rnnkit.nn.xp`), so after ``layer.to("cuda")`` (or any device, e.g.
``array_api_strict.Device("device1")``) it takes and returns that device's
arrays. Weights are initialised on the host (NumPy, from ``rng``), and so are
the masks of dropout and the regularisers, drawn from the ``rng`` passed to
:meth:`forward` and moved to the input's device: a seeded run on a device draws
what the CPU run draws. ``lengths`` are checked on the host and moved to the
input's device. On NumPy arrays the scans may run the compiled numba loops.
"""

from __future__ import annotations

import warnings
from typing import List, NamedTuple, Optional, Tuple, Union

import numpy as np

from ..checks import check_count, check_flag, check_generator, check_probability, check_seed
from ..errors import ShapeError
from .cells import CELLS
from .directions import scan_directions
from .module import Module
from .recurrent_inputs import RecurrentInputs
from .recurrent_step import RecurrentSteps
from .scan import ScanCache, ScanVariant, scan_backward
from .variants import RecurrentVariants, keep_mask, zoneout_probabilities
from .xp import (device_of, host_if_needed, is_numpy, namespace, numpy_dtype, parameter_dtype, to_device,
                 xp_dtype)

__all__ = ["Recurrent", "RNN", "LSTM", "GRU", "RecurrentCache"]

StateLike = Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]


class RecurrentCache(NamedTuple):
    scans: List[List[ScanCache]]          # [layer][direction]
    dropout_masks: List[Optional[np.ndarray]]  # scaled keep-masks applied to each layer's input (None for l=0)
    lengths: Optional[np.ndarray]
    batch_first: bool
    input_masks: List[Optional[np.ndarray]] = []     # variational dropout: (N, D_l) per layer, or None
    weight_masks: List[List[Optional[np.ndarray]]] = []  # weight drop: (G*H, P) per [layer][direction], or None
    layer: Tuple = ()                                  # the making layer's _signature(): backward checks it


def _described(signature: Tuple) -> str:
    """``Recurrent._signature()`` in words: "a GRU, 1 layer x 1 direction, hidden 5, float32"."""
    if len(signature) != 6:
        return "an unknown layer"
    mode, L, K, H, P, dtype = signature
    proj = f", projected to {P}" if P != H else ""
    article = "a" if mode == "GRU" else "an"                 # an LSTM, an RNN_TANH
    return f"{article} {mode}, {L} layer(s) x {K} direction(s), hidden {H}{proj}, {dtype}"


def _uniform(rng, shape, bound, dtype):
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _orthogonal(rng, n, dtype):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * np.sign(np.diag(r))).astype(dtype)   # sign fix makes the draw uniform (Haar)


class Recurrent(RecurrentInputs, RecurrentSteps, RecurrentVariants, Module):
    r"""A stack of recurrent layers running one cell type (see the module docstring).

    Parameters
    ----------
    mode : "RNN_TANH", "RNN_RELU", "LSTM" or "GRU"
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional :
        as in PyTorch.
    dtype : parameter dtype (float32 default; float64 for gradient checks).
    rng : ``numpy.random.Generator`` or int seed for the initialisation.
    forget_bias : LSTM only; if given, ``bias_ih``'s forget block is set to this
        value and ``bias_hh``'s to 0, so the total forget bias equals it (char-rnn
        and Keras use 1.0). Default: PyTorch's uniform init.
    recurrent_init : "uniform" (PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every
        weight and bias) or "orthogonal" (each gate's (H, H) block of
        ``weight_hh`` an independent random orthogonal matrix).
    backend : "auto", "numpy" or "numba" for this layer's scans; None (default)
        follows :func:`rnnkit.kernels.set_backend` / ``RNNKIT_BACKEND``.
    proj_size : LSTM only: 0 (none) or P < hidden_size, PyTorch's projection (see the module docstring).
    peephole : LSTM only: add peephole connections (see the module docstring).
    layer_norm : LSTM or GRU: layer-normalised cell (see the module docstring).
    variational_dropout, weight_drop, zoneout, zoneout_cell : probabilities of the regularisers
        (see the module docstring); zoneout_cell (LSTM's c) defaults to zoneout.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, dtype=np.float32, rng=None,
                 forget_bias: Optional[float] = None, recurrent_init: str = "uniform",
                 backend: Optional[str] = None, proj_size: int = 0, variational_dropout: float = 0.0,
                 weight_drop: float = 0.0, zoneout: float = 0.0, zoneout_cell: Optional[float] = None,
                 peephole: bool = False, layer_norm: bool = False):
        super().__init__()
        if mode not in CELLS:
            raise ValueError(f"mode: expected one of {sorted(CELLS)}, got {mode!r}")
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("num_layers", num_layers)):
            check_count(name, v, 1)
        check_probability("dropout", dropout)
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout applies between recurrent layers; with num_layers=1 it has no effect "
                          f"(dropout={dropout})", stacklevel=3)
        if recurrent_init not in ("uniform", "orthogonal"):
            raise ValueError(f"recurrent_init: expected 'uniform' or 'orthogonal', got {recurrent_init!r}")
        if forget_bias is not None and mode != "LSTM":
            raise ValueError(f"forget_bias applies to LSTM only, got mode {mode!r}")
        if backend not in (None, "auto", "numpy", "numba"):
            raise ValueError(f"backend: expected None, 'auto', 'numpy' or 'numba', got {backend!r}")
        for name, v in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional),
                        ("peephole", peephole), ("layer_norm", layer_norm)):
            check_flag(name, v)         # bool("False") is True: a string would build another model
        check_count("proj_size", proj_size, 0)
        if proj_size and mode != "LSTM":
            raise ValueError(f"proj_size applies to LSTM only, got mode {mode!r}")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size ({hidden_size}), got {proj_size}")
        for name, v in (("variational_dropout", variational_dropout), ("weight_drop", weight_drop),
                        ("zoneout", zoneout)):
            check_probability(name, v)
        if zoneout_cell is not None:
            if mode != "LSTM":
                raise ValueError(f"zoneout_cell applies to LSTM only (its cell state c), got mode {mode!r}")
            check_probability("zoneout_cell", zoneout_cell)
        if peephole and mode != "LSTM":
            raise ValueError(f"peephole applies to LSTM only, got mode {mode!r}")
        self.peephole = bool(peephole)
        if layer_norm and mode not in ("LSTM", "GRU"):
            raise ValueError(f"layer_norm applies to LSTM and GRU, got mode {mode!r}")
        if layer_norm and peephole:
            raise ValueError("layer_norm and peephole together are not supported; choose one")
        self.layer_norm = bool(layer_norm)
        self.proj_size = int(proj_size)
        self.variational_dropout = float(variational_dropout)
        self.weight_drop = float(weight_drop)
        self.zoneout = float(zoneout)
        self.zoneout_cell = None if zoneout_cell is None else float(zoneout_cell)
        self.backend = backend
        self.mode = mode
        self.cell = CELLS[mode]()
        self.input_size = int(input_size)
        self.hidden_size = H = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = K = 2 if bidirectional else 1
        self.dtype = parameter_dtype(dtype)                     # np.float32, "float64", torch.float32
        rng = np.random.default_rng(check_seed("rng", rng))
        self.output_size = P = self.proj_size or H              # the size of h and of each output
        G = self.cell.num_gates
        bound = 1.0 / np.sqrt(H)
        # Same creation order as PyTorch: layer, direction, then w_ih, w_hh, b_ih, b_hh, w_hr.
        for l in range(self.num_layers):
            D = self.input_size if l == 0 else K * P
            for k in range(K):
                sfx = self._suffix(l, k)
                self.add_parameter("weight_ih" + sfx, _uniform(rng, (G * H, D), bound, self.dtype))
                w_hh = _uniform(rng, (G * H, P), bound, self.dtype)
                if recurrent_init == "orthogonal":
                    w_hh = np.concatenate([_orthogonal(rng, H, self.dtype)[:, :P] for _ in range(G)])
                self.add_parameter("weight_hh" + sfx, w_hh)
                if self.bias:
                    b_ih = _uniform(rng, (G * H,), bound, self.dtype)
                    b_hh = _uniform(rng, (G * H,), bound, self.dtype)
                    if forget_bias is not None:
                        b_ih[H: 2 * H] = forget_bias
                        b_hh[H: 2 * H] = 0.0
                    self.add_parameter("bias_ih" + sfx, b_ih)
                    self.add_parameter("bias_hh" + sfx, b_hh)
                if self.proj_size:
                    self.add_parameter("weight_hr" + sfx, _uniform(rng, (P, H), bound, self.dtype))
                if self.peephole:
                    self.add_parameter("weight_ph" + sfx, _uniform(rng, (3 * H,), bound, self.dtype))
                if self.layer_norm:
                    for name, size in self._layer_norm_shapes():
                        init = np.zeros if name == "ln_bias_c" else np.ones
                        self.add_parameter(name + sfx, init(size, self.dtype))

    def _signature(self) -> Tuple:
        """What a forward cache must match for :meth:`backward`: (mode, layers, directions, H, P, dtype)."""
        return (self.mode, self.num_layers, self.num_directions, self.hidden_size, self.output_size, self.dtype.name)

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    def _weights(self, l: int, k: int):
        """(W_ih, W_hh, b_ih, b_hh) of layer l, direction k; the biases are None with bias=False."""
        sfx = self._suffix(l, k)
        W_ih, W_hh = getattr(self, "weight_ih" + sfx).data, getattr(self, "weight_hh" + sfx).data
        if not self.bias:
            return W_ih, W_hh, None, None
        return W_ih, W_hh, getattr(self, "bias_ih" + sfx).data, getattr(self, "bias_hh" + sfx).data

    # -- forward / backward ------------------------------------------------
    def _uses_dropout(self, rng) -> bool:
        """Whether dropout acts between layers now (training mode, p > 0, L > 1); it needs ``rng`` then."""
        check_generator("rng", rng)
        use = self.training and self.dropout > 0 and self.num_layers > 1
        if use and rng is None:
            raise ValueError("rng: dropout > 0 in training mode needs a numpy.random.Generator")
        return use

    def _dropout_mask(self, rng, shape):
        """Inverted-dropout keep-mask m / (1 - p), m ~ Bernoulli(1 - p), of ``shape``."""
        keep = 1.0 - self.dropout
        return (rng.random(shape) < keep).astype(self.dtype) / keep

    def forward(self, x, state: Optional[StateLike] = None, lengths=None, rng=None, *,
                need_cache: bool = True):
        """Run the stack over ``x``.

        Returns ``(output, state_n, cache)``; ``cache`` goes to :meth:`backward`
        (None with ``need_cache=False``: inference only, nothing kept for backward).
        ``lengths`` (N,) gives each sequence's number of real steps (padding after).
        ``rng`` (a ``numpy.random.Generator``) is required in training mode when
        ``dropout > 0``.
        """
        x, states0, lengths = self._check_input(x, state, lengths)
        T, N, _ = x.shape
        K = self.num_directions
        xp, dev = namespace(x), device_of(x)

        def put(a):                     # a host-drawn mask onto x's device (as it is for NumPy)
            return None if a is None else to_device(a, dev, xp)

        use_dropout = self._uses_dropout(rng)
        regularise = self._uses_regularisers(rng)
        back = None
        if not (need_cache or use_dropout or regularise):               # no masks: rows may be reordered
            x, states0, lengths, back = self._longest_first(x, states0, lengths)
        p_var, p_wd = (self.variational_dropout, self.weight_drop) if regularise else (0.0, 0.0)
        p_zone = self._zoneout_probs()
        sizes = self._state_sizes()
        zeros = tuple(xp.zeros((N, n), dtype=xp_dtype(xp, self.dtype), device=dev) for n in sizes)
        scans, masks, finals, in_masks, w_masks = [], [], [], [], []
        inp = x
        for l in range(self.num_layers):
            mask = None
            if l > 0 and use_dropout:
                mask = put(self._dropout_mask(rng, inp.shape))                  # (T, N, K*P)
                inp = inp * mask
            masks.append(mask)
            in_mask = put(keep_mask(rng, p_var, (N, inp.shape[2]), self.dtype)) if p_var else None  # (N, D_l)
            if in_mask is not None:
                inp = inp * in_mask                                             # the same at every step
            in_masks.append(in_mask)
            calls, layer_w = [], []
            for k in range(K):
                i = l * K + k
                s0 = tuple(z if s is None else s[i, ...] for s, z in zip(states0, zeros))
                W_ih, W_hh, b_ih, b_hh = self._scan_weights(l, k)
                w_mask = put(keep_mask(rng, p_wd, W_hh.shape, self.dtype)) if p_wd else None  # (G*H, P)
                if w_mask is not None:
                    W_hh = W_hh * w_mask
                layer_w.append(w_mask)
                h_mask = put(keep_mask(rng, p_var, (N, sizes[0]), self.dtype)) if p_var else None  # (N, P)
                zone = None if p_zone is None else tuple(map(put, zoneout_probabilities(
                    rng, p_zone, regularise, T, N, sizes, self.dtype)))
                variant = ScanVariant(self._projection(l, k), h_mask, zone)
                calls.append(dict(cell=self._cell_for(l, k), x=inp, state0=s0, W_ih=W_ih, W_hh=W_hh, b_ih=b_ih,
                                  b_hh=b_hh, lengths=lengths, reverse=(k == 1), variant=variant))
            results = scan_directions(calls, backend=self.backend, need_cache=need_cache)   # at once if it pays
            outs = [y for y, _, _ in results]
            scans.append([c for _, _, c in results])
            finals.extend(s_n for _, s_n, _ in results)
            w_masks.append(layer_w)
            inp = outs[0] if K == 1 else xp.concat(outs, axis=2)       # (T, N, K*P)
        out, state_n = self._caller_order(inp, self._state_out(finals), back)
        out = xp.permute_dims(out, (1, 0, 2)) if self.batch_first else out
        cache = (RecurrentCache(scans, masks, lengths, self.batch_first, in_masks, w_masks, self._signature())
                 if need_cache else None)
        return out, state_n, cache

    def backward(self, d_output, cache: RecurrentCache, d_state: Optional[StateLike] = None):
        """Gradients of the input and the initial state; parameter gradients are added to ``.grad``.

        ``d_output`` has the output's shape (or is None); ``d_state`` the final
        state's layout (or None). Returns ``(dx, d_state0)`` in the layouts of
        the input and the state.
        """
        if cache is None:
            raise ValueError("backward needs the cache of a forward call made with need_cache=True")
        if not isinstance(cache, RecurrentCache) or cache.layer != self._signature():
            made = _described(cache.layer) if isinstance(cache, RecurrentCache) else f"a {type(cache).__name__}"
            raise ValueError(f"backward: the cache is not from this layer's forward (it is from {made}; this layer "
                             f"is {_described(self._signature())}); pass the cache this layer's forward returned")
        scans, masks, _, batch_first, in_masks, w_masks, _ = cache
        H, K = self.output_size, self.num_directions
        T, N = scans[0][0].x.shape[:2]
        d_states_n = self._state_in(d_state, "d_state")
        for j, (d, n) in enumerate(zip(d_states_n, self._state_sizes())):
            if d is not None and np.shape(d) != (self.num_layers * K, N, n):
                raise ShapeError(f"d_state[{j}]: expected the final state's shape {(self.num_layers * K, N, n)}, "
                                 f"got {np.shape(d)}")
        dy = None
        xp = namespace(scans[0][0].x)                  # the fused caches keep x too
        if d_output is not None:
            dy = host_if_needed(d_output)
            xp = namespace(dy)
            if is_numpy(dy):
                dy = np.asarray(dy, dtype=self.dtype)
            elif numpy_dtype(dy.dtype) != self.dtype:
                dy = xp.astype(dy, xp_dtype(xp, self.dtype))
            expected = (N, T, K * H) if batch_first else (T, N, K * H)
            if dy.shape != expected:
                raise ShapeError(f"d_output: expected the output's shape {expected}, got {dy.shape}")
            if batch_first:
                dy = xp.permute_dims(dy, (1, 0, 2))
        d_finals = [None] * (self.num_layers * K)
        for l in range(self.num_layers - 1, -1, -1):
            d_in = None
            for k in range(K):
                i = l * K + k
                dy_k = None if dy is None else dy[:, :, k * H:(k + 1) * H]
                if dy_k is not None and is_numpy(dy_k):
                    dy_k = np.ascontiguousarray(dy_k)
                ds = tuple(None if d is None else d[i, ...] for d in d_states_n)
                dx, ds0, grads = scan_backward(dy_k, ds, scans[l][k])
                d_finals[i] = ds0
                w_mask = w_masks[l][k] if w_masks else None
                self._add_gradients(l, k, grads, w_mask)
                d_in = dx if d_in is None else d_in + dx
            if in_masks and in_masks[l] is not None:
                d_in = d_in * in_masks[l]
            if masks[l] is not None:
                d_in = d_in * masks[l]
            dy = d_in
        dx = xp.permute_dims(dy, (1, 0, 2)) if batch_first else dy
        return dx, self._state_out(d_finals)

    def extra_repr(self) -> str:
        extra = "".join(f", {n}={getattr(self, n)}" for n in ("proj_size", "peephole", "layer_norm", "variational_dropout",
                                                               "weight_drop", "zoneout", "zoneout_cell")
                        if getattr(self, n))
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, dropout={self.dropout}{extra}, dtype={self.dtype}")


class RNN(Recurrent):
    r"""Elman RNN stack: :math:`h_t = \phi(x_t W_{ih}^T + b_{ih} + h_{t-1} W_{hh}^T + b_{hh})`, φ = tanh or relu."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, **kw):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, **kw)


class LSTM(Recurrent):
    r"""LSTM stack (gates i, f, g, o): :math:`c_t = f \odot c_{t-1} + i \odot g,\ h_t = o \odot \tanh(c_t)`.

    State is the pair ``(h, c)``, each (L*K, N, H).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, **kw):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, **kw)


class GRU(Recurrent):
    r"""GRU stack (gates r, z, n): :math:`n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})),\ h' = (1-z) \odot n + z \odot h`."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, **kw):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, **kw)
