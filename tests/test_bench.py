"""`rnnkit bench` end to end in its tiny --quick configuration: it runs, prints a table, writes valid JSON.

Nothing here asserts a speed; only that the numbers exist, are positive, and
that both sides computed the same thing.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnkit.bench import cases, isolated, timing
from rnnkit.cli.main import main

torch = pytest.importorskip("torch")


def test_quick_bench_writes_table_and_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--cells", "lstm,gru", "--charlm", "--json", str(path), "--no-progress",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "Q lstm train L1 uni" in out and "char-LM training step" in out and "speedup" in out
    result = json.loads(path.read_text())
    assert result["suite"] == "quick" and result["threads"]["torch"] == 1
    assert len(result["cases"]) == 8                    # 2 cells x 2 modes x (plain, 2-layer bi varlen)
    for row in result["cases"]:
        assert row["max_abs_diff_vs_torch"] < 1e-3, row["case"]["name"]
        for side in ("rnnkit", "torch"):
            s = row["sides"][side]
            assert s["reps"] >= 3 and 0 < s["min_ms"] <= s["median_ms"]
            assert s["tokens_per_s"] > 0 and s["gflops"] > 0
        assert row["speedup"] > 0
    first = result["charlm"]["train_step"]["first_loss"]
    assert first["rnnkit"] == pytest.approx(first["torch"], rel=1e-4)   # the same model on both sides
    assert result["charlm"]["sampling"]["sides"]["rnnkit"]["chars_per_s"] > 0
    assert result["environment"]["numpy"] == np.__version__
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    table = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "speed_table.py"), str(path)],
                           capture_output=True, text=True, check=True).stdout
    assert "| Q lstm train L1 uni |" in table and "char-LM sampling" in table


def test_bench_without_torch_and_with_filters(tmp_path, capsys):
    path = tmp_path / "b.json"
    assert main(["bench", "--quick", "--no-torch", "--cells", "rnn", "--modes", "train", "--json", str(path),
                 "--no-progress"]) == 0
    result = json.loads(path.read_text())
    assert [r["case"]["name"] for r in result["cases"]] == ["Q rnn train L1 uni", "Q rnn train L2 bi varlen"]
    assert all(r["speedup"] is None and "torch" not in r["sides"] for r in result["cases"])


def test_bad_selection_is_a_user_error(capsys):
    assert main(["bench", "--quick", "--cells", "transformer", "--json", ""]) == 2
    assert "cells: expected some of lstm, gru, rnn" in capsys.readouterr().err


@pytest.mark.parametrize("flags,expect", [
    (["--threads", "0"], "threads (--threads) must be >= 1, got 0"),
    (["--cells", ""], "cells (--cells): the list is empty"),
    (["--modes", ","], "modes (--modes): the list is empty"),
    (["--target-seconds", "0"], "target_seconds (--target-seconds) must be > 0"),
])
def test_bad_flags_are_refused_before_timing(capsys, flags, expect):
    assert main(["bench", "--quick", "--no-torch", "--json", ""] + flags) == 2
    assert expect in capsys.readouterr().err


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


def test_peak_memory_child_reports_a_positive_step_peak():
    m = isolated.peak_memory(T=50, N=4, I=8, H=16, frameworks=("rnnkit",), threads=1)["rnnkit"]
    assert m["T"] == 50 and m["step_peak_mib"] >= 0 and m["tracemalloc_peak_mib"] > 0


def test_compile_time_child_times_each_cell():
    out = isolated._child_compile("rnn")
    assert out["rnn"] > 0 and out["backend"] in ("numpy", "numba")
