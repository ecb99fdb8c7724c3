r"""ONNX export: a recurrent stack, a character LM or a forecaster's network as one ONNX model file.

``export_onnx(model, path)`` writes (atomically, :mod:`rnnkit.io.atomic`) and
``to_onnx(model)`` returns the ``onnx.ModelProto``. Graphs declare opset
:data:`~rnnkit.io.onnx_graph.OPSET`, have dynamic time (T) and batch (N) axes,
run in float32 (a float64 model's weights are cast), and pass
``onnx.checker.check_model(full_check=True)`` before they are written. The
recurrent layers are ONNX's own RNN / LSTM / GRU operators
(:mod:`rnnkit.io.onnx_graph`); dropout is left out (inference).

What each model becomes (L layers, K directions, H hidden; ``c0``/``c_n`` for LSTM only):

- a :class:`~rnnkit.nn.Recurrent` stack: ``input`` (T, N, D) [(N, T, D) with
  ``batch_first``], ``lengths`` (N,) int32 (with ``lengths=True``), ``h0``, ``c0``
  (L*K, N, H) (with ``initial_state=True``) -> ``output`` (T, N, K*H), ``h_n``, ``c_n``;
- a character LM (``CharModel`` or ``CharLM``):
  ``ids`` (T, N) int64, ``h0``, ``c0`` (L, N, H) -> ``logits`` (T, N, V), ``h_n``, ``c_n``.
  :math:`\mathrm{logits} = \mathrm{RNN}(E[\mathrm{ids}])\, W^T + b`. T = 1 with the state fed back
  is one generation step; the vocabulary is in the metadata (``rnnkit.vocab``, a JSON list);
- a forecaster (``RNNForecaster`` or ``ForecastNet``): ``x`` (T, N, D) in the
  model's scaled units, ``h0``, ``c0`` (L, N, H) [and ``future`` (N, horizon*f) for
  the direct strategy with known-future covariates] -> ``raw`` (T, N, n_out, P)
  (recursive) or (N, horizon, n_out, P) (direct), ``h_n``, ``c_n``. Scaling and
  the head's distribution stay outside the graph (``rnnkit.forecast``).

A peephole LSTM exports too: its ``weight_ph`` [p_i, p_f, p_o] become the LSTM
operator's ``P`` input, reordered to ONNX's [p_i, p_o, p_f]
(:mod:`rnnkit.io.onnx_graph`). A translator (attention decoder, beam search)
and the variants ONNX's operators cannot compute (an LSTM projection, layer
norm, zoneout, another cell's step, parameters with no operator input) are
refused with a message naming what ONNX lacks.
"""

from __future__ import annotations

import json
from typing import Optional

import numpy as np

from .. import __version__
from ..checks import check_flag
from ..errors import NotFittedError, RnnkitError
from ..nn.xp import to_host
from .atomic import atomic_write, check_outputs
from .onnx_graph import OPSET, Graph, add_recurrent, check_exportable, onnx_modules

__all__ = ["export_onnx", "to_onnx", "save_onnx", "OPSET"]

MAX_BYTES = 2 ** 31 - 2 ** 24      # protobuf's limit on one message, with room for the graph itself


def _float():
    onnx, _, _ = onnx_modules()
    return onnx.TensorProto.FLOAT


def _state_io(g: Graph, rnn, LK: int, given: bool, names=("h0", "c0")):
    """Inputs h0 (and c0 for LSTM) of shape (L*K, N, H), or Nones."""
    if not given:
        return None, None
    dims = [LK, "batch", rnn.hidden_size]
    h0 = g.input(names[0], _float(), dims)
    c0 = g.input(names[1], _float(), dims) if rnn.mode == "LSTM" else None
    return h0, c0


def _state_outputs(g: Graph, rnn, LK: int, h_n: str, c_n: Optional[str]) -> None:
    dims = [LK, "batch", rnn.hidden_size]
    g.output(h_n, "h_n", _float(), dims)
    if c_n is not None:
        g.output(c_n, "c_n", _float(), dims)


