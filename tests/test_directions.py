"""Both directions of a bidirectional layer at once (rnnkit.nn.directions) for inference.

The concurrent run must give the same arrays, bit for bit, as the two scans one after
the other (each direction is the same serial loop, only on another thread), run only
where it is allowed (no cache, plain compiled scans, two threads, enough work), keep
each direction's steps on its own thread, and pass an error on either thread to the
caller after both have stopped. No speed is asserted.
"""

import threading

import numpy as np
import pytest

from ci_skip_guard import numba_unavailable

if numba_unavailable():
    pytest.skip(numba_unavailable(), allow_module_level=True)
from rnnkit import threads                                     # noqa: E402
from rnnkit.kernels import inference                           # noqa: E402
from rnnkit.nn import GRU, LSTM, RNN, directions               # noqa: E402

STACKS = {"lstm": LSTM, "gru": GRU, "rnn_tanh": RNN}


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setitem(threads._setting, "threads", 2)


def _spy(monkeypatch):
    """Record (thread name, reverse, thread_parts inside that scan) of every scan the module starts."""
    seen = []
    real_scan, real_parts = directions.scan_forward, inference.thread_parts

    def parts(*a):
        n = real_parts(*a)
        mine = [record for record in seen if record[0] == threading.current_thread().name]
        mine[-1][2].append(n)
        return n

    def scan(**kw):
        seen.append((threading.current_thread().name, kw["reverse"], []))
        return real_scan(**kw)

    monkeypatch.setattr(directions, "scan_forward", scan)
    monkeypatch.setattr(inference, "thread_parts", parts)
    return seen


def _stack(kernel, layers, dtype, seed=0, **kw):
    return STACKS[kernel](6, 80, num_layers=layers, bidirectional=True, dtype=dtype, rng=seed, **kw)


