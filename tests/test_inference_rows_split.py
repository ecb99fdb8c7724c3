"""The inference loops with the batch's rows split among threads (kernels.inference_loops.forward_rows).

Rows of a batch never meet in a forward pass, so each thread runs the one-thread
loop on its own range of rows; each row's sums run in the same order as in the
one-thread loop, so the results must be identical, not only close. Checked for
every cell and dtype, 2 and 3 ranges, padding units, both directions, variable
lengths, given initial states, outputs written straight into y; when the parallel
loop gets one thread; from two Python threads at once; the balance of the ranges;
and when the split is chosen (kernels.inference.row_parts). No speed is asserted.
"""

import numpy as np
import pytest

from ci_skip_guard import numba_unavailable

if numba_unavailable():
    pytest.skip(numba_unavailable(), allow_module_level=True)
from rnnkit import threads                                    # noqa: E402
from rnnkit.kernels import inference, inference_loops         # noqa: E402
from rnnkit.nn import scan                                     # noqa: E402
from rnnkit.nn.cells import CELLS                              # noqa: E402

CELL_NAMES = {"rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU", "lstm": "LSTM", "gru": "GRU"}


def _case(rng, kernel, T, N, D, H, dtype):
    cell = CELLS[CELL_NAMES[kernel]]()
    G = cell.num_gates
    W_ih = (rng.standard_normal((G * H, D)) * 0.4).astype(dtype)
    W_hh = (rng.standard_normal((G * H, H)) * 0.3).astype(dtype)
    b_ih, b_hh = (rng.uniform(-0.5, 0.5, G * H).astype(dtype) for _ in range(2))
    x = rng.standard_normal((T, N, D)).astype(dtype)
    s0 = tuple((0.5 * rng.standard_normal((N, H))).astype(dtype) for _ in range(cell.num_states))
    return cell, (W_ih, W_hh, b_ih, b_hh), x, s0


def _spy_rows(monkeypatch):
    """Record the ``splits`` of every call of forward_rows."""
    calls = []
    real = inference_loops.forward_rows
    monkeypatch.setattr(inference_loops, "forward_rows", lambda *a: calls.append(a[-1].copy()) or real(*a))
    return calls


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel", list(CELL_NAMES))
def test_rows_split_among_threads_equal_the_one_thread_loop_bit_for_bit(kernel, dtype, parts, monkeypatch):
    monkeypatch.setattr(inference, "INPUT_ROWS", 2 * 9)                  # input blocks of a few steps
    calls = _spy_rows(monkeypatch)
    rng = np.random.default_rng(17)
    for T, N, D, H in [(5, 9, 4, 37), (4, 7, 6, 70), (3, 8, 5, 64), (6, 13, 4, 150)]:   # H = 64: states into y
        cell, weights, x, s0 = _case(rng, kernel, T, N, D, H, dtype)
        for reverse in (False, True):
            for lengths in (None, rng.integers(1, T + 1, N)):
                for state in (s0, tuple(np.zeros_like(s) for s in s0)):
                    monkeypatch.setattr(inference, "row_parts", lambda *a: 1)
                    monkeypatch.setattr(inference, "thread_parts", lambda *a: 1)
                    want_y, want_s = inference.scan_forward(kernel, x, state, *weights, lengths, reverse)
                    monkeypatch.setattr(inference, "row_parts", lambda *a: parts)
                    before = len(calls)
                    got_y, got_s = inference.scan_forward(kernel, x, state, *weights, lengths, reverse)
                    assert len(calls) == before + 1 and calls[-1].size == parts + 1
                    np.testing.assert_array_equal(got_y, want_y)
                    assert len(got_s) == len(want_s) == cell.num_states
                    for g, w in zip(got_s, want_s):
                        np.testing.assert_array_equal(g, w)
                    ref_y, ref_s, _ = scan.scan_forward(cell, x, state, *weights, lengths, reverse,
                                                        backend="numpy", need_cache=False)
                    tol = 1e-12 if dtype == np.float64 else 1e-5
                    np.testing.assert_allclose(got_y, ref_y, rtol=tol, atol=tol * max(1.0, np.abs(ref_y).max()))
                    for g, w in zip(got_s, ref_s if isinstance(ref_s, tuple) else (ref_s,)):
                        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * max(1.0, np.abs(w).max()))


