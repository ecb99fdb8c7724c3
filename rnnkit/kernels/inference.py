r"""Forward-only loops for inference: no cache, both products on weights packed once, the gates fused after them.

Same equations and results (up to the order of float sums) as :mod:`rnnkit.nn.cells`
through the scanner, for ``need_cache=False`` (evaluation, generation, serving).
Per layer and direction, per step t, in *panel order* (for each block of V hidden
units, the G gate rows of those units side by side; :mod:`rnnkit.kernels.microgemm`):

.. math::
    X_t = b + x_t W_{ih}^T \quad (N, P), \qquad A_t = h_{t-1} W_{hh}^T \quad (N, P)

both with the register-tiled product on packed panels, then per row the gates
(float32: explicit vectors, :mod:`rnnkit.kernels.vector_gates`):

- LSTM (i, f, g, o): ``a = X_t + A_t``; ``c' = f c + i g``, ``h' = o tanh(c')``, with ``b = b_ih + b_hh``;
- GRU (r, z, n): ``r, z = sigmoid(X_t + A_t)`` on their rows, ``n = tanh(X_n + r (A_n + b_hn))``,
  ``h' = n + z (h - n)``, with ``b = b_ih + b_hh`` on the r, z rows and ``b_in`` on n;
- RNN: ``h' = phi(X_t + A_t)`` (tanh or relu), with blocks of 4V units.

P = G * Hp with Hp = H rounded up to whole blocks; the padding units have zero
weights and are never read back. Variable lengths: where step t pads sequence n,
its state passes through and its output is zero (the reference's mask).

What it saves against the training loop (:mod:`rnnkit.kernels.lstm`): nothing is
stored for backward, no per-step transposes, and the weights are packed once per
call (and remembered while they do not change, :func:`packed`) instead of by
OpenBLAS on every step. A single step of a few sequences (generation) runs its products
on the weights as they are (:func:`rnnkit.kernels.inference_step.one_step`). The loops
themselves are in :mod:`rnnkit.kernels.inference_loops`. With two or more threads, a batch
with enough rows for each thread (:func:`row_parts`) is split by rows, each thread running
the one-thread loop on its range with no synchronisation; otherwise a large step
(:data:`THREADED_MACS`) is shared among the threads, each taking a range of unit blocks
(:mod:`rnnkit.kernels.inference_threads`). Both give the one-thread loop's results exactly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from . import inference_loops, inference_threads, microgemm
from .aligned import aligned_empty
from .inference_loops import gru_forward, lstm_forward, rnn_forward, step_inputs   # noqa: F401 (the serial loops)
from .inference_step import one_step

__all__ = ["KERNELS", "supports", "scan_forward"]

KERNELS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


def supports(kernel, dtype) -> bool:
    """Whether a plain cell with this ``fused_kernel`` and dtype has an inference loop here."""
    return kernel in KERNELS and np.dtype(dtype) in (np.float32, np.float64)


def panel_rows(kernel, H, dtype):
    """``(src, gates, width)``: for each panel-order row, the row of a (G*H, .) weight it takes (-1: zero).

    Panel order puts, for each block of ``width`` units, the G gate rows of those
    units side by side: row ``(b*G + g)*width + l`` is ``g*H + b*width + l``.
    """
    V = microgemm.lanes(dtype)
    gates, width = {"lstm": (4, V), "gru": (3, V)}.get(kernel, (1, 4 * V))
    B = -(-H // width)
    b, g, l = np.meshgrid(np.arange(B), np.arange(gates), np.arange(width), indexing="ij")   # (B, G, width)
    unit = b * width + l
    src = np.where(unit < H, g * H + unit, -1).reshape(-1)                                 # (B*G*width,)
    return src, gates, width


def _rows(a, src):
    """``a`` with its first axis in panel order (zero where ``src`` is -1)."""
    out = np.zeros((src.size,) + a.shape[1:], a.dtype)
    keep = src >= 0
    out[keep] = a[src[keep]]
    return out


def pack(kernel, W_hh, W_ih, b):
    """``(Wp (B, H, GW), Wx (B, D + 1, GW), b (P,))``: W_hh and ``[W_ih | b]`` as panels, the bias in panel order."""
    GH, H = W_hh.shape
    src, gates, width = panel_rows(kernel, H, W_hh.dtype)
    b_p = np.zeros(src.size, b.dtype)
    b_p[src >= 0] = b[src[src >= 0]]
    GW = gates * width
    W_ihb = np.concatenate([W_ih, b[:, None]], axis=1)                    # (G*H, D + 1) [W_ih | b]
    return microgemm.pack_panels(W_hh, src, GW), microgemm.pack_panels(W_ihb, src, GW), b_p


_packed_cache: "OrderedDict[tuple, tuple]" = OrderedDict()
_cache_lock = threading.Lock()
CACHE_ENTRIES = 32
ONE_STEP_ROWS = 16
"""A single step of fewer sequences runs on the weights as they are (:func:`rnnkit.kernels.inference_step.one_step`): checking the
packed copy reads the weights once more, which only a batch of rows (beams, a batch of sentences) repays."""
INPUT_ROWS, INPUT_BYTES = 256, 2 << 20
"""The input product runs over blocks of about INPUT_ROWS rows (steps x batch), its output at most INPUT_BYTES."""


def packed(kernel, W_hh, W_ih, b):
    """:func:`pack`, remembered for the last :data:`CACHE_ENTRIES` weights seen.

    A hit needs the same arrays (address, shape, dtype) holding exactly the same
    values as when they were packed: the cache keeps a copy and compares it, so
    weights changed in place (an optimiser step) are packed again. Comparing
    reads the weights once; packing reads and scatters them, which costs as
    much as a few steps of a short sequence, and every step of generation.
    """
    key = (kernel, W_hh.dtype.str, W_hh.shape, W_ih.shape, W_hh.ctypes.data, W_ih.ctypes.data)
    with _cache_lock:                # callers on several threads: both directions of a layer, a server
        hit = _packed_cache.get(key)
    if hit is not None and all(np.array_equal(a, kept) for a, kept in zip((W_hh, W_ih, b), hit[0])):
        with _cache_lock:
            if key in _packed_cache:
                _packed_cache.move_to_end(key)
        return hit[1]
    result = pack(kernel, W_hh, W_ih, b)
    with _cache_lock:
        _packed_cache[key] = ((W_hh.copy(), W_ih.copy(), b.copy()), result)
        while len(_packed_cache) > CACHE_ENTRIES:
            _packed_cache.popitem(last=False)
    return result


def scan_forward(kernel, x, state0, W_ih, W_hh, b_ih, b_hh, lengths, reverse):
    """``(y (T, N, H), state_T)`` of one layer and direction; the arguments of :func:`rnnkit.nn.scan.scan_forward`."""
    dtype = x.dtype
    x, W_ih, W_hh, b_ih, b_hh = (None if a is None else np.ascontiguousarray(a, dtype=dtype)
                                 for a in (x, W_ih, W_hh, b_ih, b_hh))
    T, N, D = x.shape
    GH, H = W_hh.shape
    zeros = np.zeros(GH, dtype)
    b_ih = zeros if b_ih is None else b_ih
    b_hh = zeros if b_hh is None else b_hh
    if kernel == "gru":
        b = np.concatenate([b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:]])    # r, z: the biases only appear summed
    else:
        b = b_ih + b_hh
    if T == 1 and N < ONE_STEP_ROWS:                 # generation: nothing packed or checked
        return one_step(kernel, x[0], state0, W_ih, W_hh, b, b_hh[2 * H:] if kernel == "gru" else None)
    Wp, Wx, b_p = packed(kernel, W_hh, W_ih, b)
    P = b_p.size
    Hp = P // (4 if kernel == "lstm" else 3 if kernel == "gru" else 1)
    vectors = Wp.shape[2] * dtype.itemsize // microgemm.VECTOR_BYTES
    steps = max(1, min(T, INPUT_ROWS // N, INPUT_BYTES // (N * P * dtype.itemsize)))
    chunks = (microgemm.k_chunk(vectors, dtype),) * 2 + (steps,)
    lens = np.full(N, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    order = None
    if lengths is not None:                          # longest first: each step's live rows are a prefix
        order = np.argsort(-lens, kind="stable")
        if np.array_equal(order, np.arange(N)):
            order = None
        else:
            x, lens = x[:, order], lens[order]                             # (T, N, D) copy
            state0 = tuple(np.asarray(s)[order] for s in state0)
    y, state_T = _run(kernel, Wp, Wx, b_p, b_hh, x, state0, lens, reverse, chunks, H, Hp)
    if order is None:
        return y, state_T
    back = np.argsort(order)                                               # the caller's order
    return y[:, back], tuple(s[back] for s in state_T)


THREADED_MACS = 1 << 19
"""When the batch is not split by rows (:func:`row_parts` is 1), a step's recurrent product of at least
this many multiply-adds (N * Hp * P) is shared among numba's threads by unit blocks
(:mod:`rnnkit.kernels.inference_threads`); a smaller one runs on one thread, where the
synchronisation at the end of each step would cost about what the second thread saves. Measured
interleaved on 2 threads (2026-12-02): config D's LSTM (N * Hp * P = 2^20) and GRU (0.75 * 2^20) ran
1.08-1.17x faster shared, its tanh RNN (2^18) 0.75-0.85x as fast, and config C (one sequence) slower
shared in every cell. With the spinning barrier between the threads (2026-12-03) the tanh RNN at D
still ran 0.94x as fast shared (1.69 ms against 1.59 ms serial)."""


_layer: dict = {}


def threadsafe_layer() -> bool:
    """Whether numba's parallel loops will run on a thread-safe layer (OpenMP or TBB). The fallback,
    ``workqueue``, aborts the process when two Python threads launch parallel loops at once (a server
    answering requests on threads), so without OpenMP or TBB every step stays on one thread."""
    if "ok" not in _layer:
        import importlib

        import numba
        layer = str(numba.config.THREADING_LAYER).lower()
        names = {"omp": ("omppool",), "tbb": ("tbbpool",), "safe": ("tbbpool",)}.get(layer, ("omppool", "tbbpool"))
        ok = False
        if layer in ("default", "threadsafe", "safe", "omp", "tbb"):     # the ones that never pick workqueue
            for name in names:
                try:
                    importlib.import_module("numba.np.ufunc." + name)
                    ok = True
                    break
                except Exception:          # not built, or its runtime library is missing
                    continue
        _layer["ok"] = ok
    return _layer["ok"]


def thread_count() -> int:
    """The thread setting (:func:`rnnkit.threads.set_threads`; numba's thread count before any)."""
    import numba

    from ..threads import thread_budget
    budget = thread_budget()
    return numba.get_num_threads() if budget is None else min(budget, numba.config.NUMBA_NUM_THREADS)


def thread_parts(N, Hp, P, blocks):
    """How many threads share each step: :func:`thread_count` when the step is large enough, the threading
    layer is thread-safe and the caller is not inside :func:`serial_steps`, else 1."""
    if getattr(_serial, "on", False) or N * Hp * P < THREADED_MACS or blocks < 2 or not threadsafe_layer():
        return 1
    return max(1, min(thread_count(), blocks))


_serial = threading.local()


@contextmanager
def serial_steps():
    """Within it, this thread's loops keep every step on the calling thread (:func:`thread_parts` is 1):
    for callers that already run one loop per thread (:mod:`rnnkit.nn.directions`)."""
    before = getattr(_serial, "on", False)
    _serial.on = True
    try:
        yield
    finally:
        _serial.on = before


PAIR_MACS = 1 << 24
"""Both directions of a bidirectional layer run at once, one thread each (:mod:`rnnkit.nn.directions`),
when two threads are allowed, a direction's recurrent products have at least this many multiply-adds
(T * N * H * G*H) and its steps are too small to be shared (:data:`PAIR_STEP_MACS`). Measured on 2
threads against the two directions one after the other (2026-12-03, rnnkit alone, interleaved medians):
config D (2^27 multiply-adds, steps of 2^20) 1.2-1.55x faster, every cell, 1-2 layers, with and without
variable lengths; config C (one sequence, 2^21) 0.6-1.0x, where handing a 0.2 ms scan to a thread costs
what it saves; configs A and B (steps of 2^21 to 2^26) 0.8-1.0x against their shared steps: one thread
then needs a direction's whole W_hh in its cache where a shared step needs half."""


PAIR_STEP_MACS = 1 << 21
"""Steps of at least this many multiply-adds (N * H * G*H) are not paired: each direction in turn then uses
every thread (its rows split, :func:`row_parts`, or its steps shared, :func:`thread_parts`)."""


ROW_MIN_ROWS = 4
"""Rows each thread takes at least when the threads split the batch (:func:`row_parts`)."""
ROW_WEIGHT_BYTES = 3 << 19
"""Panels of W_hh up to this size (1.5 MiB, within one core's 2 MiB L2 here) stay in each thread's cache
when every thread reads all of them at every step; larger ones come from L3 at every step, which only
:data:`ROW_MIN_ROWS_LARGE` rows a thread repay."""
ROW_MIN_ROWS_LARGE = 16
ROW_MACS = 1 << 20
"""A call of fewer recurrent multiply-adds (T * N * Hp * P) stays on one thread: starting the parallel
loop costs about what the second thread saves."""


def row_parts(T, N, Hp, P, weight_bytes) -> int:
    """How many threads split the batch's rows (:func:`rnnkit.kernels.inference_loops.forward_rows`): as many
    of the thread setting as get enough rows each for the weights they must read; 1 when fewer than two
    would (then :func:`thread_parts` decides whether the steps are shared by unit blocks).

    Measured interleaved on 2 threads (2026-12-03, float32, one layer at the bench's configs, against steps
    shared by unit blocks; ``benchmarks/results/inference_row_split_2threads.json``): config A (T = 64,
    N = 32, H = 256) 1.40x faster for the tanh RNN, 1.16x GRU, 1.06x LSTM; config B (T = 100, N = 64,
    H = 512) 1.11x RNN, 1.04x GRU, 0.89x LSTM (1.0x in an earlier run: at the sgemm ceiling either way);
    config D (T = 200, N = 16, H = 128; its RNN's steps were serial) 1.61x RNN, 1.30x GRU, 1.35x LSTM.
    Probes at T = 64 (in-process, not in the JSON): two rows a thread, the RNN still gains and the LSTM
    (1 MiB of panels) loses 15%; with 4 MiB of panels (LSTM at H = 512, RNN at H = 1024) 8 rows a thread
    lose 7-10%, 16 about break even. :func:`rnnkit.kernels.inference_loops.row_splits` keeps every range at
    :func:`row_need` rows or more, so the rule holds for the ranges actually run."""
    if getattr(_serial, "on", False) or not threadsafe_layer() or T * N * Hp * P < ROW_MACS:
        return 1
    parts = min(thread_count(), N // row_need(weight_bytes))    # fewer threads rather than too few rows each
    return parts if parts >= 2 else 1


def row_need(weight_bytes) -> int:
    """Rows each thread needs when the batch is split by rows and every thread reads ``weight_bytes`` of
    panels at every step: :data:`ROW_MIN_ROWS`, or :data:`ROW_MIN_ROWS_LARGE` above :data:`ROW_WEIGHT_BYTES`."""
    return ROW_MIN_ROWS if weight_bytes <= ROW_WEIGHT_BYTES else ROW_MIN_ROWS_LARGE


def pair_pays(kernel, T, N, H) -> bool:
    """Whether :data:`PAIR_MACS`, :data:`PAIR_STEP_MACS` and the thread setting call for both directions at once."""
    G = 4 if kernel == "lstm" else 3 if kernel == "gru" else 1
    step = N * H * G * H
    return T > 1 and T * step >= PAIR_MACS and step < PAIR_STEP_MACS and thread_count() >= 2


def _run(kernel, Wp, Wx, b_p, b_hh, x, state0, lens, reverse, chunks, H, Hp):
    """``(y (T, N, H), state_T)`` from the packed weights: the batch's rows split among threads
    (:func:`row_parts`), else each step shared by unit blocks (:func:`thread_parts`), else one thread."""
    T, N = x.shape[:2]
    dtype = x.dtype
    P = b_p.size
    y = aligned_empty((T, N, H), dtype)                                    # (T, N, H)
    h = np.zeros((N, Hp), dtype)                                           # (N, Hp) padded layout
    h[:, :H] = state0[0]
    c = np.zeros((N, Hp) if kernel == "lstm" else (N, 0), dtype)          # (N, Hp) the LSTM's cell state
    b_hn = np.zeros(Hp, dtype)                                             # (Hp,) the GRU's b_hn
    if kernel == "lstm":
        c[:, :H] = state0[1]
    elif kernel == "gru":
        b_hn[:H] = b_hh[2 * H:]
    relu = kernel == "rnn_relu"
    kind = {"lstm": inference_threads.LSTM, "gru": inference_threads.GRU}.get(kernel, inference_threads.RNN)
    rows = row_parts(T, N, Hp, P, Wp.nbytes)
    parts = 1 if rows > 1 else thread_parts(N, Hp, P, Wp.shape[0])
    if rows > 1:
        splits = inference_loops.row_splits(lens, rows, row_need(Wp.nbytes))
        inference_loops.forward_rows(kind, Wp, Wx, b_p, b_hn, x, h, c, lens, reverse, relu, y, chunks, splits)
    elif parts > 1:
        inference_threads.forward(kind, Wp, Wx, b_hn if kernel == "gru" else b_p, x, h, c, lens, reverse, relu, y,
                                  chunks, inference_threads.split_blocks(Wp.shape[0], parts))
    elif kernel == "lstm":
        lstm_forward(Wp, Wx, b_p, x, h, c, lens, reverse, y, chunks)
    elif kernel == "gru":
        gru_forward(Wp, Wx, b_p, b_hn, x, h, lens, reverse, y, chunks)
    else:
        rnn_forward(Wp, Wx, b_p, x, h, lens, reverse, relu, y, chunks)
    state = (np.ascontiguousarray(h[:, :H]),)
    return y, state + ((np.ascontiguousarray(c[:, :H]),) if kernel == "lstm" else ())
