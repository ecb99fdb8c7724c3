"""Checkpoint averaging in the character LM (``--average-checkpoints``) and its shared keep-the-better rule."""

import contextlib

import numpy as np
import pytest

from rnnkit.charlm import CharModel
from rnnkit.cli.main import main
from rnnkit.train.averaging import CheckpointAverager, keep_better_average

TEXT = "the quick brown fox jumps over the lazy dog. " * 12
TINY = dict(hidden_size=16, num_layers=1, embedding_size=4, seq_len=8, batch_size=4, learning_rate=1e-2,
            sample_length=0, validation_fraction=0.2, validate_every=2, max_steps=12)
VALID = TEXT[len(TEXT) - round(0.2 * len(TEXT)):]


class _Scalar:
    """A one-parameter 'model' whose validation loss is (w - target)^2."""

    def __init__(self, w):
        self.w = float(w)

    def state_dict(self):
        return {"w": np.array([self.w])}

    def load_state_dict(self, state):
        self.w = float(state["w"][0])

    @contextlib.contextmanager
    def eval_mode(self):
        yield self


def _averager_of(values, losses):
    av, net = CheckpointAverager(len(values)), _Scalar(0.0)
    for step, (w, loss) in enumerate(zip(values, losses), start=1):
        net.w = w
        av("validate", {"step": step, "model": net, "metrics": {"loss": loss}})
    return av


@pytest.mark.parametrize("target,kept,model_w,unkept_w", [(2.0, "averaged", 2.0, 1.0), (1.0, "best", 1.0, 2.0)])
def test_keep_better_average_keeps_the_lower_loss(target, kept, model_w, unkept_w):
    validate = lambda m: {"loss": (m.w - target) ** 2}
    av = _averager_of([1.0, 3.0], [validate(_Scalar(1.0))["loss"], validate(_Scalar(3.0))["loss"] + 1e-9])
    model = _Scalar(1.0)                                           # holds the best single snapshot
    info, unkept = keep_better_average(model, av, validate, validate(model))
    assert info["kept"] == kept and model.w == model_w and unkept["w"][0] == unkept_w
    assert info["averaged"]["loss"] == pytest.approx((2.0 - target) ** 2)
    assert info["best"]["loss"] == pytest.approx((1.0 - target) ** 2) and sorted(info["steps"]) == [1, 2]


@pytest.fixture(scope="module")
def pair():
    plain = CharModel(average_checkpoints=0, **TINY).fit(TEXT)
    averaged = CharModel(average_checkpoints=3, **TINY).fit(TEXT)
    return plain, averaged


def test_averaging_does_not_change_training(pair):
    plain, averaged = pair
    assert averaged.history_.train == plain.history_.train and averaged.history_.val == plain.history_.val
    assert plain.meta_["averaging"] is None


def test_the_kept_model_is_the_one_whose_validation_is_reported(pair):
    plain, averaged = pair
    info, meta = averaged.meta_["averaging"], averaged.meta_
    lowest3 = sorted(averaged.history_.val_loss, key=lambda sv: sv[1])[:3]
    assert sorted(info["steps"]) == sorted(s for s, _ in lowest3)
    assert info["best"]["loss"] == pytest.approx(plain.meta_["valid"]["loss"], abs=1e-12)
    again = averaged.score(VALID, batch_size=4, seq_len=8)["loss"]
    assert again == pytest.approx(meta["valid"]["loss"], abs=1e-9)
    same = all(np.array_equal(a, b) for a, b in zip(averaged.model_.state_dict().values(),
                                                     plain.model_.state_dict().values()))
    if info["kept"] == "averaged":
        assert info["averaged"]["loss"] < info["best"]["loss"] and meta["saved_step"] is None and not same
    else:
        assert info["averaged"]["loss"] >= info["best"]["loss"] and meta["saved_step"] is not None and same


