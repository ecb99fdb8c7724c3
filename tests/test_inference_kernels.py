"""The inference loops (kernels.inference, kernels.microgemm, kernels.vector_gates) against the NumPy reference.

The reference is the scanner (``rnnkit.nn.scan`` with ``backend="numpy"``), run
without a cache. Every cell (RNN tanh/ReLU, LSTM, GRU) in float64 and float32,
hidden sizes that are and are not multiples of the vector width, batches that
use every row tile (6, 4, 2, 1), both directions, variable lengths, given
initial states, with and without bias; then whole stacks (layers x directions
x lengths x states), the packed-weight cache when weights change in place, and
the one-step path of generation (a single step of a few sequences runs its
products on the weights as they are), and input products over blocks of steps. No speed is asserted.
"""

import numpy as np
import pytest

from ci_skip_guard import numba_unavailable
from recurrent_cases import GRID, GRID_IDS, make_case, make_layer
from variant_cases import VARIANT_IDS, VARIANTS, make_variant_case

if numba_unavailable():
    pytest.skip(numba_unavailable(), allow_module_level=True)
from rnnkit.kernels import inference, microgemm               # noqa: E402
from rnnkit.nn import scan                                     # noqa: E402
from rnnkit.nn.cells import CELLS                              # noqa: E402

CELL_NAMES = {"rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU", "lstm": "LSTM", "gru": "GRU"}


def _close(got, want, dtype):
    """float64: the same sums in another order (1e-12); float32: 1e-5 of the largest value (sums of
    up to a few hundred products, each rounded, in another order)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(1.0, float(np.abs(want).max()))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _weights(rng, G, H, D, dtype, bias=True):
    W_ih = (rng.standard_normal((G * H, D)) * 0.4).astype(dtype)
    W_hh = (rng.standard_normal((G * H, H)) * 0.3).astype(dtype)
    if not bias:
        return W_ih, W_hh, None, None
    return W_ih, W_hh, rng.uniform(-0.5, 0.5, G * H).astype(dtype), rng.uniform(-0.5, 0.5, G * H).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel", list(CELL_NAMES))
@pytest.mark.parametrize("T,N,D,H", [(5, 1, 3, 7), (4, 13, 5, 40), (3, 7, 9, 16), (2, 3, 4, 100), (3, 11, 2, 33),
                                     (1, 3, 6, 24), (1, 17, 6, 24), (3, 5, 4, 64)])  # T = 1: one step; H = 64: states written into y
def test_one_layer_equals_the_reference(kernel, dtype, T, N, D, H):
    rng = np.random.default_rng(T * 1000 + N * 10 + H)
    cell = CELLS[CELL_NAMES[kernel]]()
    G = cell.num_gates
    for reverse in (False, True):
        for lengths in (None, rng.integers(1, T + 1, N)):
            for bias in (True, False):
                W_ih, W_hh, b_ih, b_hh = _weights(rng, G, H, D, dtype, bias)
                x = rng.standard_normal((T, N, D)).astype(dtype)
                s0 = tuple((0.5 * rng.standard_normal((N, H))).astype(dtype) for _ in range(cell.num_states))
                want_y, want_s, _ = scan.scan_forward(cell, x, s0, W_ih, W_hh, b_ih, b_hh, lengths, reverse,
                                                      backend="numpy", need_cache=False)
                got_y, got_s = inference.scan_forward(kernel, x, s0, W_ih, W_hh, b_ih, b_hh, lengths, reverse)
                assert got_y.dtype == dtype and got_y.shape == (T, N, H)
                _close(got_y, want_y, dtype)
                for g, w in zip(got_s, want_s):
                    _close(g, w, dtype)
                if lengths is not None:                           # padded steps output exactly zero
                    padded = np.arange(T)[:, None] >= lengths[None, :]
                    assert np.all(got_y[padded] == 0)


@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", GRID, ids=GRID_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stack_without_cache_equals_the_reference(kind, num_layers, bidirectional, varlen, given_state, dtype):
    layer, x, state, lengths, _, _ = make_case(kind, num_layers, bidirectional, varlen, given_state, dtype=dtype,
                                               T=5, N=7, D=3, H=20)
    layer.eval()
    layer.backend = "numpy"
    want_y, want_s, _ = layer.forward(x, state, lengths, need_cache=False)
    layer.backend = "numba"
    got_y, got_s, cache = layer.forward(x, state, lengths, need_cache=False)
    assert cache is None
    _close(got_y, want_y, dtype)
    for g, w in zip(got_s if kind == "lstm" else (got_s,), want_s if kind == "lstm" else (want_s,)):
        _close(g, w, dtype)


def test_batch_first_stack_equals_the_reference():
    layer, x, state, lengths, _, _ = make_case("lstm", 2, True, True, True, dtype=np.float32, T=6, N=5, D=4,
                                               H=18, batch_first=True)
    layer.backend = "numpy"
    want = layer.forward(x, state, lengths, need_cache=False)[0]
    layer.backend = "numba"
    _close(layer.forward(x, state, lengths, need_cache=False)[0], want, np.float32)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_a_padded_batch_is_sorted_once_per_stack_and_returned_in_the_callers_order(kind, bidirectional, batch_first,
                                                                                  monkeypatch):
    """Without a cache the stack runs its batch longest first (every scan sees sorted lengths, so none copies
    its input to sort it) and returns outputs and final states in the caller's order: equal to the training
    path, which keeps the caller's order (float64, both backends)."""
    from rnnkit.nn import directions
    layer, x, state, lengths, _, _ = make_case(kind, 2, bidirectional, True, True, dtype=np.float64, T=5, N=7,
                                               D=3, H=20, batch_first=batch_first)
    assert not np.all(np.diff(lengths) <= 0)                              # the caller's order is not sorted
    seen = []
    real = directions.scan_forward
    monkeypatch.setattr(directions, "scan_forward", lambda **kw: seen.append(kw["lengths"]) or real(**kw))
    layer.eval()
    for backend in ("numpy", "numba"):
        layer.backend = backend
        want_y, want_s, cache = layer.forward(x, state, lengths)          # the training path: the caller's order
        assert cache is not None and all(np.array_equal(seen_l, lengths) for seen_l in seen)
        seen.clear()
        got_y, got_s, _ = layer.forward(x, state, lengths, need_cache=False)
        assert len(seen) == 2 * (2 if bidirectional else 1)
        assert all(np.all(np.diff(seen_l) <= 0) and sorted(seen_l) == sorted(lengths) for seen_l in seen)
        seen.clear()
        _close(got_y, want_y, np.float64)
        for g, w in zip(got_s if kind == "lstm" else (got_s,), want_s if kind == "lstm" else (want_s,)):
            _close(g, w, np.float64)
            assert g.flags.c_contiguous                                   # not x[:, order]'s batch-major layout
        assert got_y.flags.c_contiguous or batch_first                    # batch_first returns a (N, T, .) view