@pytest.mark.parametrize("kernel", list(STACKS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layers", [1, 2])
def test_both_directions_at_once_equal_one_after_the_other(kernel, dtype, layers, two_threads, monkeypatch):
    """With and without variable lengths and a given initial state; and equal to the NumPy reference."""
    rng = np.random.default_rng(3)
    T, N = 9, 7
    net = _stack(kernel, layers, dtype)
    x = rng.standard_normal((T, N, 6)).astype(dtype)
    n_states = 2 if kernel == "lstm" else 1
    h0 = tuple((0.5 * rng.standard_normal((2 * layers, N, 80))).astype(dtype) for _ in range(n_states))
    state = h0 if kernel == "lstm" else h0[0]
    ref = _stack(kernel, layers, dtype, backend="numpy")                  # the same seed: the same weights
    seen = _spy(monkeypatch)
    monkeypatch.setattr(inference, "THREADED_MACS", 1)                   # one after the other: shared steps
    shared = 2 if inference.threadsafe_layer() else 1
    for lengths in (None, rng.integers(1, T + 1, N)):
        for s in (None, state):
            monkeypatch.setattr(inference, "PAIR_MACS", 1 << 62)          # never at once
            want_y, want_s, _ = net.forward(x, s, lengths=lengths, need_cache=False)
            assert not any(name.startswith("rnnkit-direction") for name, _, _ in seen)
            assert all(set(parts) == {shared} for _, _, parts in seen)
            seen.clear()
            monkeypatch.setattr(inference, "PAIR_MACS", 1)                # always at once
            got_y, got_s, _ = net.forward(x, s, lengths=lengths, need_cache=False)
            assert len(seen) == 2 * layers
            for name, reverse, parts in seen:                             # forward here, reverse on the helper
                assert name.startswith("rnnkit-direction") == reverse
                assert set(parts) == {1}                                  # each direction's steps on its thread
            np.testing.assert_array_equal(got_y, want_y)
            for g, w in zip(got_s if kernel == "lstm" else (got_s,), want_s if kernel == "lstm" else (want_s,)):
                np.testing.assert_array_equal(g, w)
            ref_y = ref.forward(x, s, lengths=lengths, need_cache=False)[0]
            seen.clear()
            tol = 1e-12 if dtype == np.float64 else 1e-5
            np.testing.assert_allclose(got_y, ref_y, rtol=tol, atol=tol * max(1.0, float(np.abs(ref_y).max())))


def test_only_where_allowed(two_threads, monkeypatch):
    """Not with a cache (training), one thread, a variant loop, one direction, or too little work."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((200, 16, 6)).astype(np.float32)             # config D's T and N
    net = _stack("lstm", 1, np.float32)
    seen = _spy(monkeypatch)
    net.forward(x, need_cache=False)
    assert [name.startswith("rnnkit-direction") for name, _, _ in seen] == [False, True]
    seen.clear()
    net.forward(x, need_cache=True)                                      # a training pass keeps its cache
    assert not any(name.startswith("rnnkit-direction") for name, _, _ in seen)
    monkeypatch.setitem(threads._setting, "threads", 1)
    seen.clear()
    net.forward(x, need_cache=False)
    assert not any(name.startswith("rnnkit-direction") for name, _, _ in seen)
    monkeypatch.setitem(threads._setting, "threads", 2)
    zoned = _stack("lstm", 1, np.float32, zoneout=0.1)                    # a variant loop: not these kernels
    zoned.train()
    seen.clear()
    zoned.forward(x, need_cache=False, rng=np.random.default_rng(0))
    assert not any(name.startswith("rnnkit-direction") for name, _, _ in seen)
    seen.clear()
    net.forward(x[:3, :1], need_cache=False)                              # 3 x 1 x 80 x 320: too small
    assert not any(name.startswith("rnnkit-direction") for name, _, _ in seen)
    assert inference.pair_pays("lstm", 200, 16, 128)                      # config D
    assert not inference.pair_pays("lstm", 50, 1, 100)                    # config C: one sequence
    assert not inference.pair_pays("gru", 1, 64, 512)                     # one step: generation
    assert not inference.pair_pays("lstm", 64, 32, 256)                   # config A: its steps are shared


@pytest.mark.parametrize("failing", [False, True])
def test_an_error_in_either_direction_reaches_the_caller_after_both_stopped(failing, two_threads, monkeypatch):
    """``failing``: the reverse scan (on the helper thread) raises, else the forward one (on the caller)."""
    monkeypatch.setattr(inference, "PAIR_MACS", 1)
    real = directions.scan_forward
    finished = []

    def scan(**kw):
        if kw["reverse"] == failing:
            raise RuntimeError(f"scan failed, reverse={failing}")
        out = real(**kw)
        finished.append(kw["reverse"])
        return out

    monkeypatch.setattr(directions, "scan_forward", scan)
    net = _stack("gru", 1, np.float32)
    x = np.random.default_rng(5).standard_normal((9, 7, 6)).astype(np.float32)
    with pytest.raises(RuntimeError, match=f"reverse={failing}"):
        net.forward(x, need_cache=False)
    assert finished == [not failing]                                      # the other one ran to its end
    monkeypatch.setattr(directions, "scan_forward", real)
    y, _, _ = net.forward(x, need_cache=False)                            # the helper still serves
    assert y.shape == (9, 7, 160) and np.isfinite(y).all()


def test_a_caller_that_finds_the_helper_busy_runs_both_directions_itself(two_threads, monkeypatch):
    """A second caller (a server's other request thread) does not queue behind the helper's pair: with
    the helper taken, both directions run on the caller, with the same results."""
    monkeypatch.setattr(inference, "PAIR_MACS", 1)
    net = _stack("lstm", 1, np.float32)
    x = np.random.default_rng(6).standard_normal((9, 7, 6)).astype(np.float32)
    seen = _spy(monkeypatch)
    paired = net.forward(x, need_cache=False)[0]
    assert [name.startswith("rnnkit-direction") for name, _, _ in seen] == [False, True]
    seen.clear()
    assert directions._busy.acquire(blocking=False)                      # another caller's pair is running
    try:
        alone = net.forward(x, need_cache=False)[0]
    finally:
        directions._busy.release()
    assert [name.startswith("rnnkit-direction") for name, _, _ in seen] == [False, False]
    np.testing.assert_array_equal(alone, paired)
    seen.clear()
    net.forward(x, need_cache=False)                                      # free again: the helper serves
    assert [name.startswith("rnnkit-direction") for name, _, _ in seen] == [False, True]
