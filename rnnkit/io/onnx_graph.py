r"""Recurrent stacks as ONNX graphs: each layer one of ONNX's own ``RNN``, ``LSTM`` or ``GRU`` operators.

rnnkit's layers keep PyTorch's weight layout; ONNX's operators want theirs.
Per layer l, with K directions stacked on a leading axis:

- ``W`` (K, G*H, D) from ``weight_ih_l{l}[_reverse]``, ``R`` (K, G*H, H) from
  ``weight_hh_...``, ``B`` (K, 2*G*H) = [b_ih, b_hh] (the gate blocks of each
  reordered the same way);
- gate blocks reordered: LSTM i, f, g, o -> ONNX i, o, f, c (blocks 0, 3, 1, 2);
  GRU r, z, n -> ONNX z, r, h (blocks 1, 0, 2) with ``linear_before_reset = 1``,
  which is the form rnnkit (and PyTorch, cuDNN) compute,
  :math:`n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn}))`;
  RNN has one block and ``activations`` Tanh or Relu;
- ``P`` (K, 3H) from a peephole LSTM's ``weight_ph_...`` (3H,): rnnkit's
  [p_i, p_f, p_o] -> ONNX's [p_i, p_o, p_f] (blocks 0, 2, 1). ONNX's LSTM applies
  P_i and P_f to the cell state entering the step and P_o to the new one, as
  :mod:`rnnkit.nn.peephole` does.

ONNX's ``Y`` is (T, K, N, H); rnnkit's output (T, N, K*H) is ``Y`` transposed to
(T, N, K, H) and reshaped. The initial state (L*K, N, H) is sliced per layer;
the final states of the layers are concatenated back. ``sequence_lens`` (N,)
int32 gives each sequence's real steps: ONNX then skips the padded steps
(outputs zero, the state of the last real step returned, the reverse direction
starting at each sequence's own last step), which is what rnnkit's ``lengths`` mean.

Nothing here runs a model: :class:`Graph` collects nodes and initializers with
``onnx.helper``; :mod:`rnnkit.io.onnx_export` makes the whole model.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import RnnkitError
from ..nn.xp import to_host

__all__ = ["OPSET", "Graph", "onnx_modules", "check_exportable", "add_recurrent", "ONNX_OPS", "GATE_ORDER",
           "PEEPHOLE_ORDER"]

OPSET = 17
"""The ONNX operator set the exported graphs declare (onnxruntime 1.13 and later run it)."""

ONNX_OPS = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "LSTM": "LSTM", "GRU": "GRU"}
GATE_ORDER = {"RNN_TANH": (0,), "RNN_RELU": (0,), "LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2)}
"""For each mode, which of rnnkit's gate blocks fills ONNX's blocks in order."""
PEEPHOLE_ORDER = (0, 2, 1)
"""Which of rnnkit's peephole blocks [p_i, p_f, p_o] fills ONNX's ``P`` blocks [p_i, p_o, p_f] in order."""


def onnx_modules():
    """``(onnx, helper, numpy_helper)``, or a one-line error naming the extra to install."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:
        raise RnnkitError("ONNX export needs the onnx package: pip install 'rnnkit[onnx]'") from e
    return onnx, helper, numpy_helper


class Graph:
    """Nodes, initializers, inputs and outputs of one ONNX graph, with unique names."""

    def __init__(self):
        self.nodes: List = []
        self.initializers: List = []
        self.inputs: List = []
        self.outputs: List = []
        self._count: Dict[str, int] = {}

    def name(self, stem: str) -> str:
        n = self._count.get(stem, 0)
        self._count[stem] = n + 1
        return stem if n == 0 else f"{stem}_{n}"

    def const(self, stem: str, array) -> str:
        _, _, numpy_helper = onnx_modules()
        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))  # 0-d stays 0-d
        return name

    def node(self, op: str, inputs: List[str], n_out: int = 1, stem: Optional[str] = None, **attrs):
        """Add ``op``; returns its output name (or a list of them when ``n_out`` > 1)."""
        _, helper, _ = onnx_modules()
        stem = stem or op.lower()
        outs = [self.name(f"{stem}_out{j}" if n_out > 1 else stem) for j in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name(f"{op}_node"), **attrs))
        return outs if n_out > 1 else outs[0]

    def input(self, name: str, elem_type, shape) -> str:
        _, helper, _ = onnx_modules()
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        self._count[name] = self._count.get(name, 0) + 1
        return name

    def output(self, value: str, name: str, elem_type, shape) -> None:
        """Expose ``value`` as graph output ``name`` (an Identity node renames it)."""
        _, helper, _ = onnx_modules()
        self.nodes.append(helper.make_node("Identity", [value], [name], name=self.name("output_node")))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))