def _recurrent_graph(g: Graph, rnn, lengths: bool, initial_state: bool) -> dict:
    onnx, _, _ = onnx_modules()
    LK, KH = rnn.num_layers * rnn.num_directions, rnn.num_directions * rnn.hidden_size
    seq = ["batch", "time"] if rnn.batch_first else ["time", "batch"]
    x = g.input("input", _float(), seq + [rnn.input_size])
    lens = g.input("lengths", onnx.TensorProto.INT32, ["batch"]) if lengths else None
    h0, c0 = _state_io(g, rnn, LK, initial_state)
    if rnn.batch_first:
        x = g.node("Transpose", [x], stem="input_tnd", perm=[1, 0, 2])         # (T, N, D)
    y, h_n, c_n = add_recurrent(g, rnn, x, lengths=lens, h0=h0, c0=c0)
    if rnn.batch_first:
        y = g.node("Transpose", [y], stem="output_ntd", perm=[1, 0, 2])        # (N, T, K*H)
    g.output(y, "output", _float(), seq + [KH])
    _state_outputs(g, rnn, LK, h_n, c_n)
    return {"rnnkit.kind": "recurrent", "rnnkit.mode": rnn.mode}


def _linear(g: Graph, x: str, linear, stem: str) -> str:
    """x (..., in) -> x W^T + b (..., out)."""
    y = g.node("MatMul", [x, g.const(f"{stem}_WT", to_host(linear.weight.data).T.astype(np.float32))], stem=f"{stem}_mm")
    if linear.bias is None:
        return y
    return g.node("Add", [y, g.const(f"{stem}_b", to_host(linear.bias.data).astype(np.float32))], stem=stem)


def _charlm_graph(g: Graph, lm) -> dict:
    onnx, _, _ = onnx_modules()
    rnn = lm.rnn
    check_exportable(rnn, "the character LM's recurrent stack")
    V, L = len(lm.vocab), rnn.num_layers
    ids = g.input("ids", onnx.TensorProto.INT64, ["time", "batch"])
    table = to_host(lm.embed.weight.data) if lm.embedding_size else np.eye(V)            # (V, E), one-hot rows without
    x = g.node("Gather", [g.const("embedding", table.astype(np.float32)), ids], stem="embedded", axis=0)  # (T,N,E)
    h0, c0 = _state_io(g, rnn, L, True)
    y, h_n, c_n = add_recurrent(g, rnn, x, h0=h0, c0=c0)                        # (T, N, H)
    g.output(_linear(g, y, lm.head, "head"), "logits", _float(), ["time", "batch", V])
    _state_outputs(g, rnn, L, h_n, c_n)
    return {"rnnkit.kind": "charlm", "rnnkit.vocab": json.dumps(list(lm.vocab.chars), ensure_ascii=False),
            "rnnkit.cell": lm.cell}


def _forecast_graph(g: Graph, net) -> dict:
    rnn = net.rnn
    check_exportable(rnn, "the forecaster's recurrent stack")
    L, n_out, P = rnn.num_layers, net.n_out, net.head_size
    x = g.input("x", _float(), ["time", "batch", rnn.input_size])
    h0, c0 = _state_io(g, rnn, L, True)
    y, h_n, c_n = add_recurrent(g, rnn, x, h0=h0, c0=c0)                        # (T, N, H)
    if net.direct:
        last = g.node("Gather", [y, g.const("last_step", np.array(-1, np.int64))], stem="last", axis=0)  # (N, H)
        if net.future_size:
            future = g.input("future", _float(), ["batch", net.horizon * net.future_size])
            last = g.node("Concat", [last, future], stem="head_in", axis=1)       # (N, H + horizon*f)
        raw = _linear(g, last, net.head, "head")                                # (N, horizon*n_out*P)
        shape, dims = [0, net.horizon, n_out, P], ["batch", net.horizon, n_out, P]
    else:
        raw = _linear(g, y, net.head, "head")                                   # (T, N, n_out*P)
        shape, dims = [0, 0, n_out, P], ["time", "batch", n_out, P]
    raw = g.node("Reshape", [raw, g.const("raw_shape", np.array(shape, np.int64))], stem="raw_shaped")
    g.output(raw, "raw", _float(), dims)
    _state_outputs(g, rnn, L, h_n, c_n)
    return {"rnnkit.kind": "forecaster", "rnnkit.strategy": "direct" if net.direct else "recursive"}