def test_rows_split_with_one_thread_runs_the_ranges_one_after_the_other(monkeypatch):
    """No range waits for another, so a parallel loop given a single thread still finishes, with the same results."""
    import numba

    rng = np.random.default_rng(4)
    cell, weights, x, s0 = _case(rng, "lstm", 6, 10, 5, 40, np.float32)
    lengths = np.array([6, 2, 5, 6, 1, 3, 6, 4, 6, 2])
    monkeypatch.setattr(inference, "row_parts", lambda *a: 1)
    monkeypatch.setattr(inference, "thread_parts", lambda *a: 1)
    want_y, want_s = inference.scan_forward("lstm", x, s0, *weights, lengths, False)
    calls = _spy_rows(monkeypatch)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        monkeypatch.setattr(inference, "row_parts", lambda *a: 3)
        got_y, got_s = inference.scan_forward("lstm", x, s0, *weights, lengths, False)
    finally:
        numba.set_num_threads(before)
    assert len(calls) == 1 and calls[0].size == 4
    np.testing.assert_array_equal(got_y, want_y)
    for g, w in zip(got_s, want_s):
        np.testing.assert_array_equal(g, w)


def test_rows_split_from_two_python_threads_at_once(monkeypatch):
    """A server answering requests on threads: row-split loops launched at once equal their one-thread runs."""
    from concurrent.futures import ThreadPoolExecutor

    if not inference.threadsafe_layer():
        monkeypatch.setitem(threads._setting, "threads", 2)
        assert inference.row_parts(64, 32, 256, 1024, 1 << 20) == 1
        return
    rng = np.random.default_rng(6)
    _, weights, _, _ = _case(rng, "gru", 2, 2, 6, 70, np.float32)
    xs = [rng.standard_normal((20, 12, 6)).astype(np.float32) for _ in range(4)]
    s0 = (np.zeros((12, 70), np.float32),)
    monkeypatch.setattr(inference, "row_parts", lambda *a: 1)
    monkeypatch.setattr(inference, "thread_parts", lambda *a: 1)
    want = [inference.scan_forward("gru", x, s0, *weights, None, False)[0] for x in xs]
    calls = _spy_rows(monkeypatch)
    monkeypatch.setattr(inference, "row_parts", lambda *a: 2)
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda x: inference.scan_forward("gru", x, s0, *weights, None, False)[0], xs * 5))
    assert len(calls) == 20
    for i, y in enumerate(got):
        np.testing.assert_array_equal(y, want[i % 4])