def test_final_parameters_validated_after_the_loop_join_the_average():
    """A budget that ends between validations (step 11): the final parameters are validated and may be averaged."""
    est = CharModel(average_checkpoints=3, **dict(TINY, max_steps=11)).fit(TEXT)
    h, meta = est.history_, est.meta_
    assert [s for s, _ in h.val_loss][-1] == 10 and meta["final_valid"] is not None
    pool = list(h.val_loss) + [(11, meta["final_valid"]["loss"])]
    lowest3 = sorted(pool, key=lambda sv: sv[1])[:3]         # a stable sort: of equal losses the earlier first
    assert sorted(meta["averaging"]["steps"]) == sorted(s for s, _ in lowest3)


def test_cli_reports_and_the_file_records_the_averaging(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "m.npz"
    args = ["charlm", "train", str(text), "--out", str(out), "--no-plot", "--no-progress", "--hidden-size", "16",
            "--num-layers", "1", "--embedding-size", "4", "--seq-len", "8", "--batch-size", "4",
            "--max-steps", "12", "--validate-every", "2", "--validation-fraction", "0.2", "--sample-length", "0",
            "--average-checkpoints", "4"]
    assert main(args) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("checkpoint averaging")]
    loaded = CharModel.load(out)
    info = loaded.meta_["averaging"]
    assert loaded.average_checkpoints == 4 and len(info["steps"]) == 4 and len(line) == 1
    assert line[0].endswith("kept the average" if info["kept"] == "averaged" else "kept the best single model")
    assert loaded.score(VALID, batch_size=4, seq_len=8)["loss"] == pytest.approx(loaded.meta_["valid"]["loss"],
                                                                                 abs=1e-6)