def _peephole(rnn) -> bool:
    """Whether ``rnn`` is a peephole LSTM (its ``weight_ph`` go to the LSTM operator's ``P``)."""
    return rnn.mode == "LSTM" and bool(getattr(rnn, "peephole", False))


def _expected_names(rnn) -> List[str]:
    names = []
    for l in range(rnn.num_layers):
        for k in range(rnn.num_directions):
            sfx = f"_l{l}" + ("_reverse" if k == 1 else "")
            names += ["weight_ih" + sfx, "weight_hh" + sfx] + (["bias_ih" + sfx, "bias_hh" + sfx] if rnn.bias else [])
            names += ["weight_ph" + sfx] if _peephole(rnn) else []
    return names


def check_exportable(rnn, what: str = "the recurrent stack") -> None:
    """Refuse, with what is missing, a stack ONNX's RNN/LSTM/GRU operators cannot express exactly.

    The standard cells (RNN tanh/ReLU, LSTM, GRU in PyTorch's form) with exactly
    PyTorch's parameters export, and so does a peephole LSTM (ONNX's LSTM has a
    ``P`` input); a variant cell (another step, a projection, layer norm, zoneout,
    extra parameters) does not, and the message names the part ONNX has no
    operator attribute or input for. Variational dropout and weight drop act in
    training only: at evaluation the layer is the plain one, which exports.
    """
    from ..nn.cells import CELLS

    mode = getattr(rnn, "mode", None)
    if mode not in ONNX_OPS:
        raise RnnkitError(f"cannot export {what} to ONNX: cell mode {mode!r} has no ONNX operator (ONNX has RNN "
                          "tanh/relu, LSTM and GRU only); train a model with a standard cell to export it")
    reference = type(CELLS[mode]())
    if type(rnn.cell) is not reference:
        raise RnnkitError(f"cannot export {what} to ONNX: its cell {type(rnn.cell).__name__} is a variant of "
                          f"{reference.__name__}, and ONNX's {ONNX_OPS[mode]} operator computes only the standard "
                          "step; train a model with a standard cell to export it")
    for attr in ("proj_size",):                       # PyTorch's LSTM projection: no ONNX LSTM attribute for it
        if getattr(rnn, attr, 0):
            raise RnnkitError(f"cannot export {what} to ONNX: {attr}={getattr(rnn, attr)} (an LSTM projection of "
                              "the hidden state) has no counterpart in ONNX's LSTM operator")
    for attr in ("zoneout", "zoneout_cell"):          # no parameters, but evaluation mixes states: no attribute
        p = getattr(rnn, attr, None) or 0.0
        if p:
            raise RnnkitError(f"cannot export {what} to ONNX: {attr}={p:g} (zoneout: at evaluation each unit is "
                              f"(1-p) times its new value plus p times its previous one) has no counterpart in "
                              f"ONNX's {ONNX_OPS[mode]} operator; train a model without --zoneout to export it")
    if getattr(rnn, "layer_norm", False):             # gains ln_weight_*: normalisation over each row's features
        normed = "the gate pre-activations and the cell state" if mode == "LSTM" else "the gate pre-activations"
        raise RnnkitError(f"cannot export {what} to ONNX: layer_norm=True (layer normalisation of {normed} at "
                          f"every step) has no counterpart in ONNX's {ONNX_OPS[mode]} operator; train a model "
                          "without --layer-norm to export it")
    have = [name for name, _ in rnn.named_parameters()]
    expected = _expected_names(rnn)
    extra = [n for n in have if n not in expected]
    missing = [n for n in expected if n not in have]
    if extra or missing:
        inputs = "W, R, B and P (peepholes)" if mode == "LSTM" else "W, R and B"
        raise RnnkitError(f"cannot export {what} to ONNX: ONNX's {ONNX_OPS[mode]} operator has weight inputs "
                          f"{inputs} only, and this stack has " + (f"parameters it cannot place ({', '.join(extra)})"
                                                                   if extra else f"no {', '.join(missing)}"))


def _blocks(a: np.ndarray, order: Tuple[int, ...], H: int) -> np.ndarray:
    """Rows of ``a`` (G*H, ...) regrouped so that block j of the result is block order[j] of ``a``."""
    return np.concatenate([a[g * H:(g + 1) * H] for g in order], axis=0)


