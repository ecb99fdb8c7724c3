"""``rnnkit export MODEL OUT.onnx``: a thin shell over :func:`rnnkit.io.onnx_export.export_onnx`."""

from __future__ import annotations

__all__ = ["register", "export_model"]


def export_model(model, out, *, opset=None) -> dict:
    """Export the model file (or checkpoint) ``model`` as ONNX to ``out``; returns what was written.

    Both paths are checked before the model is read (``out`` must not be the
    model file); the result has ``out``, ``kind``, ``opset``, ``inputs`` and
    ``outputs`` (each ``name (dims)``).
    """
    from ..estimator import load
    from ..io.atomic import check_outputs
    from ..io.inputs import check_input
    from ..io.onnx_export import OPSET, save_onnx, to_onnx

    check_input(model, "MODEL")
    check_outputs({"OUT": out}, {"MODEL": model}, examples={"OUT": "model.onnx"})
    estimator = load(model)
    opset = OPSET if opset is None else opset
    proto = to_onnx(estimator, opset=opset)      # built and checked (full_check) before anything is written
    save_onnx(proto, out, what="OUT")

    def describe(values):
        return [f"{v.name} ({', '.join(d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim)})"
                for v in values]
    return {"out": out, "kind": estimator.kind, "opset": opset, "inputs": describe(proto.graph.input),
            "outputs": describe(proto.graph.output)}


def _export(args) -> int:
    info = export_model(args.model, args.out, opset=args.opset)
    print(f"wrote {info['out']}: {info['kind']} model, ONNX opset {info['opset']}\n"
          f"  inputs:  {'; '.join(info['inputs'])}\n  outputs: {'; '.join(info['outputs'])}")
    return 0


def register(subparsers) -> None:
    from ..io.onnx_graph import OPSET
    from .builder import command

    p = command(subparsers, "export", func=_export,
                help="write a charlm or forecaster model as an ONNX file (onnxruntime and other runtimes)",
                description="Export a model file (or a training checkpoint) as ONNX: the recurrent layers become "
                            "ONNX's own RNN/LSTM/GRU operators, with dynamic time and batch axes and the state "
                            "as input and output. charlm: ids (time, batch) -> logits; forecaster: the network "
                            "in scaled units -> raw head outputs. Needs the onnx extra: pip install 'rnnkit[onnx]'.")
    p.add_argument("model", metavar="MODEL", help="model file or training checkpoint (charlm or forecaster)")
    p.add_argument("out", metavar="OUT", help="the ONNX file to write (written atomically; not MODEL)")
    p.add_argument("--opset", type=int, default=OPSET, help="ONNX operator set to declare (>= 14)")
