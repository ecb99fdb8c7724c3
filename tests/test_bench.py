"""`rnnkit bench` end to end in its tiny --quick configuration: it runs, prints a table, writes valid JSON.

Nothing here asserts a speed; only that the numbers exist, are positive, and
that both sides computed the same thing.
"""

import json
import re
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnkit.bench import cases, isolated, timing
from rnnkit.cli.main import main


def test_quick_bench_writes_table_and_json(tmp_path, capsys):
    pytest.importorskip("torch")       # the other tests time rnnkit alone and run without torch
    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--cells", "lstm,gru", "--charlm", "--out", str(path), "--no-progress",
                 "--threads", "1", "--random-state", "3"]) == 0
    out = capsys.readouterr().out
    assert "Q lstm train L1 uni" in out and "char-LM training step" in out and "speedup" in out
    assert re.search(r"threads 1 \((blas 1, )?(numba 1, )?torch 1\)", out), out      # not a Python dict
    result = json.loads(path.read_text())
    assert result["suite"] == "quick" and result["random_state"] == 3
    assert result["threads"]["threads"] == 1 and result["threads"]["torch"] == 1      # one count for both sides
    assert result["threads"]["blas"] in (1, None)
    assert len(result["cases"]) == 8                    # 2 cells x 2 modes x (plain, 2-layer bi varlen)
    for row in result["cases"]:
        assert row["max_abs_diff_vs_torch"] < 1e-3, row["case"]["name"]
        for side in ("rnnkit", "torch"):
            s = row["sides"][side]
            assert s["reps"] >= 3 and 0 < s["min_ms"] <= s["median_ms"]
            assert s["tokens_per_s"] > 0 and s["gflops"] > 0
        assert row["speedup"] > 0
        if row["case"]["mode"] == "inference":      # the layer exported to ONNX, run by onnxruntime
            assert row["max_abs_diff_vs_onnxruntime"] < 1e-4, row["case"]["name"]
            assert row["sides"]["onnxruntime"]["median_ms"] > 0 and row["speedup_vs_onnxruntime"] > 0
        else:
            assert "onnxruntime" not in row["sides"] and row["speedup_vs_onnxruntime"] is None
    first = result["charlm"]["train_step"]["first_loss"]
    assert first["rnnkit"] == pytest.approx(first["torch"], rel=1e-4)   # the same model on both sides
    assert result["charlm"]["sampling"]["sides"]["rnnkit"]["chars_per_s"] > 0
    assert result["charlm"]["sampling"]["sides"]["onnxruntime"]["chars_per_s"] > 0   # the exported char LM
    assert result["charlm"]["sampling"]["speedup_vs_onnxruntime"] > 0
    assert result["environment"]["numpy"] == np.__version__
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    table = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "speed_table.py"), str(path)],
                           capture_output=True, text=True, check=True).stdout
    assert "| Q lstm train L1 uni |" in table and "char-LM sampling" in table and "vs onnxruntime" in table


def test_bench_without_torch_and_with_filters(tmp_path, capsys):
    path = tmp_path / "b.json"
    assert main(["bench", "--quick", "--no-torch", "--cells", "rnn", "--modes", "train", "--out", str(path),
                 "--no-progress", "--target-seconds", "0.01"]) == 0
    result = json.loads(path.read_text())
    assert [r["case"]["name"] for r in result["cases"]] == ["Q rnn train L1 uni", "Q rnn train L2 bi varlen"]
    assert all(r["speedup"] is None and "torch" not in r["sides"] for r in result["cases"])


@pytest.fixture
def no_timing(monkeypatch):
    """Timing anything fails the test: the mistakes below must be refused before any work."""
    def refuse(*args, **kwargs):
        raise AssertionError("the benchmark started timing before refusing the mistake")
    monkeypatch.setattr(timing, "interleaved", refuse)
    monkeypatch.setattr(timing, "sgemm_peak", refuse)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1, err
    return err


def test_bad_selection_is_a_user_error(capsys, no_timing):
    assert main(["bench", "--quick", "--cells", "transformer", "--out", "none"]) == 2
    assert "cells (--cells): expected some of lstm, gru, rnn" in _one_error_line(capsys)


@pytest.mark.parametrize("flags,expect", [
    (["--threads", "0"], "threads (--threads) must be 'auto' or an integer >= 1, got '0'"),
    (["--threads", "many"], "threads (--threads) must be 'auto' or an integer >= 1, got 'many'"),
    (["--cells", ""], "cells (--cells): the list is empty"),
    (["--modes", ","], "modes (--modes): the list is empty"),
    (["--target-seconds", "0"], "target_seconds (--target-seconds) must be > 0"),
    (["--calls-per-turn", "0"], "calls_per_turn (--calls-per-turn) must be"),
    (["--suite", "full"], "--quick is --suite quick, and --suite full asks for another suite"),   # ran quick
])
def test_bad_flags_are_refused_before_timing(capsys, no_timing, flags, expect):
    assert main(["bench", "--quick", "--no-torch", "--out", "none"] + flags) == 2
    assert expect in _one_error_line(capsys)


@pytest.mark.parametrize("make,expect", [
    (lambda d: "", "--out: the path is empty; give a file name such as rnnkit-bench.json"),
    (lambda d: str(d), "is a directory"),
    (lambda d: str(d / ("b" * 300 + ".json")), "the file name is 305 bytes long"),
    (lambda d: str(d / "missing" / "b.json"), "directory does not exist"),
])
def test_bad_json_path_is_refused_before_timing(tmp_path, capsys, no_timing, make, expect):
    # a bad --out used to be found only after the whole benchmark, naming a temporary file
    assert main(["bench", "--quick", "--no-torch", "--out", make(tmp_path)]) == 2
    err = _one_error_line(capsys)
    assert "--out" in err and expect in err and ".tmp" not in err


