"""The onnxruntime side of an inference case: the same layer exported to ONNX, run by onnxruntime.

The layer goes through :func:`rnnkit.io.onnx_export.to_onnx` (ONNX's own RNN,
LSTM and GRU operators, ``sequence_lens`` for variable lengths) and runs in an
``InferenceSession`` on the CPU with the bench's thread count (intra-op
threads; one inter-op thread), graph optimisations on. The session is built
once, outside the timing, as a server would.

Its worker threads do not spin after a run (``session.intra_op.allow_spinning``
0). By default they busy-wait for more work after every run, and in an
interleaved bench the next contender then shares the cores with them: measured
on config A, 2 layers bidirectional, 2 threads, both rnnkit's and PyTorch's
LSTM ran 1.7-1.9x slower right after an onnxruntime call than alone, and as fast
as alone with spinning off, which left onnxruntime's own time unchanged
(within the machine's noise).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

__all__ = ["available", "ort_step"]


def available() -> bool:
    """Whether onnx and onnxruntime both import (the ``onnx`` extra)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def ort_step(layer, x: np.ndarray, lengths: Optional[np.ndarray], threads: int) -> Callable[[], np.ndarray]:
    """A closure running ``layer`` over ``x`` (T, N, D) from the zero state in onnxruntime; returns the output."""
    import onnxruntime as ort

    from ..io.onnx_export import to_onnx

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")   # see the module docstring
    opts.log_severity_level = 3
    proto = to_onnx(layer, lengths=lengths is not None, initial_state=False)
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {"input": np.ascontiguousarray(x, np.float32)}
    if lengths is not None:
        feed["lengths"] = np.asarray(lengths, np.int32)
    out = [sess.get_outputs()[0].name]

    def step():
        return sess.run(out, feed)[0]
    return step
