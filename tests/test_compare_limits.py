"""`rnnkit compare` refuses settings that would not fit in memory: one line, exit 2, before any data is drawn."""

import tracemalloc

import numpy as np
import pytest

import rnnkit.compare.run as compare_run
import rnnkit.compare.tasks as compare_tasks
import rnnkit.runs
from rnnkit.cli.main import main
from rnnkit.compare import compare, make_task
from rnnkit.compare.model import matched_hidden_sizes
from rnnkit.errors import HyperparameterError
from rnnkit.kernels import backend

TESTER = ["compare", "adding", "--params", "300", "--seeds", "1", "--max-steps", "5", "--test-size", "10",
          "--seq-len", "100000000"]     # the command the OOM killer ended (23 GB RSS, exit 137)


@pytest.fixture
def nothing_drawn(monkeypatch):
    """Make drawing any batch or building any model an error, and the memory 8 GiB on every machine."""
    def refuse(*args, **kwargs):
        raise AssertionError("data drawn or a model built before the memory check")
    for name in ("adding_batch", "copy_batch", "temporal_order_batch"):
        monkeypatch.setattr(compare_tasks, name, refuse)
    monkeypatch.setattr(compare_run, "SeqModel", refuse)
    monkeypatch.setattr(rnnkit.runs, "available_memory", lambda: 8 << 30)


def test_huge_seq_len_is_refused_in_one_line_before_allocating(nothing_drawn, capsys):
    tracemalloc.start()
    try:
        rc = main(TESTER)                                         # progress on: no line before the refusal
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("rnnkit: error: --batch-size 32, --seq-len 100000000, --test-size 10 and --params 300 "
                          "(the validation and test sequences and one training step) need about ")
    assert "GiB of memory" in err and "8.0 GiB is available" in err
    assert err.rstrip().endswith("choose smaller sizes (--batch-size, --seq-len, --test-size, --params)")
    assert peak < 50 << 20                                        # nothing of the 0.8 GB per sequence was built


@pytest.mark.parametrize("task", ["adding", "copy", "temporal_order"])
def test_every_task_is_checked(task, nothing_drawn):
    with pytest.raises(HyperparameterError, match=r"need about [\d,.]+ [GT]iB of memory"):
        compare(task, seq_len=10 ** 8, params=300, seeds=1, max_steps=5, test_size=10, progress=False)


def test_the_test_size_alone_can_be_refused(nothing_drawn):
    # the training step is small (batch 1); 10^6 test sequences of 1,000 steps are 8 GB of inputs alone
    with pytest.raises(HyperparameterError, match="--batch-size 1, --seq-len 1000, --test-size 1000000"):
        compare("adding", seq_len=1000, params=300, seeds=1, max_steps=5, batch_size=1, test_size=10 ** 6,
                progress=False)


def test_size_flags_are_compare_flags(capsys):
    assert main(["compare", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in compare_run.SIZE_FLAGS:
        assert f"{flag} " in text


SMALL = ["compare", "adding", "--seq-len", "8", "--params", "300", "--seeds", "1", "--max-steps", "2",
         "--eval-every", "1", "--test-size", "10", "--cells", "gru", "--no-progress"]


def test_the_ordinary_small_command_still_runs(monkeypatch, capsys):
    monkeypatch.setattr(rnnkit.runs, "available_memory", lambda: 8 << 30)
    assert main(SMALL) == 0
    assert "\ngru " in capsys.readouterr().out


def test_the_check_compares_with_the_available_memory(monkeypatch, capsys):
    monkeypatch.setattr(rnnkit.runs, "available_memory", lambda: 1 << 10)      # 1 KiB: even T = 8 is refused
    assert main(SMALL) == 2
    assert "1 KiB" not in capsys.readouterr().err                                   # (MiB below 1 GiB)
    monkeypatch.setattr(rnnkit.runs, "available_memory", lambda: None)         # unknown: nothing to refuse
    assert main(SMALL) == 0


@pytest.mark.parametrize("name, T", [("adding", 30), ("copy", 7), ("temporal_order", 40)])
def test_batch_bytes_are_the_drawn_arrays(name, T):
    task = make_task(name, T)
    x, y = task.draw(np.random.default_rng(0), 5)
    assert task.length == x.shape[0]
    assert x.nbytes + y.nbytes <= task.batch_bytes(5) <= x.nbytes + y.nbytes + 8 * 5
    tracemalloc.start()
    try:
        task.draw(np.random.default_rng(0), 50)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 1.1 * task.draw_bytes(50) + (16 << 10)


@pytest.mark.parametrize("task", ["adding", "copy"])
@pytest.mark.parametrize("path", ["numpy", "numba"])
def test_estimate_follows_a_measured_run_on_each_path(task, path, monkeypatch):
    """On the NumPy reference path the estimate covers the traced peak of a real run and is not far above; on
    the compiled path (the default where numba runs) it is near the peak, not the NumPy figure: it refused
    --seq-len 12000 as 22 GiB, which ran in 3 GiB."""
    if path == "numba":
        from ci_skip_guard import numba_unavailable
        if numba_unavailable():
            pytest.skip(numba_unavailable())
    monkeypatch.setattr(backend, "_setting", path)
    T, params, test_size, batch_size = 150, 1000, 120, 16
    spec = make_task(task, T)
    sizes = matched_hidden_sizes(list(compare_run.CELLS), spec.input_size, spec.output_size, params)
    need = compare_run.memory_bytes(spec, sizes, batch_size, test_size)
    assert need == compare_run.memory_bytes(spec, sizes, batch_size, test_size, compiled=path == "numba")
    kw = dict(params=params, seeds=1, max_steps=1, eval_every=1, batch_size=batch_size, progress=False)
    compare(task, seq_len=4, test_size=2, **kw)                   # imports and first calls: not the run's memory
    tracemalloc.start()
    try:
        compare(task, seq_len=T, test_size=test_size, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if path == "numpy":
        assert peak <= need <= 2 * peak
    else:                     # (a cold numba cache compiles during the run: its allocations raise the peak)
        assert need <= 1.3 * peak
    if task != "adding":
        return
    big = make_task(task, 12_000)                 # the reviewer's run: 3.1 GiB resident with numba
    big_sizes = matched_hidden_sizes(["lstm"], big.input_size, big.output_size, 10_000)
    assert compare_run.memory_bytes(big, big_sizes, 32, 1000, compiled=True) < 3 << 30 < \
        compare_run.memory_bytes(big, big_sizes, 32, 1000, compiled=False)