def test_row_ranges_share_the_steps_evenly():
    """Contiguous ranges of rows (lengths in descending order) with about equal sums of lengths, each at least one row."""
    split = inference_loops.row_splits
    np.testing.assert_array_equal(split(np.full(32, 64), 2), [0, 16, 32])
    np.testing.assert_array_equal(split(np.full(9, 5), 3), [0, 3, 6, 9])
    np.testing.assert_array_equal(split(np.array([30, 10, 10, 5, 5, 5, 3]), 2), [0, 1, 7])   # 30 | 38 steps
    np.testing.assert_array_equal(split(np.array([30, 10, 10, 9, 5, 5, 5]), 2), [0, 2, 7])   # 40 | 34 steps
    np.testing.assert_array_equal(split(np.array([100, 1, 1]), 3), [0, 1, 2, 3])           # one row each at least
    np.testing.assert_array_equal(split(np.array([4]), 2), [0, 1])                        # fewer rows than threads
    skewed = np.array([64, 8, 8, 8, 8, 8, 8, 8])
    np.testing.assert_array_equal(split(skewed, 2), [0, 1, 8])            # 64 | 56 steps: one row alone
    np.testing.assert_array_equal(split(skewed, 2, 4), [0, 4, 8])         # at least 4 rows each
    np.testing.assert_array_equal(split(skewed, 3, 4), [0, 2, 4, 8])      # 8 // 3: at least 2 each
    np.testing.assert_array_equal(split(np.array([5, 3, 0, 0]), 2), [0, 1, 4])             # lengths of 0
    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = np.sort(rng.integers(1, 200, rng.integers(2, 80)))[::-1]
        parts = int(rng.integers(2, 5))
        s = split(lengths, parts)
        assert s[0] == 0 and s[-1] == lengths.size and np.all(np.diff(s) >= 1)
        work = [lengths[a:b].sum() for a, b in zip(s[:-1], s[1:])]
        assert max(work) - min(work) <= 2 * lengths.max()              # within a row or two of even
        s4 = split(lengths, parts, 4)
        assert s4[0] == 0 and s4[-1] == lengths.size
        assert np.all(np.diff(s4) >= max(1, min(4, lengths.size // parts)))


def test_rows_are_split_when_each_thread_gets_enough_rows_for_the_weights_it_reads(monkeypatch):
    monkeypatch.setitem(threads._setting, "threads", 1)
    assert inference.row_parts(64, 32, 256, 1024, 1 << 20) == 1           # config A's LSTM, one thread set
    monkeypatch.setitem(threads._setting, "threads", 2)
    if not inference.threadsafe_layer():
        assert inference.row_parts(64, 32, 256, 1024, 1 << 20) == 1
        return
    monkeypatch.setattr(inference, "thread_count", lambda: 2)            # the choice, on any machine
    assert inference.row_parts(64, 32, 256, 1024, 1 << 20) == 2           # A: 16 rows each, 1 MiB of panels
    assert inference.row_parts(200, 16, 128, 128, 1 << 16) == 2           # D's RNN: its steps were too small to share
    assert inference.row_parts(64, 8, 256, 1024, 1 << 20) == 2            # 4 rows each
    assert inference.row_parts(64, 6, 256, 1024, 1 << 20) == 1            # 3 rows each
    assert inference.row_parts(64, 16, 512, 2048, 4 << 20) == 1           # 8 rows each reading 4 MiB
    assert inference.row_parts(64, 32, 512, 2048, 4 << 20) == 2           # 16 rows each
    assert inference.row_parts(50, 1, 112, 448, 200 << 10) == 1           # config C: one sequence
    assert inference.row_parts(3, 8, 16, 64, 4 << 10) == 1                # too little work to start threads
    monkeypatch.setattr(inference, "thread_count", lambda: 4)
    assert inference.row_parts(64, 32, 256, 1024, 1 << 20) == 4
    assert inference.row_parts(64, 12, 256, 1024, 1 << 20) == 3           # fewer threads, 4 rows each
    assert inference.row_parts(64, 32, 512, 2048, 4 << 20) == 2           # 16 rows each reading 4 MiB
    monkeypatch.setattr(inference, "thread_count", lambda: 2)
    with inference.serial_steps():                                        # a direction already on its own thread
        assert inference.row_parts(64, 32, 256, 1024, 1 << 20) == 1
    import numba
    monkeypatch.setattr(numba.config, "THREADING_LAYER", "workqueue")
    monkeypatch.setattr(inference, "_layer", {})
    assert inference.row_parts(64, 32, 256, 1024, 1 << 20) == 1           # workqueue: never two loops at once


def test_a_stack_at_config_a_splits_its_rows_and_equals_one_thread(monkeypatch):
    """The real decision, end to end: a two-layer bidirectional LSTM stack with 32 sequences on 2 threads."""
    from rnnkit.nn import LSTM

    monkeypatch.setitem(threads._setting, "threads", 2)
    net = LSTM(16, 64, num_layers=2, bidirectional=True, dtype=np.float32, rng=0)
    x = np.random.default_rng(1).standard_normal((40, 32, 16)).astype(np.float32)
    lengths = np.random.default_rng(2).integers(1, 41, 32)
    monkeypatch.setattr(inference, "PAIR_MACS", 1 << 62)                  # directions one after the other
    calls = _spy_rows(monkeypatch)
    got = net.forward(x, lengths=lengths, need_cache=False)
    assert len(calls) == (4 if inference.threadsafe_layer() and inference.thread_count() >= 2 else 0)
    monkeypatch.setitem(threads._setting, "threads", 1)
    want = net.forward(x, lengths=lengths, need_cache=False)
    np.testing.assert_array_equal(got[0], want[0])
    for g, w in zip(got[1], want[1]):
        np.testing.assert_array_equal(g, w)


def test_paired_directions_never_split_their_rows(monkeypatch):
    """Both directions at once, one thread each (nn.directions under serial_steps): each runs the one-thread
    loop, with a batch large enough that a direction alone would split its rows."""
    from rnnkit.nn import GRU

    monkeypatch.setitem(threads._setting, "threads", 2)
    monkeypatch.setattr(inference, "thread_count", lambda: 2)
    net = GRU(8, 48, bidirectional=True, dtype=np.float32, rng=0)
    x = np.random.default_rng(3).standard_normal((30, 24, 8)).astype(np.float32)
    calls = _spy_rows(monkeypatch)
    monkeypatch.setattr(inference, "PAIR_MACS", 1)                        # always at once
    monkeypatch.setattr(inference, "PAIR_STEP_MACS", 1 << 62)
    paired = net.forward(x, need_cache=False)
    assert calls == []
    monkeypatch.setattr(inference, "PAIR_MACS", 1 << 62)                  # one after the other
    alone = net.forward(x, need_cache=False)
    assert len(calls) == (2 if inference.threadsafe_layer() else 0)
    np.testing.assert_array_equal(paired[0], alone[0])
    np.testing.assert_array_equal(paired[1], alone[1])