def test_average_checkpoints_is_checked(capsys):
    assert main(["charlm", "train", "--average-checkpoints", "-1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--average-checkpoints" in err and "must be >= 0" in err and "Traceback" not in err


def test_files_from_before_averaging_load_with_it_off():
    assert CharModel._absent_params == {"average_checkpoints": 0}


def test_a_resumed_run_averages_the_same_validations(tmp_path):
    # the snapshots travel in the checkpoint: before 2026-12-05 a resume averaged only the validations
    # made after it, so the kept model differed from the uninterrupted run's
    kw = dict(TINY, average_checkpoints=6, checkpoint_every=100, random_state=3)
    straight = CharModel(**kw).fit(TEXT)
    ckpt = tmp_path / "r.ckpt.npz"
    CharModel(**dict(kw, max_steps=7)).fit(TEXT, checkpoint_path=ckpt)     # "interrupted" after 3 validations
    resumed = CharModel(**kw).fit(TEXT, checkpoint_path=ckpt, resume=True)
    want, got = straight.meta_["averaging"], resumed.meta_["averaging"]
    assert any(s <= 7 for s in want["steps"]), want          # the test needs snapshots from before the stop
    assert got == want
    for (name, a), b in zip(straight.model_.state_dict().items(), resumed.model_.state_dict().values()):
        np.testing.assert_array_equal(b, a, err_msg=name)


def test_averager_state_round_trips_and_refuses_what_does_not_fit():
    av = _averager_of([1.0, 3.0, 2.0], [0.5, 0.1, 0.3])
    scalars, arrays = av.checkpoint_state()
    like = {"w": np.zeros(1)}
    again = CheckpointAverager(3)
    again.restore_state(again.prepare_restore(scalars, arrays, like=like))
    assert [(v, s) for v, s, _, _ in again.snapshots] == [(0.1, 2), (0.3, 3), (0.5, 1)]
    assert [st["w"][0] for _, _, st, _ in again.snapshots] == [3.0, 2.0, 1.0]
    smaller = CheckpointAverager(2)                             # fewer kept now: the best two
    smaller.restore_state(smaller.prepare_restore(scalars, arrays, like=like))
    assert smaller.steps == [2, 3]
    assert CheckpointAverager(3, monitor="bleu", maximize=True).prepare_restore(scalars, arrays, like=like) == []
    with pytest.raises(ValueError, match=r"is float64 \(1,\), the model's float64 \(2,\)"):
        again.prepare_restore(scalars, arrays, like={"w": np.zeros(2)})
    with pytest.raises(ValueError, match="the model's float32"):
        again.prepare_restore(scalars, arrays, like={"w": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="validation value nan"):
        again.prepare_restore(dict(scalars, kept=[[float("nan"), 1]]), {"0/w": np.zeros(1)}, like=like)
    with pytest.raises(KeyError):
        again.prepare_restore(scalars, {k: a for k, a in arrays.items() if k != "1/w"}, like=like)
    with pytest.raises(ValueError, match="no snapshot owns"):
        again.prepare_restore(scalars, dict(arrays, **{"7/w": np.zeros(1)}), like=like)


def _bleu_averager(k, validations):
    av, net = CheckpointAverager(k, monitor="bleu", maximize=True), _Scalar(0.0)
    for step, (bleu, loss) in enumerate(validations, start=1):
        net.w = float(step)
        av("validate", {"step": step, "model": net, "metrics": {"bleu": bleu, "loss": loss}})
    return av


def test_a_tie_on_the_monitor_goes_to_the_lower_loss_and_survives_a_resume():
    # BLEU 0 at every early validation of a small translation run: the averager kept the first K by
    # order, the early high-loss models; it keeps the K lowest losses among the tied, as Validation does
    validations = [(0.0, 5.0), (0.0, 4.0), (0.0, 3.0), (0.0, 3.5), (1.0, 6.0), (0.0, 3.0)]
    av = _bleu_averager(3, validations)
    assert av.steps == [5, 3, 6]                      # BLEU 1 first, then the loss 3.0 ties by order
    scalars, arrays = av.checkpoint_state()
    assert [kept[2] for kept in scalars["kept"]] == [6.0, 3.0, 3.0]
    again = CheckpointAverager(2, monitor="bleu", maximize=True)
    again.restore_state(again.prepare_restore(scalars, arrays, like={"w": np.zeros(1)}))
    assert again.steps == [5, 3]
    again.offer(7, _Scalar(7.0), {"bleu": 0.0, "loss": 2.0})     # ties BLEU with step 3, lower loss
    assert again.steps == [5, 7]
    # a checkpoint from before the losses were kept: [value, step] entries resume, ties by order
    old = dict(scalars, kept=[kept[:2] for kept in scalars["kept"]])
    again.restore_state(again.prepare_restore(old, arrays, like={"w": np.zeros(1)}))
    assert again.steps == [5, 3]
    with pytest.raises(ValueError, match=r"snapshot 0 is \[1.0\], not \[value, step, loss\]"):
        again.prepare_restore(dict(scalars, kept=[[1.0]]), arrays, like={"w": np.zeros(1)})


@pytest.mark.parametrize("avg_loss,kept", [(2.0, "averaged"), (4.0, "best"), (3.0, "best")])
def test_keep_better_average_breaks_a_bleu_tie_by_loss(avg_loss, kept):
    av = _bleu_averager(2, [(0.0, 3.0), (0.0, 3.5)])
    model = _Scalar(1.0)
    validate = lambda m: {"bleu": 0.0, "loss": avg_loss if m.w == 1.5 else 3.0}
    info, _ = keep_better_average(model, av, validate, {"bleu": 0.0, "loss": 3.0})
    assert info["kept"] == kept and model.w == (1.5 if kept == "averaged" else 1.0)


def test_a_final_step_validated_in_training_is_neither_validated_nor_averaged_twice():
    # every --epochs run ends on a validation: it was validated again and offered to the averager a second
    # time ("the mean of the 4 best validations (steps 3, 6, 9, 9)"), the final parameters counted double
    text = "".join(np.random.default_rng(0).choice(list("abcdefghij"), 600))        # overfits: the end is not best
    est = CharModel(average_checkpoints=20, **dict(TINY, hidden_size=32, learning_rate=0.05, max_steps=40,
                                                   validate_every=4)).fit(text)
    h = est.history_
    assert h.best_step != h.steps and h.val[-1][0] == h.steps          # the case: the end validated, not the best
    assert sorted(est.meta_["averaging"]["steps"]) == sorted({s for s, _ in h.val})   # each validation once
    assert est.meta_["final_valid"] == h.val[-1][1]