@pytest.mark.parametrize("kind,kw", VARIANTS, ids=VARIANT_IDS)
def test_every_variant_sorted_and_restored_leaves_the_callers_arrays_alone(kind, kw):
    """Evaluation mode (no masks drawn) with unsorted lengths: the stack sorts the batch, reorders its own output
    back in place, and returns what the training path returns, with the caller's input and state untouched and
    an earlier call's output not overwritten by a later one."""
    layer, x, state, lengths, _, _ = make_variant_case(kind, kw, dtype=np.float64, N=6, T=5)
    assert not np.all(np.diff(lengths) <= 0)
    layer.eval()
    x_before = x.copy()
    state_before = tuple(s.copy() for s in (state if isinstance(state, tuple) else (state,)))
    for backend in ("numpy", "numba"):
        layer.backend = backend
        want_y, want_s, _ = layer.forward(x, state, lengths)              # the training path: the caller's order
        got_y, got_s, _ = layer.forward(x, state, lengths, need_cache=False)
        kept = got_y.copy()
        layer.forward(x[:, ::-1].copy(), state, lengths[::-1].copy(), need_cache=False)
        np.testing.assert_array_equal(got_y, kept)
        _close(got_y, want_y, np.float64)
        for g, w in zip(got_s if isinstance(got_s, tuple) else (got_s,), want_s if isinstance(want_s, tuple)
                        else (want_s,)):
            _close(g, w, np.float64)
        np.testing.assert_array_equal(x, x_before)
        for s, b in zip(state if isinstance(state, tuple) else (state,), state_before):
            np.testing.assert_array_equal(s, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_permuted_in_place_equal_numpy_take(dtype):
    from rnnkit.kernels.primitives import permute_rows_inplace
    rng = np.random.default_rng(5)
    for N in (1, 2, 7):
        a = rng.standard_normal((4, N, 9)).astype(dtype)
        back = rng.permutation(N)
        want = np.take(a, back, axis=1)
        permute_rows_inplace(a, back)
        np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel", list(CELL_NAMES))
def test_steps_shared_among_threads_equal_the_serial_loops_bit_for_bit(kernel, dtype, parts, monkeypatch):
    """The threaded loops (kernels.inference_threads): each thread's blocks are the serial loop's blocks,
    so the results are identical, not only close; with padding units (H = 37, 70, 150), input blocks of a
    few steps, both directions, variable lengths, and outputs written straight into y (H = 64). A layer
    of one block (the RNN at H = 37) stays serial."""
    from rnnkit.kernels import inference_threads
    monkeypatch.setattr(inference, "INPUT_ROWS", 2 * 9)
    monkeypatch.setattr(inference, "row_parts", lambda *a: 1)            # steps shared, not rows
    calls = []
    threaded = inference_threads.forward
    monkeypatch.setattr(inference_threads, "forward", lambda *a: calls.append(a[-1]) or threaded(*a))
    rng = np.random.default_rng(11)
    cell = CELLS[CELL_NAMES[kernel]]()
    for T, N, D, H in [(5, 9, 4, 37), (4, 7, 6, 70), (3, 8, 5, 64), (3, 6, 4, 150)]:     # the RNN's blocks: 4V units
        W_ih, W_hh, b_ih, b_hh = _weights(rng, cell.num_gates, H, D, dtype)
        x = rng.standard_normal((T, N, D)).astype(dtype)
        s0 = tuple((0.5 * rng.standard_normal((N, H))).astype(dtype) for _ in range(cell.num_states))
        for reverse in (False, True):
            for lengths in (None, rng.integers(1, T + 1, N)):
                monkeypatch.setattr(inference, "thread_parts", lambda N, Hp, P, blocks: 1)
                inference._packed_cache.clear()
                want_y, want_s = inference.scan_forward(kernel, x, s0, W_ih, W_hh, b_ih, b_hh, lengths, reverse)
                blocks = []
                monkeypatch.setattr(inference, "thread_parts",
                                    lambda N, Hp, P, B: blocks.append(B) or min(parts, B))
                before = len(calls)
                got_y, got_s = inference.scan_forward(kernel, x, s0, W_ih, W_hh, b_ih, b_hh, lengths, reverse)
                shared = min(parts, blocks[0]) > 1
                assert len(calls) == before + shared
                if shared:
                    assert calls[-1].size - 1 == min(parts, blocks[0]) and calls[-1][-1] == blocks[0]
                np.testing.assert_array_equal(got_y, want_y)
                for g, w in zip(got_s, want_s):
                    np.testing.assert_array_equal(g, w)
                ref_y, ref_s, _ = scan.scan_forward(cell, x, s0, W_ih, W_hh, b_ih, b_hh, lengths, reverse,
                                                    backend="numpy", need_cache=False)
                _close(got_y, ref_y, dtype)


@pytest.mark.parametrize("kernel", ["lstm", "gru", "rnn_tanh"])
def test_shared_steps_finish_when_the_threads_run_one_after_the_other(kernel, monkeypatch):
    """The threads meet at a spinning barrier after every step (kernels.spin). When the parallel loop gets
    fewer threads than parts (numba set to one thread here), the parts run one after the other: the first
    must take over the parts nobody has started rather than wait for them forever, and the results must
    still equal the serial loop's bit for bit."""
    import numba

    rng = np.random.default_rng(5)
    cell = CELLS[CELL_NAMES[kernel]]()
    T, N, D, H = 6, 8, 5, 150
    W_ih, W_hh, b_ih, b_hh = _weights(rng, cell.num_gates, H, D, np.float32)
    x = rng.standard_normal((T, N, D)).astype(np.float32)
    s0 = tuple((0.5 * rng.standard_normal((N, H))).astype(np.float32) for _ in range(cell.num_states))
    lengths = np.array([6, 2, 5, 6, 1, 3, 6, 4])
    monkeypatch.setattr(inference, "row_parts", lambda *a: 1)            # steps shared, not rows
    monkeypatch.setattr(inference, "thread_parts", lambda N, Hp, P, blocks: 1)
    want_y, want_s = inference.scan_forward(kernel, x, s0, W_ih, W_hh, b_ih, b_hh, lengths, False)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        for parts in (2, 3):
            monkeypatch.setattr(inference, "thread_parts", lambda N, Hp, P, blocks, parts=parts: parts)
            got_y, got_s = inference.scan_forward(kernel, x, s0, W_ih, W_hh, b_ih, b_hh, lengths, False)
            np.testing.assert_array_equal(got_y, want_y)
            for g, w in zip(got_s, want_s):
                np.testing.assert_array_equal(g, w)
    finally:
        numba.set_num_threads(before)


def test_panels_and_loop_buffers_start_on_a_cache_line():
    """NumPy's large arrays start 16 bytes past a 64-byte boundary and numba's 32 past one; the packed
    panels, the outputs and the loops' work arrays start on one (kernels.aligned), with their values."""
    from rnnkit.kernels.aligned import aligned_empty
    from rnnkit.kernels.inference_rows import line_aligned, loop_buffers

    for shape in [(3,), (64, 32, 512), (0, 4), (7, 5)]:
        a = aligned_empty(shape, np.float32)
        assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous
        assert a.size == 0 or a.ctypes.data % 64 == 0
    rng = np.random.default_rng(2)
    for H in (37, 256):
        W_hh = rng.standard_normal((4 * H, H)).astype(np.float32)
        W_ih = rng.standard_normal((4 * H, 5)).astype(np.float32)
        Wp, Wx, _ = inference.pack("lstm", W_hh, W_ih, np.zeros(4 * H, np.float32))
        assert Wp.ctypes.data % 64 == 0 and Wx.ctypes.data % 64 == 0
        src, _, width = inference.panel_rows("lstm", H, np.float32)
        for j in range(0, src.size, 7):
            b, col = divmod(j, Wp.shape[2])
            expect = W_hh[src[j]] if src[j] >= 0 else np.zeros(H, np.float32)
            np.testing.assert_array_equal(Wp[b, :, col], expect)
    h = rng.standard_normal((6, 48)).astype(np.float32)
    x = np.zeros((4, 6, 3), np.float32)
    bufs = loop_buffers(x, h, 192, 2)
    for buf in bufs[:4]:
        assert buf.ctypes.data % 64 == 0
    np.testing.assert_array_equal(bufs[0], h)
    assert line_aligned(h, 5, 3).shape == (5, 3)


def test_only_large_steps_are_shared_among_threads(monkeypatch):
    """As many threads as the thread setting (rnnkit.threads), on steps large enough to repay them."""
    import numba

    from rnnkit import threads
    monkeypatch.setitem(threads._setting, "threads", 1)
    assert inference.thread_parts(64, 512, 2048, 32) == 1               # config B's LSTM, one thread set
    monkeypatch.setitem(threads._setting, "threads", 2)
    shared = min(2, numba.config.NUMBA_NUM_THREADS) if inference.threadsafe_layer() else 1
    assert inference.thread_parts(64, 512, 2048, 32) == shared
    assert inference.thread_parts(1, 112, 448, 7) == 1                  # config C: one sequence, H = 100
    assert inference.thread_parts(64, 512, 2048, 1) == 1                # one block cannot be split


def test_steps_stay_on_one_thread_on_numbas_workqueue_layer(monkeypatch):
    """workqueue aborts the process when two Python threads launch parallel loops at once."""
    import numba

    from rnnkit import threads
    monkeypatch.setitem(threads._setting, "threads", 2)
    monkeypatch.setattr(numba.config, "THREADING_LAYER", "workqueue")
    monkeypatch.setattr(inference, "_layer", {})
    assert not inference.threadsafe_layer()
    assert inference.thread_parts(64, 512, 2048, 32) == 1


@pytest.mark.parametrize("kernel", list(CELL_NAMES))
def test_input_blocks_of_a_few_steps_equal_the_reference(kernel, monkeypatch):
    """The input product over blocks of 2 steps (a last block of 1), in both directions, with padding."""
    monkeypatch.setattr(inference, "INPUT_ROWS", 2 * 6)
    rng = np.random.default_rng(7)
    cell = CELLS[CELL_NAMES[kernel]]()
    W_ih, W_hh, b_ih, b_hh = _weights(rng, cell.num_gates, 19, 5, np.float32)
    x = rng.standard_normal((5, 6, 5)).astype(np.float32)
    s0 = tuple((0.5 * rng.standard_normal((6, 19))).astype(np.float32) for _ in range(cell.num_states))
    for reverse in (False, True):
        for lengths in (None, np.array([5, 1, 3, 4, 2, 5])):
            want_y, want_s, _ = scan.scan_forward(cell, x, s0, W_ih, W_hh, b_ih, b_hh, lengths, reverse,
                                                  backend="numpy", need_cache=False)
            got_y, got_s = inference.scan_forward(kernel, x, s0, W_ih, W_hh, b_ih, b_hh, lengths, reverse)
            _close(got_y, want_y, np.float32)
            for g, w in zip(got_s, want_s):
                _close(g, w, np.float32)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("vectors", [3, 4])
def test_panel_product_equals_matmul_across_k_chunks(dtype, vectors):
    """A (N, B*GV) = h W^T in panel order, K longer than a chunk (the chunks accumulate; 75 = 32+32+11,
    66 = 32+34), every row tile and split of the rows (13 = 6+6+1, 14 = 6+4+4, 8 = 4+4, 3 = 2+1)."""
    rng = np.random.default_rng(vectors)
    V = microgemm.lanes(dtype)
    B = 3
    for K, N in ((75, 13), (75, 14), (66, 8), (66, 3)):             # K = 66: a rest of 2 joins the last chunk
        Wp = rng.standard_normal((B, K, vectors * V)).astype(dtype)
        h = rng.standard_normal((N, K + 5)).astype(dtype)         # a wider row: only the first K are read
        A = np.full((N, B * vectors * V), np.nan, dtype)
        _panel_product(vectors, Wp, h, A, 32, False)
        want = np.concatenate([h[:, :K] @ Wp[b] for b in range(B)], axis=1)
        _close(A, want, dtype)
        _panel_product(vectors, Wp, h, A, 32, True)               # accumulate: A + h W^T
        _close(A, 2 * want, dtype)


def _panel_product(vectors, Wp, h, A, chunk, accumulate):
    from numba import njit

    @njit
    def run(Wp, h, A, chunk, accumulate):
        microgemm.panel_product(vectors, Wp, h, A, chunk, accumulate)
    run(Wp, h, A, chunk, accumulate)


def test_panel_rows_put_each_blocks_gates_side_by_side():
    """Hand-worked: LSTM, H = V + 2 units: block 0 holds units 0..V-1 of i, f, g, o; block 1 units V, V+1."""
    V = microgemm.lanes(np.float32)
    H = V + 2
    src, gates, width = inference.panel_rows("lstm", H, np.float32)
    assert (gates, width) == (4, V)
    assert src.size == 2 * 4 * V
    np.testing.assert_array_equal(src[:V], np.arange(V))                          # i, units 0..V-1
    np.testing.assert_array_equal(src[V:2 * V], H + np.arange(V))                 # f
    np.testing.assert_array_equal(src[4 * V:4 * V + 3], [V, V + 1, -1])           # block 1: i of V, V+1, pad
    np.testing.assert_array_equal(src[5 * V:5 * V + 2], [H + V, H + V + 1])       # block 1: f


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_weights_changed_in_place_are_packed_again(kind):
    """The packed-weight cache keys on the arrays and compares their values: an in-place update is seen."""
    layer, x, state, _, _, _ = make_case(kind, 1, False, False, True, dtype=np.float32, T=4, N=3, D=3, H=20)
    layer.eval()
    layer.backend = "numba"
    first = layer.forward(x, state, need_cache=False)[0]
    np.testing.assert_array_equal(layer.forward(x, state, need_cache=False)[0], first)   # a hit: the same
    layer.weight_hh_l0.data *= 0.5                               # an optimiser step writes in place
    layer.weight_ih_l0.data[0, 0] += 1.0
    layer.bias_hh_l0.data[-1] -= 0.25
    got = layer.forward(x, state, need_cache=False)[0]
    layer.backend = "numpy"
    want = layer.forward(x, state, need_cache=False)[0]
    _close(got, want, np.float32)
    assert not np.allclose(got, first)


def test_inputs_are_never_modified():
    layer, x, state, lengths, _, _ = make_case("gru", 2, True, True, True, dtype=np.float32, T=4, N=5, D=3, H=9)
    layer.backend = "numba"
    before = [a.copy() for a in (x, state, *[p.data for _, p in layer.named_parameters()])]
    layer.forward(x, state, lengths, need_cache=False)
    after = (x, state, *[p.data for _, p in layer.named_parameters()])
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_step_without_cache_equals_the_step_with_one(kind, dtype):
    """Generation's one-step path (eval mode, need_cache=False) against the reference step, over 6 steps."""
    layer = make_layer(kind, 5, 24, num_layers=2, dtype=dtype, seed=3)
    layer.eval()
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((6, 4, 5)).astype(dtype)
    s_ref = s_fast = None
    for x_t in xs:
        layer.backend = "numpy"
        out_ref, s_ref, cache = layer.step_forward(x_t, s_ref)
        assert cache is not None
        layer.backend = "numba"
        out_fast, s_fast, none = layer.step_forward(x_t, s_fast, need_cache=False)
        assert none is None
        _close(out_fast, out_ref, dtype)
        for g, w in zip(s_fast if kind == "lstm" else (s_fast,), s_ref if kind == "lstm" else (s_ref,)):
            _close(g, w, dtype)


def test_step_without_cache_in_training_mode_still_steps():
    """Training mode keeps the reference step (its dropout draws per step); only the cache is dropped."""
    layer = make_layer("lstm", 3, 8, num_layers=2, dtype=np.float64, seed=0, dropout=0.0)
    x_t = np.random.default_rng(0).standard_normal((2, 3))
    out, state, _ = layer.step_forward(x_t, need_cache=False)
    want, want_state, _ = layer.step_forward(x_t)
    np.testing.assert_array_equal(out, want)
    for g, w in zip(state, want_state):
        np.testing.assert_array_equal(g, w)


def test_char_lm_generation_step_equals_its_forward_pass():
    """CharLM.step in eval mode (the one-step inference path) gives forward's logits, step after step."""
    from rnnkit.charlm.data import Vocab
    from rnnkit.charlm.model import CharLM

    model = CharLM(Vocab.from_text("abcdefgh\n"), hidden_size=24, num_layers=2, embedding_size=8, rng=5)
    model.eval()
    ids = np.random.default_rng(2).integers(0, 9, (6, 2))                      # (T, N) two streams
    want, _, _ = model.forward(ids)                                            # (T, N, V)
    state = model.initial_state(2)
    for t in range(ids.shape[0]):
        logits, state = model.step(ids[t], state)
        _close(logits, want[t], np.float32)


@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_forecast_network_without_cache_equals_with_one(strategy):
    from rnnkit.forecast.model import ForecastNet

    net = ForecastNet(cell="gru", input_size=3, hidden_size=20, num_layers=2, dropout=0.0, strategy=strategy,
                      n_out=2, head_size=2, horizon=4 if strategy == "direct" else 1, future_size=0, rng=1)
    net.eval()
    x = np.random.default_rng(3).standard_normal((7, 5, 3)).astype(np.float32)
    want, want_state, cache = net.forward(x)
    got, got_state, none = net.forward(x, need_cache=False)
    assert cache is not None and none is None
    _close(got, want, np.float32)
    _close(got_state, want_state, np.float32)


def test_threaded_steps_from_two_python_threads_at_once(monkeypatch):
    """A server answering requests on threads: two threaded loops launched at once, each equal to its serial run.
    Where numba has no thread-safe layer, the loops are never shared (and launching them so would abort)."""
    from concurrent.futures import ThreadPoolExecutor

    from rnnkit import threads
    if not inference.threadsafe_layer():
        monkeypatch.setitem(threads._setting, "threads", 2)
        assert inference.thread_parts(64, 512, 2048, 32) == 1
        return
    rng = np.random.default_rng(5)
    W_ih, W_hh, b_ih, b_hh = _weights(rng, 4, 70, 6, np.float32)
    xs = [rng.standard_normal((20, 9, 6)).astype(np.float32) for _ in range(4)]
    s0 = tuple(np.zeros((9, 70), np.float32) for _ in range(2))
    monkeypatch.setattr(inference, "row_parts", lambda *a: 1)            # steps shared (tests/test_inference_rows_split.py)
    monkeypatch.setattr(inference, "thread_parts", lambda N, Hp, P, blocks: 1)
    want = [inference.scan_forward("lstm", x, s0, W_ih, W_hh, b_ih, b_hh, None, False)[0] for x in xs]
    monkeypatch.setattr(inference, "thread_parts", lambda N, Hp, P, blocks: min(2, blocks))
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda x: inference.scan_forward("lstm", x, s0, W_ih, W_hh, b_ih, b_hh, None, False)[0],
                            xs * 5))
    for i, y in enumerate(got):
        np.testing.assert_array_equal(y, want[i % 4])