def layer_weights(rnn, params: Dict[str, np.ndarray], layer: int):
    """ONNX's ``(W, R, B)`` for ``layer`` as float32 arrays (B None without bias)."""
    order, H = GATE_ORDER[rnn.mode], rnn.hidden_size
    W, R, B = [], [], []
    for k in range(rnn.num_directions):
        sfx = f"_l{layer}" + ("_reverse" if k == 1 else "")
        W.append(_blocks(params["weight_ih" + sfx], order, H))                  # (G*H, D)
        R.append(_blocks(params["weight_hh" + sfx], order, H))                  # (G*H, H)
        if rnn.bias:
            B.append(np.concatenate([_blocks(params["bias_ih" + sfx], order, H),
                                     _blocks(params["bias_hh" + sfx], order, H)]))   # (2*G*H,)
    f32 = lambda arrays: np.stack(arrays).astype(np.float32)
    return f32(W), f32(R), (f32(B) if rnn.bias else None)                       # (K, G*H, D), (K, G*H, H), (K, 2GH)


def layer_peepholes(rnn, params: Dict[str, np.ndarray], layer: int) -> Optional[np.ndarray]:
    """ONNX's ``P`` (K, 3H) float32 for ``layer`` of a peephole LSTM: each direction's [p_i, p_f, p_o]
    reordered to [p_i, p_o, p_f]; None for any other stack."""
    if not _peephole(rnn):
        return None
    sfx = lambda k: f"_l{layer}" + ("_reverse" if k == 1 else "")
    P = [_blocks(params["weight_ph" + sfx(k)], PEEPHOLE_ORDER, rnn.hidden_size) for k in range(rnn.num_directions)]
    return np.stack(P).astype(np.float32)                                       # (K, 3H)


def add_recurrent(g: Graph, rnn, x: str, *, lengths: Optional[str] = None, h0: Optional[str] = None,
                  c0: Optional[str] = None, prefix: str = "rnn"):
    """Add the stack ``rnn`` reading ``x`` (T, N, D), time-major; returns ``(y, h_n, c_n)`` value names.

    ``y`` is (T, N, K*H), ``h_n`` and ``c_n`` (L*K, N, H) (``c_n`` None unless LSTM).
    ``lengths`` names an int32 (N,) value, ``h0``/``c0`` (L*K, N, H) values; None: all
    steps real, zero initial state.
    """
    check_exportable(rnn)
    params = {name: to_host(p.data) for name, p in rnn.named_parameters()}   # host copies: a model on a device exports too
    K, H, L = rnn.num_directions, rnn.hidden_size, rnn.num_layers
    op = ONNX_OPS[rnn.mode]
    lstm = rnn.mode == "LSTM"
    attrs = dict(hidden_size=H, direction="bidirectional" if K == 2 else "forward")
    if op == "RNN":
        attrs["activations"] = ["Tanh" if rnn.mode == "RNN_TANH" else "Relu"] * K
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    axes0 = g.const(f"{prefix}_axis0", np.array([0], np.int64)) if h0 is not None else None
    y_shape = g.const(f"{prefix}_y_shape", np.array([0, 0, K * H], np.int64))   # (T, N, K*H): 0 keeps the dim
    hs, cs = [], []
    inp = x
    for l in range(L):
        W, R, B = layer_weights(rnn, params, l)
        P = layer_peepholes(rnn, params, l)
        names = [g.const(f"{prefix}_W_l{l}", W), g.const(f"{prefix}_R_l{l}", R),
                 g.const(f"{prefix}_B_l{l}", B) if B is not None else ""]
        states = []
        for s in ([h0, c0] if lstm else [h0]):
            if s is None:
                states.append("")
                continue
            lo = g.const(f"{prefix}_start_l{l}", np.array([l * K], np.int64))
            hi = g.const(f"{prefix}_end_l{l}", np.array([(l + 1) * K], np.int64))
            states.append(g.node("Slice", [s, lo, hi, axes0], stem=f"{prefix}_state0_l{l}"))   # (K, N, H)
        peep = [g.const(f"{prefix}_P_l{l}", P)] if P is not None else []         # LSTM's 8th input, after c0
        ins = [inp] + names + [lengths or ""] + states + peep
        while ins and ins[-1] == "":                # trailing optional inputs are left out; inner ones stay ""
            ins.pop()
        outs = g.node(op, ins, n_out=3 if lstm else 2, stem=f"{prefix}_{op.lower()}_l{l}", **attrs)
        Y, Y_h = outs[0], outs[1]                                              # (T, K, N, H), (K, N, H)
        hs.append(Y_h)
        if lstm:
            cs.append(outs[2])
        Yt = g.node("Transpose", [Y], stem=f"{prefix}_yt_l{l}", perm=[0, 2, 1, 3])   # (T, N, K, H)
        inp = g.node("Reshape", [Yt, y_shape], stem=f"{prefix}_y_l{l}")             # (T, N, K*H)
    cat = lambda parts, stem: parts[0] if len(parts) == 1 else g.node("Concat", parts, stem=stem, axis=0)
    h_n = cat(hs, f"{prefix}_h_n")                                               # (L*K, N, H)
    c_n = cat(cs, f"{prefix}_c_n") if lstm else None
    return inp, h_n, c_n