def _network(model):
    """The exportable network inside ``model`` and how to draw it: ``(kind, network)``."""
    from ..charlm.model import CharLM
    from ..forecast.model import ForecastNet
    from ..nn.recurrent import Recurrent

    kind = getattr(model, "kind", None)
    if kind in ("charlm", "forecaster"):             # a fitted estimator: its network
        net = getattr(model, "model_" if kind == "charlm" else "net_", None)
        if net is None:
            raise NotFittedError(f"this {type(model).__name__} is not fitted yet: fit or load it before exporting")
        model = net
    if isinstance(model, CharLM):
        return "charlm", model
    if isinstance(model, ForecastNet):
        return "forecaster", model
    if isinstance(model, Recurrent):
        return "recurrent", model
    if kind == "translator" or type(model).__name__ == "Translator":
        raise RnnkitError("cannot export a translator to ONNX: its attention decoder and beam search are a loop "
                          "over the model's own outputs that ONNX's RNN operators cannot express; ONNX export "
                          "covers charlm and forecaster models and recurrent stacks (RNN, LSTM, GRU)")
    raise RnnkitError(f"cannot export a {type(model).__name__} to ONNX: export takes a charlm or forecaster model "
                      "(fitted or loaded) or a recurrent stack (rnnkit.nn.RNN, LSTM, GRU)")


def to_onnx(model, *, lengths: bool = True, initial_state: bool = True, opset: int = OPSET):
    """The ``onnx.ModelProto`` of ``model`` (see the module docstring), checked with ``full_check=True``.

    ``lengths`` and ``initial_state`` apply to a bare recurrent stack: whether
    the graph takes ``lengths`` (N,) int32 and ``h0``/``c0``. Application models
    always take and return their state (generation and recursive forecasting
    feed it back) and have no padding.
    """
    lengths, initial_state = check_flag("lengths", lengths), check_flag("initial_state", initial_state)
    onnx, helper, _ = onnx_modules()
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or isinstance(opset, bool) or not 14 <= opset <= newest:
        raise RnnkitError(f"opset (--opset) must be an integer from 14 to {newest} (what this onnx {onnx.__version__} "
                          f"knows), got {opset!r}")
    kind, net = _network(model)
    size = sum(p.data.size for p in net.parameters()) * 4
    if size > MAX_BYTES:
        raise RnnkitError(f"the model's weights take {size / 2 ** 30:.1f} GiB in float32, more than the 2 GiB one "
                          "ONNX file can hold without external data; export a smaller model")
    g = Graph()
    if kind == "recurrent":
        meta = _recurrent_graph(g, net, lengths, initial_state)
    elif kind == "charlm":
        meta = _charlm_graph(g, net)
    else:
        meta = _forecast_graph(g, net)
    graph = helper.make_graph(g.nodes, f"rnnkit_{kind}", g.inputs, g.outputs, g.initializers,
                              doc_string=__doc__.split("\n\n")[0])
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, producer_name="rnnkit", producer_version=__version__, opset_imports=opsets)
    proto.ir_version = helper.find_min_ir_version_for(opsets)   # the oldest IR the opset allows: older runtimes load it
    helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def save_onnx(proto, path, *, what: str = "OUT") -> str:
    """Write an ``onnx.ModelProto`` to ``path`` through the atomic writer; returns ``path``."""
    data = proto.SerializeToString()
    return atomic_write(path, lambda f: f.write(data), what=what)


def export_onnx(model, path, *, lengths: bool = True, initial_state: bool = True, opset: int = OPSET,
                what: str = "OUT") -> str:
    """Write ``model`` as an ONNX file at ``path`` (atomically); returns ``path``.

    ``model``: a fitted or loaded ``CharModel`` or ``RNNForecaster``, their
    networks, or a recurrent stack. Raises :class:`rnnkit.errors.RnnkitError`
    for a model ONNX cannot express, naming what is missing. ``path`` is
    checked (:func:`rnnkit.io.atomic.check_outputs`) before the graph is built.
    """
    check_outputs({what: path}, examples={what: "model.onnx"})
    return save_onnx(to_onnx(model, lengths=lengths, initial_state=initial_state, opset=opset), path, what=what)
