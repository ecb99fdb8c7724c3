"""`rnnkit compare` end to end on a tiny budget, and its one-line refusals."""

import json

import numpy as np
import pytest

from rnnkit.cli.main import main
from rnnkit.compare import compare


def test_compare_end_to_end(tmp_path, capsys):
    out, curves, grads = tmp_path / "c.json", tmp_path / "c.png", tmp_path / "g.png"
    rc = main(["compare", "adding", "--seq-len", "8", "--params", "1000", "--seeds", "2", "--max-steps", "6",
               "--eval-every", "3", "--test-size", "20", "--out", str(out), "--plot", str(curves),
               "--grad-plot", str(grads), "--no-progress", "--threads", "1"])
    text = capsys.readouterr().out
    assert rc == 0
    for cell in ("lstm", "gru", "rnn"):
        assert f"\n{cell} " in text
    report = json.loads(out.read_text())
    assert report["baseline"] == pytest.approx(1 / 6)
    counts = [r["summary"]["parameters"] for r in report["cells"].values()]
    assert max(abs(c - 1000) for c in counts) / 1000 < 0.05                     # matched, and printed
    for cell, r in report["cells"].items():
        assert str(r["summary"]["parameters"]) in text.replace(",", "")
        assert len(r["runs"]) == 2 and all(run["steps"] == 6 for run in r["runs"])
        losses = [run["test"]["loss"] for run in r["runs"]]
        assert r["summary"]["test_loss_mean"] == pytest.approx(np.mean(losses))
        assert r["summary"]["test_loss_min"] == min(losses)
        curve = np.array(r["runs"][0]["curve"])
        assert list(curve[:, 0]) == [0, 3, 6] and np.all(np.diff(curve[:, 1]) >= 0)
        d = r["runs"][0]["diagnostics"]
        assert len(d["grad_norm_init"]) == 8 and len(d["grad_norm_trained"]) == 8
        assert ("saturation_init" in d) == (cell != "rnn")
    assert curves.read_bytes()[:4] == b"\x89PNG" and grads.read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_result():
    kw = dict(seq_len=6, cells=["gru"], params=200, seeds=1, max_steps=4, eval_every=2, test_size=10,
              progress=False)
    a, b = compare("copy", **kw), compare("copy", **kw)
    assert a["cells"]["gru"]["runs"][0]["test"] == b["cells"]["gru"]["runs"][0]["test"]
    decayed = compare("copy", weight_decay=0.5, **kw)              # --weight-decay: AdamW, as in the train commands
    assert decayed["weight_decay"] == 0.5 and a["weight_decay"] == 0.0
    assert decayed["cells"]["gru"]["runs"][0]["test"] != a["cells"]["gru"]["runs"][0]["test"]


