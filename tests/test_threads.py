"""rnnkit.threads: the --threads policy and set_threads (BLAS and numba thread counts)."""

import os
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit import threads
from rnnkit.errors import HyperparameterError


@pytest.fixture
def restore_threads():
    """Put BLAS (and numba) back to the count they had, whatever the test set."""
    from rnnkit.kernels.blas import get_blas_threads
    before = get_blas_threads()
    numba_before = sys.modules["numba"].get_num_threads() if "numba" in sys.modules else None
    setting = dict(threads._setting)
    yield
    if before is not None:
        threads.set_threads(before)
    threads._setting.update(setting)
    if numba_before is not None:
        sys.modules["numba"].set_num_threads(numba_before)


@pytest.mark.parametrize("value,expect", [("auto", None), (" AUTO ", None), (None, None), ("3", 3), (3, 3),
                                          (np.int64(2), 2), (4.0, 4)])
def test_parse_threads_accepts(value, expect):
    assert threads.parse_threads(value) == expect


@pytest.mark.parametrize("value", ["0", 0, -1, "-2", "x", "", "1.5", 1.5, True, [2]])
def test_parse_threads_refuses(value):
    with pytest.raises(HyperparameterError) as info:
        threads.parse_threads(value)
    assert str(info.value) == f"threads (--threads) must be 'auto' or an integer >= 1, got {value!r}"


@pytest.mark.parametrize("load,expect", [(0.0, 8), (0.4, 8), (2.6, 5), (7.9, 1), (8.0, 1), (100.0, 1),
                                         (-1.0, 8)])
def test_auto_threads_subtracts_the_load(monkeypatch, load, expect):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "busy_cores", lambda: None)        # no /proc/stat: the load average
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
    assert threads.auto_threads() == expect


def test_auto_threads_without_a_load_average(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 6)
    monkeypatch.setattr(threads, "busy_cores", lambda: None)

    def unavailable():
        raise OSError("no load average here")
    monkeypatch.setattr(os, "getloadavg", unavailable)
    assert threads.auto_threads() == 6


def test_auto_threads_on_this_machine_is_within_the_cores():
    cores = threads.available_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    assert 1 <= threads.auto_threads() <= cores


def _blas_counts():
    """Thread counts of NumPy's BLAS as threadpoolctl sees them (the one rnnkit and its kernels use).

    SciPy or torch may load BLAS libraries of their own; rnnkit does not multiply through them.
    """
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from rnnkit.kernels import blas
    found = blas._load()
    pools = [pool for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
    if found is not None:
        pools = [pool for pool in pools if os.path.realpath(pool["filepath"]) == os.path.realpath(found["path"])]
    return [pool["num_threads"] for pool in pools]


def test_set_threads_one_sets_blas_to_one(restore_threads):
    got = threads.set_threads(1)
    assert got["threads"] == 1 and got["blas"] in (1, None)
    counts = _blas_counts()
    assert counts and all(n == 1 for n in counts), counts
    if got["numba"] is not None:
        assert got["numba"] == 1


def test_set_threads_auto_and_the_package_shortcut(restore_threads, monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 0.0, 0.0))
    assert threads.set_threads("auto")["threads"] == 1
    assert all(n == 1 for n in _blas_counts())
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert rnnkit.set_threads()["threads"] == 2
    assert all(n == 2 for n in _blas_counts())


def test_set_threads_refuses_before_changing_anything(restore_threads):
    threads.set_threads(1)
    with pytest.raises(HyperparameterError):
        threads.set_threads("0")
    assert all(n == 1 for n in _blas_counts())


def test_more_threads_than_cores_is_refused(monkeypatch):
    """Oversubscription ran the sgemm peak at 3 GFLOP/s instead of 141 on 2 cores; say so instead."""
    import rnnkit.threads as threads
    from rnnkit.errors import HyperparameterError
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    with pytest.raises(HyperparameterError, match=r"threads \(--threads\) is 3, but this process may use 2 core"):
        threads.set_threads(3)
    assert threads.set_threads(2)["threads"] == 2


def test_busy_cores_reads_the_share_of_each_core_from_proc_stat(tmp_path, monkeypatch):
    """The load average lags (pip's install counted against the run after it): busy cores are measured now."""
    stat = tmp_path / "stat"
    samples = iter([
        "cpu  0 0 0 0 0 0 0 0\ncpu0 100 0 0 900 0 0 0 0\ncpu1 0 0 0 1000 0 0 0 0\ncpu2 0 0 0 0 0 0 0 0\n",
        "cpu  0 0 0 0 0 0 0 0\ncpu0 190 0 0 910 0 0 0 0\ncpu1 5 0 0 1095 0 0 0 0\ncpu2 99 0 0 1 0 0 0 0\n",
    ])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})          # cpu2 is not ours
    real_open = open

    def fake_open(path, *a, **k):
        if str(path) == str(stat):
            stat.write_text(next(samples))
        return real_open(path, *a, **k)
    monkeypatch.setattr("builtins.open", fake_open)
    busy = threads.busy_cores(window=0.0, stat_file=str(stat))
    assert busy == pytest.approx(0.9 + 0.05)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.95)
    assert threads.auto_threads() == 1
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.2)
    assert threads.auto_threads() == 2


def test_the_setting_is_remembered_for_the_threaded_loops(restore_threads):
    threads.set_threads(1)
    assert threads.thread_budget() == 1
    if threads.available_cores() >= 2:
        threads.set_threads(2)
        assert threads.thread_budget() == 2
