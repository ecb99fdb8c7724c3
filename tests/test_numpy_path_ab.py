"""benchmarks/numpy_path_ab.py --smoke on two copies of this tree: each worker imports its own copy, and the
JSON and table hold every case with positive times and after/before equal to the ratio of the medians."""

import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "numpy_path_ab.py")


def _copy_tree(dst):
    shutil.copytree(os.path.join(REPO, "rnnkit"), os.path.join(dst, "rnnkit"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    return str(dst)


def test_smoke_run_times_every_case_on_both_trees(tmp_path):
    before, after = _copy_tree(tmp_path / "before"), _copy_tree(tmp_path / "after")
    out, md = tmp_path / "ab.json", tmp_path / "ab.md"
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, SCRIPT, "--smoke", "--backends", "numpy", "--before-tree", before,
                           "--after-tree", after, "--out", str(out), "--md", str(md)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads(out.read_text())
    names = [r["case"] for r in res["rows"]]
    expected = {f"Q {cell} {mode} L1 uni" for cell in ("lstm", "gru", "rnn") for mode in ("train", "inference")}
    expected |= {"Q lstm train L2 bi varlen", "Q lstm inference L2 bi varlen", "charlm train (tiny)"}
    assert sorted(names) == sorted(expected)
    for r in res["rows"]:
        assert r["backend"] == "numpy" and r["before_ms"] > 0 and r["after_ms"] > 0 and r["rounds"] >= 2
        assert r["ratio"] == pytest.approx(r["after_ms"] / r["before_ms"], rel=1e-12)
        assert r["round_ratio_q1"] <= r["round_ratio_q3"]
        assert 0 < r["before_q20_ms"] <= r["before_ms"] and 0 < r["after_q20_ms"] <= r["after_ms"]
        assert r["ratio_q20"] == pytest.approx(r["after_q20_ms"] / r["before_q20_ms"], rel=1e-12)
    ratios = sorted(r["ratio"] for r in res["rows"])
    assert res["summary"]["cases"] == len(expected)
    assert res["summary"]["worst_ratio"] == ratios[-1] and res["summary"]["best_ratio"] == ratios[0]
    assert res["before"]["tree"] == before and res["after"]["tree"] == after
    table = md.read_text().splitlines()
    assert len([line for line in table if line.startswith("| Q ") or line.startswith("| charlm")]) == len(expected)


def test_a_worker_that_would_import_another_tree_is_refused(tmp_path):
    # a directory without rnnkit/: the worker falls back to the installed rnnkit, which the script must notice
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        import numpy_path_ab
    finally:
        sys.path.pop(0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError, match="not its own tree"):
        numpy_path_ab.Worker(str(empty), "numpy")