@pytest.mark.parametrize("args, expect", [
    (["sorting"], "task (TASK) must be one of"),
    (["adding", "--cells", "lstm,transformer"], "cells (--cells) must be one of"),
    (["adding", "--seq-len", "0"], "seq_len (--seq-len)"),
    (["adding", "--seeds", "0"], "seeds (--seeds)"),
    (["adding", "--weight-decay", "-0.1"], "weight_decay (--weight-decay) must be >= 0"),
    (["adding", "--weight-decay", "200"], "would multiply the weights by 1 - 2 at every step"),
    (["adding", "--max-steps", "none"], "--max-steps or --max-minutes"),
    (["adding", "--params", "100000000"], "params (--params) must be between 22 (the smallest lstm, H=1) and "
                                          "16,797,697 (the largest rnn compared, H=4,096) for this task, got "
                                          "100,000,000"),
    (["adding", "--params", "5"], "params (--params) must be between 22"),
    (["adding", "--params", "21", "--cells", "lstm,gru"], "between 22 (the smallest lstm, H=1) and 50,384,897 "
                                                           "(the largest gru compared"),
])
def test_bad_input_is_one_line_exit_2(args, expect, capsys, tmp_path):
    rc = main(["compare", *args, "--no-progress", "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert rc == 2
    assert expect in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.json").exists()


def test_output_into_missing_directory_fails_before_training(tmp_path, capsys):
    rc = main(["compare", "adding", "--out", str(tmp_path / "no" / "x.json"), "--no-progress"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_a_budget_in_range_is_matched_at_both_ends():
    from rnnkit.compare.model import MAX_HIDDEN, matched_hidden_sizes, parameter_count
    top = parameter_count("rnn", 2, MAX_HIDDEN, 1)
    assert matched_hidden_sizes(["rnn"], 2, 1, top) == {"rnn": MAX_HIDDEN}
    assert matched_hidden_sizes(["lstm", "rnn"], 2, 1, parameter_count("lstm", 2, 1, 1))["lstm"] == 1


# -- the last step is always validated, and no step twice ---------------------------------------------------------
def _count_evaluations(monkeypatch):
    from rnnkit.compare import model as compare_model
    calls = []
    real = compare_model.SeqModel.evaluate

    def counting(self, x, y):
        calls.append(x.shape[1])
        return real(self, x, y)

    monkeypatch.setattr(compare_model.SeqModel, "evaluate", counting)
    return calls


def test_a_budget_below_eval_every_is_validated_at_its_last_step(capsys):
    kw = dict(seq_len=8, cells=["lstm"], params=300, seeds=2, max_steps=12, test_size=20)
    report = compare("adding", eval_every=50, **kw)                 # the tester's case: 12 steps, interval 50
    err = capsys.readouterr().err
    on_grid = compare("adding", eval_every=12, progress=False, **kw)   # step 12 validated inside the loop
    for run, same in zip(report["cells"]["lstm"]["runs"], on_grid["cells"]["lstm"]["runs"]):
        curve = run["curve"]
        assert [p[0] for p in curve] == [0, 12]                    # the curve ends at the final step
        assert curve[-1][2] != curve[0][2]                         # ... with the trained model's loss
        assert curve[-1][1] >= curve[0][1]
        assert curve[-1][2] == same["curve"][-1][2]                # the same number as a validation at step 12
        assert run["test"] == same["test"]                         # the test scores that same (last) model
        assert f"seed {run['seed']}: 12 steps in" in err
        assert f"validation loss {curve[-1][2]:.4f}\n" in err       # the line reports it, not step 0's
        assert f"validation loss {curve[0][2]:.4f}\n" not in err


@pytest.mark.parametrize("max_steps, eval_every, steps", [
    (6, 3, [0, 3, 6]),            # the last step is on the grid: validated once
    (7, 3, [0, 3, 6, 7]),         # off the grid: once more, at the end
    (100, 40, [0, 40, 80, 100]),  # the loop's epoch end (every 100 batches) is the last step
])
def test_no_step_is_validated_twice(max_steps, eval_every, steps, monkeypatch):
    calls = _count_evaluations(monkeypatch)
    report = compare("adding", seq_len=4, cells=["gru"], params=200, seeds=1, max_steps=max_steps,
                     eval_every=eval_every, test_size=10, progress=False)
    curve = report["cells"]["gru"]["runs"][0]["curve"]
    assert [p[0] for p in curve] == steps
    assert len(calls) == len(steps) + 1                            # the validations and the test, nothing more


def test_a_time_budget_ends_with_a_validation_of_its_last_step(monkeypatch):
    calls = _count_evaluations(monkeypatch)
    report = compare("adding", seq_len=4, cells=["rnn"], params=200, seeds=1, max_steps=None, max_minutes=0.001,
                     eval_every=1000, test_size=10, progress=False)
    run = report["cells"]["rnn"]["runs"][0]
    points = [p[0] for p in run["curve"]]
    assert points[-1] == run["steps"] and len(set(points)) == len(points)
    assert len(calls) == len(points) + 1
