"""A recurrent stack's inference pass replayed from a CUDA graph on CuPy: one launch instead of ~4 per step.

On CuPy every step of the scanner is a few calls (the recurrent product h W_hh^T, the fused cell kernel, two
copies), and each costs its launch on the host, 10-50 us, while the GPU finishes it sooner: at the speed
table's sizes a step costs what Python and CuPy take to issue it (``benchmarks/gpu_step_overhead.py``). A
CUDA graph records the launches of a whole pass once and replays them with one call:

    graphed = GraphedInference(layer)        # layer: a Recurrent (LSTM, GRU, RNN) moved to the GPU
    y, state_n = graphed(x, state0)          # = layer.forward(x, state0, need_cache=False)[:2]

Per call, ``x`` and the initial state are copied into the graph's own input buffers, the graph is launched on
the current stream and the outputs are copied out, so results are the caller's to keep. A graph is recorded
per input shape, dtype and state shapes, and per set of parameter arrays: replacing a parameter's array
(``Module.to``, loading) records anew, while weights updated in place are read by the next replay. Every
array the recording allocates comes from a memory pool of its own that lives as long as the graph, so no
other array can be handed memory the graph writes to.

The pass is the layer's forward without a generator, as ``layer.forward(x, state, need_cache=False)``: in
evaluation mode, or in training mode without dropout or regularisers (with them the layer asks for a
generator and the eager call says so). The layer runs eagerly where a graph cannot serve: arrays that are
not CuPy's, variable lengths (the layer moves them to the device, and a copy from the host is not allowed
while recording), and any key whose recording failed (the reason is kept in ``failures``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Tuple

__all__ = ["GraphedInference"]


def _on_cupy(a) -> bool:
    return type(a).__module__.startswith("cupy")


def _flat(state) -> Tuple:
    if state is None:
        return ()
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _clone(state):
    """A copy of an array or a tuple of arrays (None stays None)."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(s.copy() for s in state)
    return state.copy()


class _Graph:
    """One recorded pass: the graph, its input and output buffers, its memory pool and what it reads."""

    def __init__(self, graph, x, state, y, state_n, pool, params):
        self.graph, self.x, self.state, self.y, self.state_n = graph, x, state, y, state_n
        self.pool, self.params = pool, params          # kept alive as long as the graph may run

    def replay(self, cupy, x, state):
        self.x[...] = x
        for dst, src in zip(_flat(self.state), _flat(state)):
            dst[...] = src
        self.graph.launch(cupy.cuda.get_current_stream())
        return self.y.copy(), _clone(self.state_n)


class GraphedInference:
    """``layer.forward(x, state, need_cache=False)`` replayed from CUDA graphs on CuPy (see the module doc).

    ``max_graphs``: how many shapes keep their graph (the least recently used is dropped past it).
    Counters: ``captures`` (graphs recorded), ``replays``, ``eager_calls``; ``failures`` maps a key whose
    recording failed to the error, and that key then runs eagerly.
    """

    def __init__(self, layer, max_graphs: int = 8):
        if max_graphs < 1:
            raise ValueError(f"max_graphs: expected at least 1, got {max_graphs}")
        self.layer, self.max_graphs = layer, max_graphs
        self._graphs: "OrderedDict[Tuple, _Graph]" = OrderedDict()
        self.failures: Dict[Tuple, str] = {}
        self.captures = self.replays = self.eager_calls = 0

    def _eager(self, x, state, lengths):
        self.eager_calls += 1
        y, state_n, _ = self.layer.forward(x, state, lengths, need_cache=False)
        return y, state_n

    def _key(self, x, state) -> Tuple:
        params = tuple((p.data.data.ptr, p.data.shape) for p in self.layer.parameters())
        return (x.shape, str(x.dtype), tuple((s.shape, str(s.dtype)) for s in _flat(state)),
                isinstance(state, (tuple, list)), params)

    def __call__(self, x, state=None, lengths=None):
        if lengths is not None or not _on_cupy(x) or not all(_on_cupy(s) for s in _flat(state)):
            return self._eager(x, state, lengths)
        import cupy
        key = self._key(x, state)
        entry = self._graphs.get(key)
        if entry is None:
            if key in self.failures:
                return self._eager(x, state, lengths)
            try:
                entry = self._record(cupy, x, state)
            except Exception as e:        # a call the capture does not allow: this shape runs eagerly
                self.failures[key] = f"{type(e).__name__}: {e}"
                return self._eager(x, state, lengths)
            self._graphs[key] = entry
            self.captures += 1
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        self.replays += 1
        return entry.replay(cupy, x, state)

    def _record(self, cupy, x, state) -> _Graph:
        forward = self.layer.forward
        sx, sstate = x.copy(), _clone(state)                 # the graph's input buffers
        pool = cupy.cuda.MemoryPool()
        stream = cupy.cuda.Stream(non_blocking=True)
        cupy.cuda.get_current_stream().synchronize()         # the copies are done before the side stream reads
        with stream:
            forward(sx, sstate, need_cache=False)            # warm-up: kernels compiled, cuBLAS ready
            stream.synchronize()
            with cupy.cuda.using_allocator(pool.malloc):
                stream.begin_capture()
                try:
                    y, state_n, _ = forward(sx, sstate, need_cache=False)
                except BaseException:
                    try:
                        stream.end_capture()
                    except Exception:
                        pass
                    raise
                graph = stream.end_capture()
        params = tuple(p.data for p in self.layer.parameters())
        return _Graph(graph, sx, sstate, y, state_n, pool, params)