def test_old_flag_spellings_are_gone(capsys, no_timing):
    assert main(["bench", "--quick", "--seed", "1", "--out", "none"]) == 2
    assert "unrecognized arguments: --seed" in capsys.readouterr().err


def test_random_state_and_auto_threads(tmp_path, monkeypatch):
    path = tmp_path / "b.json"
    import rnnkit.threads
    # an idle machine, whatever else runs beside the test: both readings of other work say none
    monkeypatch.setattr(rnnkit.threads, "busy_cores", lambda *a, **k: 0.0)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert main(["bench", "--quick", "--no-torch", "--cells", "rnn", "--modes", "inference", "--no-progress",
                 "--target-seconds", "0.01", "--random-state", "none", "--threads", "auto",
                 "--out", str(path)]) == 0
    result = json.loads(path.read_text())
    from rnnkit.threads import available_cores
    assert result["threads"]["threads"] == available_cores()          # nothing else running: every core
    assert isinstance(result["random_state"], int) and result["random_state"] >= 0


def test_json_is_written_atomically(tmp_path, monkeypatch):
    # the results go through rnnkit.io.atomic: a failure while writing leaves the previous file whole
    from rnnkit.bench import run as run_mod
    path = tmp_path / "b.json"
    previous = '{\n  "suite": "quick", "previous": "results"\n}\n'     # an earlier report (others are refused)
    path.write_text(previous)
    calls = []

    def failing_write(target, obj, what=None):
        calls.append((target, what))
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(run_mod, "write_json", failing_write)
    with pytest.raises(OSError):
        run_mod.run_bench("quick", cells=["rnn"], modes=["inference"], use_torch=False, target_seconds=0.01,
                          threads=1, out=str(path))
    assert calls == [(str(path), "--out")] and path.read_text() == previous


def test_suites_cover_the_standard_configs_and_variants():
    standard = cases.suite("standard")
    names = {c.name for c in standard}
    for config in "ABCD":
        assert f"{config} lstm train L1 uni" in names and f"{config} gru inference L1 uni" in names
    assert {"A rnn train L2 uni", "A rnn train L1 bi", "A rnn train L1 uni varlen"} <= names
    full = cases.suite("full", configs=["A", "C"])
    assert len(full) == 3 * 2 * 8 + 3 * 2 * 4          # C has N=1: no variable-length variant
    assert cases.Case("lstm", "A", 64, 32, 64, 256, "train").flops() == 3 * 2 * 64 * 32 * 4 * 256 * (64 + 256)


def test_interleaved_timing_and_summary():
    calls = []
    samples = timing.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                 warmup=1, min_reps=4, max_reps=4)
    assert [len(v) for v in samples.values()] == [4, 4]
    assert calls[2:6] == ["a", "b", "b", "a"]           # the starting side alternates
    s = timing.summarize([0.001, 0.002, 0.003, 0.004])
    assert s["median_ms"] == pytest.approx(2.5) and s["reps"] == 4


def test_interleaved_turns_time_all_but_their_first_call(monkeypatch):
    """A turn of 3 calls: the first absorbs what the previous side left running and is not timed."""
    events = []
    clock = iter(range(1000))

    def tick():
        events.append("t")
        return float(next(clock))
    monkeypatch.setattr(timing.time, "perf_counter", tick)
    samples = timing.interleaved({"a": lambda: events.append("a"), "b": lambda: events.append("b")},
                                 warmup=1, min_reps=4, max_reps=4, calls_per_turn=3)
    timed = "".join(events[6:])                          # after one timed warm-up call each
    # 4 timed calls each = 2 rounds of turns; the starting side alternates; "t" brackets every timed call
    assert timed == "a" + "tat" * 2 + "b" + "tbt" * 2 + "b" + "tbt" * 2 + "a" + "tat" * 2
    assert samples == {"a": [1.0] * 4, "b": [1.0] * 4}
    events.clear()
    timing.interleaved({"a": lambda: events.append("a")}, warmup=1, min_reps=2, max_reps=2)
    assert "".join(events) == "tat" + "tat" * 2               # one call per turn: every call timed


def test_peak_memory_child_reports_a_positive_step_peak():
    m = isolated.peak_memory(T=50, N=4, I=8, H=16, frameworks=("rnnkit",), threads=1)["rnnkit"]
    assert m["T"] == 50 and m["step_peak_mib"] >= 0 and m["tracemalloc_peak_mib"] > 0


def test_compile_time_child_times_each_cell():
    out = isolated._child_compile("rnn")
    assert out["rnn"] > 0 and out["backend"] in ("numpy", "numba")


def test_quick_refuses_configs_it_would_ignore(capsys):
    """`bench --quick --configs Z` ran the quick suite and said nothing about Z."""
    assert main(["bench", "--quick", "--no-torch", "--configs", "Z"]) == 2
    assert "configs (--configs) do not apply to the quick suite" in capsys.readouterr().err


def test_charlm_sampling_through_onnxruntime_draws_the_same_characters():
    """The bench's onnxruntime sampler runs the same model (exported) with the same draws as rnnkit's side."""
    pytest.importorskip("onnxruntime")
    from rnnkit.bench import charlm_case

    c = charlm_case.CharLMCase(T=8, N=4, hidden=32, embedding=16, sample_chars=40)
    fns = charlm_case.build_sampling(c, None, seed=3, onnx_threads=1)
    ours = fns["rnnkit"]()
    assert fns["onnxruntime"]() == ours and len(set(ours)) > 5
