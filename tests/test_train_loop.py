"""The training loop: convergence, determinism, bit-for-bit resume, NaN guard, early stopping,
schedules, clipping, stopping rules, callbacks, checkpoints and progress output."""

import io
import json
import os
import re
import signal

import numpy as np
import pytest

from rnnkit import optim
from rnnkit.errors import HyperparameterError, ModelFileError, PathError, TrainingError
from rnnkit.nn.module import Module
from rnnkit.train import History, Progress, StopTraining, fit, load_checkpoint, save_checkpoint
from rnnkit.train import loop as loop_mod
from rnnkit.train.progress import format_duration

W_TRUE = np.array([1.5, -2.0, 0.5])
B_TRUE = 0.25


# -- a tiny model, optimiser and data, all float64 ---------------------------
class Regressor(Module):
    """pred = x @ w + b + a * h, with h a state carried from the previous batch (like TBPTT)."""

    def __init__(self, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.add_parameter("w", rng.standard_normal(3))
        self.add_parameter("b", np.zeros(1))
        self.add_parameter("a", np.full(1, 0.1))


class MomentumSGD:
    """Enough of rnnkit.optim's API for the loop, with state that must survive a resume."""

    def __init__(self, params, lr=0.05, momentum=0.9):
        self.params, self.lr, self.momentum = list(params), lr, momentum
        self.bufs = [np.zeros_like(p.data) for p in self.params]
        self.t = 0
        self.lrs, self.grads = [], []  # what each step saw, for the tests

    def zero_grad(self):
        for p in self.params:
            p.grad.fill(0)

    def step(self):
        self.t += 1
        self.lrs.append(self.lr)
        self.grads.append([p.grad.copy() for p in self.params])
        for p, buf in zip(self.params, self.bufs):
            buf *= self.momentum
            buf += p.grad
            p.data -= self.lr * buf

    def state_dict(self):
        return {"scalars": {"lr": self.lr, "t": self.t},
                "arrays": {str(i): b.copy() for i, b in enumerate(self.bufs)}}

    def load_state_dict(self, state):
        self.lr, self.t = state["scalars"]["lr"], state["scalars"]["t"]
        for i, b in enumerate(self.bufs):
            b[...] = state["arrays"][str(i)]


class Decay:
    def __init__(self, base=0.05, gamma=0.97):
        self.base, self.gamma = base, gamma

    def lr_at(self, step):
        return self.base * self.gamma ** step

    def config(self):
        return {"name": "decay", "base": self.base, "gamma": self.gamma}


_rng = np.random.default_rng(123)
X = _rng.standard_normal((64, 3))
Y = X @ W_TRUE + B_TRUE + 0.01 * _rng.standard_normal(64)
XV = _rng.standard_normal((32, 3))
YV = XV @ W_TRUE + B_TRUE


def batches(epoch, rng, n=64, size=8):
    order = rng.permutation(n)
    for i in range(0, n, size):
        idx = order[i: i + size]
        yield X[idx], Y[idx]


def plain_step(batch, ctx):
    x, y = batch
    m = ctx.model
    err = x @ m.w.data + m.b.data[0] - y  # (N,)
    m.w.grad += 2 * x.T @ err / len(y)
    m.b.grad += 2 * err.mean()
    return float(np.mean(err ** 2)), len(y)


def noisy_carry_step(batch, ctx):
    """Uses ctx.rng (input noise, like dropout) and ctx.carry (a state from the previous batch)."""
    x, y = batch
    m = ctx.model
    xn = x + 0.1 * ctx.rng.standard_normal(x.shape)  # (N, 3)
    h = ctx.carry.get("h", np.zeros(len(y)))  # (N,)
    err = xn @ m.w.data + m.b.data[0] + m.a.data[0] * h - y
    m.w.grad += 2 * xn.T @ err / len(y)
    m.b.grad += 2 * err.mean()
    m.a.grad += 2 * np.mean(err * h)
    ctx.carry["h"] = np.tanh(err)
    return float(np.mean(err ** 2)), len(y)


def validate(model):
    err = XV @ model.w.data + model.b.data[0] - YV
    return {"loss": float(np.mean(err ** 2)), "mae": np.float64(np.mean(np.abs(err)))}


def params(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_same_params(a, b):
    assert set(a) == set(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), (k, a[k], b[k])


def run(tmp_path=None, name="ck.npz", model_seed=0, opt=None, **kw):
    model = Regressor(model_seed)
    opt = opt(model) if opt is not None else MomentumSGD(model.parameters())
    args = dict(seed=7, progress=False)
    if tmp_path is not None:
        args["checkpoint_path"] = tmp_path / name
    args.update(kw)
    step_fn = args.pop("step_fn", noisy_carry_step)
    data = args.pop("batches", batches)
    hist = fit(model, opt, step_fn, data, **args)
    return model, opt, hist


# -- convergence and determinism ----------------------------------------------
def test_linear_regression_converges():
    model, _, hist = run(step_fn=plain_step, epochs=40, schedule=Decay(0.05, 0.995))
    np.testing.assert_allclose(model.w.data, W_TRUE, atol=0.02)
    np.testing.assert_allclose(model.b.data, [B_TRUE], atol=0.02)
    assert hist.steps == 40 * 8 and hist.stop_reason == "epochs"
    assert len(hist.train) == 320 and hist.train[0][0] == 1 and hist.train[-1][0] == 320
    assert hist.train[-1][1] < hist.train[0][1] / 100


def test_same_seed_same_parameters_and_another_seed_differs():
    a, _, ha = run(max_steps=30)
    b, _, hb = run(max_steps=30)
    c, _, _ = run(max_steps=30, seed=8)
    assert_same_params(params(a), params(b))
    assert ha.train == hb.train
    assert not np.array_equal(a.w.data, c.w.data)


def test_step_context_counters_and_carry_reset_each_epoch():
    seen = []

    def step(batch, ctx):
        seen.append((ctx.step, ctx.epoch, ctx.batch_index, sorted(ctx.carry)))
        ctx.carry["h"] = np.zeros(1)
        return plain_step(batch, ctx)

    run(step_fn=step, epochs=2)
    assert [s[0] for s in seen] == list(range(16))
    assert [s[1] for s in seen] == [0] * 8 + [1] * 8
    assert [s[2] for s in seen] == list(range(8)) * 2
    assert [s[3] for s in seen] == ([[]] + [["h"]] * 7) * 2


# -- bit-for-bit resume ----------------------------------------------------
RESUME_KW = dict(max_steps=37, validate=validate, validate_every=5, early_stopping_patience=50,
                 schedule=Decay(), checkpoint_every=4, log_every=3)


def _deterministic(h: History):
    return (h.train, h.val, h.lr, h.epochs, h.best_step, h.best_val_loss, h.steps, h.stop_reason)


def _interrupt_at(k):
    def cb(event, info):
        if event == "step" and info["step"] == k:
            raise KeyboardInterrupt
    return cb


@pytest.mark.parametrize("k", [13, 15, 16, 24])  # mid-epoch, at a validation, at epoch ends
@pytest.mark.parametrize("how", ["max_steps", "callback", "sigint"])
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, k, how):
    full_model, full_opt, full_hist = run(tmp_path, "full.npz", **RESUME_KW)

    if how == "max_steps":
        _, _, h1 = run(tmp_path, "cut.npz", **dict(RESUME_KW, max_steps=k))
        assert h1.stop_reason == "max_steps" and h1.steps == k
    else:
        if how == "callback":
            cb = _interrupt_at(k)
        else:
            def cb(event, info):
                if event == "step" and info["step"] == k:
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the loop finishes the step, then saves
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path, "cut.npz", callbacks=[cb], **RESUME_KW)
    ck = load_checkpoint(tmp_path / "cut.npz")
    assert ck.step == k
    if k % 8:  # mid-epoch: the carried state is in the checkpoint
        assert ck.carry["h"].shape == (8,) and ck.train_state["batch_index"] == k % 8
    # a new process would build a fresh model with other weights and a fresh optimiser
    model, opt, hist = run(tmp_path, "cut.npz", model_seed=99, resume=True, **RESUME_KW)

    assert_same_params(params(model), params(full_model))
    assert_same_params(load_checkpoint(tmp_path / "cut.npz").model_state,
                       load_checkpoint(tmp_path / "full.npz").model_state)
    assert opt.t == full_opt.t == 37
    assert all(np.array_equal(a, b) for a, b in zip(opt.bufs, full_opt.bufs))
    assert _deterministic(hist) == _deterministic(full_hist)
    assert hist.val and hist.best_step is not None


def _resume_from(tmp_path, ck, name):
    save_checkpoint(tmp_path / name, ck)
    run(tmp_path, name, model_seed=99, resume=True, **RESUME_KW)
    return load_checkpoint(tmp_path / name).model_state  # the last parameters (the model holds the best)


def test_resume_depends_on_the_restored_rng_and_carry(tmp_path):
    """The bit-for-bit test above would not notice a lost rng or carry unless they mattered: they do."""
    run(tmp_path, "full.npz", **RESUME_KW)
    full = load_checkpoint(tmp_path / "full.npz").model_state
    run(tmp_path, "cut.npz", **dict(RESUME_KW, max_steps=13))
    ck = load_checkpoint(tmp_path / "cut.npz")
    assert_same_params(_resume_from(tmp_path, ck, "same.npz"), full)

    ck = load_checkpoint(tmp_path / "cut.npz")
    ck.carry = {}
    assert not np.array_equal(_resume_from(tmp_path, ck, "nocarry.npz")["w"], full["w"])

    ck = load_checkpoint(tmp_path / "cut.npz")
    ck.train_state["rng_state"] = np.random.default_rng([7, 0]).bit_generator.state
    assert not np.array_equal(_resume_from(tmp_path, ck, "norng.npz")["w"], full["w"])


def test_resume_with_another_seed_continues_the_checkpoints_run_and_says_so(tmp_path):
    # the batches of later epochs came from the new seed and the draws from the checkpoint's state: a run
    # that was neither; the warning said "the data order will differ". Now the checkpoint's seed goes on.
    run(tmp_path, "full.npz", **RESUME_KW)
    full = load_checkpoint(tmp_path / "full.npz").model_state
    run(tmp_path, "cut.npz", **dict(RESUME_KW, max_steps=13))          # epochs of 8 steps: 13 is mid-epoch
    with pytest.warns(RuntimeWarning, match=r"the run continues with its own seed 7 \(its random state is in the "
                                            r"checkpoint\), not 8, so it ends as the uninterrupted run would"):
        run(tmp_path, "cut.npz", resume=True, **dict(RESUME_KW, seed=8))
    assert_same_params(load_checkpoint(tmp_path / "cut.npz").model_state, full)
    run(tmp_path, "other.npz", **dict(RESUME_KW, seed=8))
    other = load_checkpoint(tmp_path / "other.npz").model_state
    assert not np.array_equal(other["w"], full["w"])                    # the seed matters: the control


def test_resume_with_rnnkit_optim_adam_schedule_and_clipping(tmp_path):
    kw = dict(max_steps=30, clip_norm=0.5, checkpoint_every=7,
              schedule=optim.LinearWarmup(optim.CosineAnnealingLR(0.05, T_max=30), warmup_steps=5))
    make = lambda m: optim.Adam(m.parameters(), lr=0.05)
    full, _, _ = run(tmp_path, "full.npz", opt=make, **kw)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "cut.npz", opt=make, callbacks=[_interrupt_at(11)], **kw)
    resumed, _, _ = run(tmp_path, "cut.npz", opt=make, model_seed=5, resume=True, **kw)
    assert_same_params(params(resumed), params(full))


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    a, _, _ = run(tmp_path, resume=True, max_steps=10)
    b, _, _ = run(max_steps=10)
    assert_same_params(params(a), params(b))
    assert load_checkpoint(tmp_path / "ck.npz").step == 10


def test_resume_of_a_finished_run_does_nothing_more(tmp_path):
    a, _, h = run(tmp_path, max_steps=10)
    b, _, h2 = run(tmp_path, model_seed=3, resume=True, max_steps=10)
    assert_same_params(params(a), params(b))
    assert h2.steps == 10 and h2.stop_reason == "max_steps" and h2.train == h.train


def test_interrupt_inside_step_fn_keeps_the_last_checkpoint(tmp_path):
    def step(batch, ctx):
        if ctx.step == 6:
            raise KeyboardInterrupt
        return noisy_carry_step(batch, ctx)

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, step_fn=step, max_steps=20, checkpoint_every=4)
    assert load_checkpoint(tmp_path / "ck.npz").step == 4


def test_resume_errors(tmp_path):
    run(tmp_path, max_steps=5)

    class Other(Module):
        def __init__(self):
            super().__init__()
            self.add_parameter("v", np.zeros(2))

    other = Other()
    with pytest.raises(ModelFileError, match="does not fit this model"):
        fit(other, MomentumSGD(other.parameters()), plain_step, batches, seed=7, max_steps=6,
            checkpoint_path=tmp_path / "ck.npz", resume=True, progress=False)
    with pytest.warns(RuntimeWarning, match="seed"):
        run(tmp_path, seed=8, resume=True, max_steps=6)

    run(tmp_path, "mid.npz", max_steps=5)  # epoch 0, batch 5
    with pytest.raises(TrainingError, match="gives only 3"):
        run(tmp_path, "mid.npz", resume=True, max_steps=9, batches=lambda e, r: batches(e, r, n=24))


# -- non-finite values ---------------------------------------------------------
def test_nan_loss_stops_and_the_checkpoint_stays_the_last_good_one(tmp_path):
    def step(batch, ctx):
        loss, n = noisy_carry_step(batch, ctx)
        return (float("nan") if ctx.step == 10 else loss), n

    model = Regressor()
    opt = MomentumSGD(model.parameters())
    with pytest.raises(TrainingError, match=r"diverged at step 11 \(epoch 1, batch 2\): the loss is nan") as e:
        fit(model, opt, step, batches, seed=7, max_steps=30, checkpoint_every=4,
            checkpoint_path=tmp_path / "ck.npz", progress=False)
    assert "is from step 8" in str(e.value)
    ck = load_checkpoint(tmp_path / "ck.npz")
    assert ck.step == 8
    assert all(np.isfinite(v).all() for v in ck.model_state.values())
    assert opt.t == 10  # the bad step did not update the parameters
    assert all(np.isfinite(p.data).all() for p in model.parameters())


def test_inf_gradient_names_the_parameter(tmp_path):
    def step(batch, ctx):
        out = plain_step(batch, ctx)
        if ctx.step == 6:
            ctx.model.a.grad[0] = np.inf
        return out

    with pytest.raises(TrainingError, match=r"step 7 .*gradient of 'a' contains inf"):
        run(tmp_path, step_fn=step, max_steps=30, checkpoint_every=5)
    assert load_checkpoint(tmp_path / "ck.npz").step == 5


def test_non_finite_parameters_never_overwrite_a_checkpoint(tmp_path):
    class Breaks(MomentumSGD):
        def step(self):
            super().step()
            if self.t == 6:
                self.params[0].data[1] = np.nan

    with pytest.raises(TrainingError, match="parameter 'w' is not finite at step 6"):
        run(tmp_path, opt=lambda m: Breaks(m.parameters()), step_fn=plain_step, max_steps=30, checkpoint_every=3)
    ck = load_checkpoint(tmp_path / "ck.npz")
    assert ck.step == 3 and np.isfinite(ck.model_state["w"]).all()


# -- validation and early stopping ---------------------------------------------
def test_early_stopping_triggers_and_restores_the_best(tmp_path):
    scripted = iter([5.0, 4.0, 3.0, 3.5, 3.0, 3.7, 1.0])
    snapshots = {}

    def val(model):
        assert not model.training
        snapshots[len(snapshots)] = params(model)
        return {"loss": next(scripted)}

    model, _, hist = run(tmp_path, max_steps=100, validate=val, validate_every=2, early_stopping_patience=3)
    assert model.training  # the mode is restored after validation
    assert [s for s, _ in hist.val] == [2, 4, 6, 8, 10, 12]
    assert hist.stop_reason == "early_stopping" and hist.steps == 12
    assert (hist.best_step, hist.best_val_loss) == (6, 3.0)  # an equal loss later is no improvement
    assert_same_params(params(model), snapshots[2])
    ck = load_checkpoint(tmp_path / "ck.npz")
    assert_same_params(ck.best_state, snapshots[2])
    assert_same_params(ck.model_state, snapshots[5])


def test_a_monitored_metric_higher_is_better_picks_the_best_and_stops_early(tmp_path):
    # the loss keeps falling while the monitored BLEU peaks at steps 4 and 8: BLEU decides, and of the two
    # equal BLEUs the lower loss (step 8); step 6's lower loss with a lower BLEU is no improvement
    scripted = iter([(5.0, 10.0), (4.0, 30.0), (3.0, 20.0), (2.0, 30.0), (1.0, 25.0), (0.5, 20.0), (0.4, 10.0)])
    snapshots = {}

    def val(model):
        snapshots[len(snapshots)] = params(model)
        loss, bleu = next(scripted)
        return {"loss": loss, "bleu": bleu}

    model, _, hist = run(tmp_path, max_steps=100, validate=val, validate_every=2, early_stopping_patience=3,
                         monitor="bleu", maximize=True)
    assert [s for s, _ in hist.val] == [2, 4, 6, 8, 10, 12, 14]
    assert hist.stop_reason == "early_stopping" and hist.steps == 14
    assert (hist.best_step, hist.best_val_loss) == (8, 2.0)
    assert_same_params(params(model), snapshots[3])


def test_a_tie_on_bleu_at_every_validation_keeps_the_lowest_loss(tmp_path):
    """BLEU 0 at every early validation of a small model kept the first validation's (step 16's) model."""
    losses = iter([4.0, 3.0, 2.5, 2.7, 2.2, 2.3])
    model, _, hist = run(tmp_path, max_steps=12, validate=lambda m: {"loss": next(losses), "bleu": 0.0},
                         validate_every=2, monitor="bleu", maximize=True)
    assert (hist.best_step, hist.best_val_loss) == (10, 2.2)


def test_a_monitor_that_validate_does_not_return_is_refused(tmp_path):
    with pytest.raises(TypeError, match="monitored metric 'bleu'"):
        run(tmp_path, max_steps=10, validate=lambda m: {"loss": 1.0}, validate_every=2, monitor="bleu")


def test_resume_keeps_the_best_of_a_maximised_monitor(tmp_path):
    table = {2: 5.0, 4: 9.0, 6: 7.0, 8: 8.0, 10: 6.0, 12: 9.5, 14: 3.0, 16: 2.0, 18: 1.0, 20: 0.5}
    holder = []

    def make(m):
        holder.append(MomentumSGD(m.parameters()))
        return holder[-1]

    kw = dict(opt=make, max_steps=100, validate=lambda m: {"loss": 1.0, "bleu": table[holder[-1].t]},
              validate_every=2, early_stopping_patience=4, monitor="bleu", maximize=True)
    _, _, full = run(tmp_path, "full.npz", **kw)
    assert (full.stop_reason, full.steps, full.best_step) == ("early_stopping", 20, 12)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "cut.npz", callbacks=[_interrupt_at(9)], **kw)
    _, _, resumed = run(tmp_path, "cut.npz", resume=True, **kw)
    assert _deterministic(resumed) == _deterministic(full)


def test_resume_keeps_the_early_stopping_count(tmp_path):
    table = {2: 5.0, 4: 4.0, 6: 3.0, 8: 3.5, 10: 3.6, 12: 3.7, 14: 3.8, 16: 3.9}
    holder = []

    def make(m):
        holder.append(MomentumSGD(m.parameters()))
        return holder[-1]

    kw = dict(opt=make, max_steps=100, validate=lambda m: {"loss": table[holder[-1].t]}, validate_every=2,
              early_stopping_patience=3)
    _, _, full = run(tmp_path, "full.npz", **kw)
    assert (full.stop_reason, full.steps, full.best_step) == ("early_stopping", 12, 6)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "cut.npz", callbacks=[_interrupt_at(9)], **kw)
    _, _, resumed = run(tmp_path, "cut.npz", resume=True, **kw)
    assert _deterministic(resumed) == _deterministic(full)


def test_without_restore_best_the_last_parameters_stay():
    seen = []

    def val(model):
        seen.append(params(model))
        return {"loss": [3.0, 4.0, 5.0][len(seen) - 1]}

    model, _, hist = run(max_steps=100, validate=val, validate_every=3, early_stopping_patience=2,
                         restore_best=False)
    assert [s for s, _ in hist.val] == [3, 6, 8]  # 8: the end of epoch 0
    assert hist.steps == 8
    assert_same_params(params(model), seen[-1])


def test_validation_runs_at_epoch_ends_once_per_step():
    model, _, hist = run(epochs=3, validate=validate, validate_every=4)
    assert [s for s, _ in hist.val] == [4, 8, 12, 16, 20, 24]
    _, _, hist = run(epochs=2, validate=validate)
    assert [s for s, _ in hist.val] == [8, 16]
    assert set(hist.val[0][1]) == {"loss", "mae"} and isinstance(hist.val[0][1]["mae"], float)
    assert hist.val_loss == [(s, m["loss"]) for s, m in hist.val]


# -- schedules, clipping, stopping rules --------------------------------------
def test_schedule_sets_the_lr_of_every_step():
    sched = Decay(0.1, 0.9)
    _, opt, hist = run(max_steps=12, schedule=sched)
    assert opt.lrs == [sched.lr_at(s) for s in range(12)]
    assert hist.lr == [(s + 1, sched.lr_at(s)) for s in range(12)]


def test_without_schedule_the_optimizer_lr_is_kept():
    _, opt, hist = run(max_steps=3)
    assert opt.lrs == [0.05] * 3 and [lr for _, lr in hist.lr] == [0.05] * 3


def test_a_time_schedule_follows_the_budget_and_a_resume_finishes_it(monkeypatch, tmp_path):
    clock = FakeClock()
    monkeypatch.setattr(loop_mod, "_clock", clock)

    def six_second_step(batch, ctx):
        clock.now += 6.0
        return plain_step(batch, ctx)

    sched = optim.TimeCosineLR(0.1, eta_min=0.005)
    _, opt, h = run(step_fn=six_second_step, max_minutes=1, max_steps=10_000, schedule=sched)
    # each step's rate is the cosine at the share of the minute used when its gradients were ready
    assert (h.stop_reason, opt.t) == ("max_minutes", 10)
    np.testing.assert_allclose(opt.lrs, [sched.lr_at_fraction(k / 10) for k in range(1, 11)], rtol=1e-12)
    assert opt.lrs[-1] == pytest.approx(0.005, rel=1e-12) and opt.lrs[0] > 0.09
    assert [lr for _, lr in h.lr] == opt.lrs

    # stopped at 24 of 60 s (f = 0.4), resumed with 30 s: the other 0.6 of the decay spreads over them
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, step_fn=six_second_step, max_minutes=1, schedule=sched, callbacks=[_interrupt_at(4)])
    _, opt2, h2 = run(tmp_path, step_fn=six_second_step, max_minutes=0.5, schedule=sched, resume=True)
    assert (h2.stop_reason, h2.steps) == ("max_minutes", 9)
    np.testing.assert_allclose(opt2.lrs, [sched.lr_at_fraction(0.4 + 0.6 * k / 5) for k in range(1, 6)],
                               rtol=1e-12)
    np.testing.assert_allclose([lr for _, lr in h2.lr], opt.lrs[:4] + opt2.lrs, rtol=1e-12)

    # a run that used its whole budget resumes at the final rate, and says so
    run(tmp_path, "done.npz", step_fn=six_second_step, max_minutes=0.1, schedule=sched)
    with pytest.warns(RuntimeWarning, match="used its whole budget"):
        _, opt3, _ = run(tmp_path, "done.npz", step_fn=six_second_step, max_minutes=0.2, schedule=sched, resume=True)
    assert opt3.lrs == pytest.approx([0.005, 0.005], rel=1e-12)


def test_time_schedule_errors_and_config():
    sched = optim.TimeCosineLR(0.1, eta_min=0.005)
    with pytest.raises(HyperparameterError, match="give max_minutes"):
        run(max_steps=3, schedule=sched)
    with pytest.raises(HyperparameterError, match="do not combine"):
        optim.LinearWarmup(sched, 10)
    again = optim.make_schedule(**sched.config())
    assert isinstance(again, optim.TimeCosineLR) and again.config() == sched.config()
    assert [sched.lr_at_fraction(f) for f in (-1.0, 0.0, 0.5, 1.0, 2.0)] == pytest.approx(
        [0.1, 0.1, 0.0525, 0.005, 0.005], rel=1e-12)


def big_grad_step(batch, ctx):
    loss, n = plain_step(batch, ctx)
    for p in ctx.model.parameters():
        p.grad *= 1e3
    return loss, n


def test_clip_norm_applied():
    _, opt, _ = run(step_fn=big_grad_step, max_steps=5, clip_norm=1.0)
    for grads in opt.grads:
        total = np.sqrt(sum(np.sum(g ** 2) for g in grads))
        assert 0.99 < total <= 1.0
    _, opt, _ = run(step_fn=big_grad_step, max_steps=5)
    assert all(np.sqrt(sum(np.sum(g ** 2) for g in grads)) > 10 for grads in opt.grads)


def test_clip_value_applied():
    _, opt, _ = run(step_fn=big_grad_step, max_steps=5, clip_value=0.01)
    for grads in opt.grads:
        assert max(np.abs(g).max() for g in grads) == 0.01


def test_max_steps_and_epochs_are_respected():
    _, opt, h = run(epochs=3)
    assert (opt.t, h.steps, h.stop_reason, h.epochs) == (24, 24, "epochs", [(0, 8), (1, 16), (2, 24)])
    _, opt, h = run(max_steps=11)
    assert (opt.t, h.steps, h.stop_reason, h.epochs) == (11, 11, "max_steps", [(0, 8)])
    _, opt, h = run(epochs=2, max_steps=100)
    assert (opt.t, h.stop_reason) == (16, "epochs")
    _, opt, h = run(epochs=5, max_steps=16)  # the epoch that ends at max_steps is finished (validated)
    assert (opt.t, h.stop_reason, h.epochs) == (16, "max_steps", [(0, 8), (1, 16)])


class FakeClock:
    """Stands in for the loop's clock: time moves only when a step says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_max_minutes_budget(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(loop_mod, "_clock", clock)

    def one_second_step(batch, ctx):
        clock.now += 1.0
        return plain_step(batch, ctx)

    _, opt, h = run(step_fn=one_second_step, max_minutes=0.1, max_steps=10_000)  # 6 s: exactly 6 steps
    assert (h.stop_reason, opt.t, h.steps, h.elapsed_s) == ("max_minutes", 6, 6, 6.0)
    assert h.throughput[0] == (1, 8.0)  # 8 samples in one (fake) second


def test_log_every_records_unit_weighted_means():
    losses = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    units = iter([1, 3, 1, 1, 2, 2, 9])

    def step(batch, ctx):
        plain_step(batch, ctx)
        return next(losses), next(units)

    _, _, h = run(step_fn=step, max_steps=7, log_every=3)
    assert h.train == [(3, (1 + 6 + 3) / 5), (6, (4 + 10 + 12) / 5)]
    assert [s for s, _ in h.throughput] == [3, 6] and all(r > 0 for _, r in h.throughput)


# -- callbacks, checkpoints, history -----------------------------------------
def test_callbacks_see_every_event_and_can_stop(tmp_path):
    events = []

    def cb(event, info):
        events.append((event, info["step"]))
        if event == "step" and info["step"] == 20:
            raise StopTraining

    _, _, h = run(tmp_path, epochs=5, validate=validate, validate_every=10, callbacks=[cb])
    assert h.stop_reason == "callback" and h.steps == 20
    assert [s for e, s in events if e == "step"] == list(range(1, 21))
    assert [s for e, s in events if e == "validate"] == [8, 10, 16, 20]
    assert [s for e, s in events if e == "epoch_end"] == [8, 16]
    assert [s for e, s in events if e == "checkpoint"] == [8, 16, 20]  # each epoch, then the end
    assert events[-1] == ("end", 20)


def test_checkpoint_holds_config_meta_and_the_training_state(tmp_path):
    cfg = {"model": {"hidden": 3}, "lr": 0.05}
    meta = {"vocab": ["a", "b"]}
    run(tmp_path, max_steps=13, validate=validate, validate_every=5, config=cfg, meta=meta, schedule=Decay())
    ck = load_checkpoint(tmp_path / "ck.npz")
    assert ck.config == cfg and ck.meta == meta
    assert (ck.step, ck.epoch, ck.train_state["batch_index"]) == (13, 1, 5)
    assert ck.train_state["schedule"] == Decay().config()
    assert ck.train_state["rng_state"]["bit_generator"] == "PCG64"
    assert set(ck.model_state) == {"w", "b", "a"} and set(ck.best_state) == {"w", "b", "a"}
    assert ck.optimizer_state["scalars"]["t"] == 13
    assert ck.history.steps == 13 and ck.history.best_step in (5, 8, 10)
    with pytest.raises(ModelFileError, match="this is a checkpoint model file, not a charlm one"):
        from rnnkit.io import load_model_file
        load_model_file(tmp_path / "ck.npz", expected_kind="charlm")


def test_history_is_json_round_trippable():
    _, _, h = run(max_steps=10, validate=validate, validate_every=5)
    d = json.loads(json.dumps(h.to_dict()))
    assert History.from_dict(d) == h


def test_bad_arguments(tmp_path):
    m = Regressor()
    opt = MomentumSGD(m.parameters())
    with pytest.raises(ValueError, match="never ends"):
        fit(m, opt, plain_step, batches, seed=0, progress=False)
    with pytest.raises(ValueError, match="need a validate function"):
        fit(m, opt, plain_step, batches, seed=0, epochs=1, validate_every=3)
    with pytest.raises(ValueError, match="need a checkpoint_path"):
        fit(m, opt, plain_step, batches, seed=0, epochs=1, resume=True)
    with pytest.raises(PathError, match="directory does not exist"):
        fit(m, opt, plain_step, batches, seed=0, epochs=1, checkpoint_path=tmp_path / "no" / "ck.npz")
    with pytest.raises(PathError, match=r"checkpoint_path .*: is a directory; pass a file path such as "):
        fit(m, opt, plain_step, batches, seed=0, epochs=1, checkpoint_path=tmp_path)
    with pytest.raises(HyperparameterError, match="^seed must be >= 0, got -1$"):
        fit(m, opt, plain_step, batches, seed=-1, epochs=1)
    with pytest.raises(HyperparameterError, match="^seed must be an integer, got 1.5$"):
        fit(m, opt, plain_step, batches, seed=1.5, epochs=1)
    for name, value, message in [("epochs", 0, "an integer >= 1 or none, got 0"),
                                 ("max_steps", 2.0, "an integer >= 1 or none, got 2.0"),
                                 ("validate_every", True, "an integer >= 1 or none, got True"),
                                 ("checkpoint_every", -3, "an integer >= 1 or none, got -3"),
                                 ("early_stopping_patience", "2", "an integer >= 1 or none, got '2'"),
                                 ("log_every", None, "an integer, got None"),
                                 ("log_every", 0, ">= 1, got 0"),
                                 ("max_minutes", 0, "> 0, got 0"),
                                 ("max_minutes", float("inf"), "finite, got inf"),
                                 ("clip_norm", "1", "a real number or none, got '1'"),
                                 ("clip_value", -1.0, "> 0, got -1.0")]:
        kw = dict(epochs=1, validate=validate, checkpoint_path=tmp_path / "c.npz")
        kw[name] = value
        with pytest.raises(HyperparameterError, match=rf"^{name} must be {re.escape(message)}$"):
            fit(m, opt, _never_called, batches, seed=0, progress=False, **kw)
    with pytest.raises(TypeError, match="batches"):
        fit(m, opt, plain_step, [1, 2], seed=0, epochs=1)
    with pytest.raises(TypeError, match=r"config\['f'\]: builtin_function_or_method is not JSON-able"):
        fit(m, opt, plain_step, batches, seed=0, epochs=1, config={"f": print})
    with pytest.raises(TrainingError, match="gave no batches"):
        fit(m, opt, plain_step, lambda e, r: [], seed=0, epochs=1, progress=False)
    with pytest.raises(TypeError, match="ctx.carry\\['h'\\]: checkpoints store NumPy arrays"):
        def step(batch, ctx):
            ctx.carry["h"] = (1, 2)
            return plain_step(batch, ctx)
        fit(m, opt, step, batches, seed=0, max_steps=2, checkpoint_path=tmp_path / "c.npz", progress=False)


# -- progress -------------------------------------------------------------------
def test_plain_progress_lines():
    out = io.StringIO()
    p = Progress(10, unit="tok", use_tqdm=False, interval=0.0, stream=out)
    for s in range(1, 4):
        p.update(s, loss=2.0, units=100)
    p.note("step 3: validation loss 1.5")
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("step 1/10  loss 2.0000  ") and "tok/s" in lines[0] and "ETA" in lines[0]
    assert "step 3: validation loss 1.5" in lines
    assert Progress(5, enabled=False, stream=out) is not None
    assert format_duration(75) == "1m15s" and format_duration(3725) == "1h02m" and format_duration(4) == "4s"


def test_fit_progress_with_and_without_tqdm(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    run(max_steps=5, progress=True, validate=validate, validate_every=5)
    err = capsys.readouterr().err
    assert "step 5: validation loss" in err
    from rnnkit.train import progress as progress_mod
    monkeypatch.setattr(progress_mod, "_tqdm_class", lambda: None)
    run(max_steps=5, progress=True)
    assert "step 5/5  loss" in capsys.readouterr().err
    run(max_steps=5, progress=False)
    assert capsys.readouterr().err == ""


# -- checkpoint paths, interrupts and resume failures --------------------------
def _never_called(batch, ctx):
    raise AssertionError("training started although the checkpoint path is unusable")


def test_checkpoint_path_that_is_a_directory_fails_before_training(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(PathError, match=r"run: is a directory; pass a file path such as .*run\.ckpt\.npz"):
        run(tmp_path, "run", step_fn=_never_called, max_steps=3)


def test_unwritable_checkpoint_directory_fails_before_training(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    import rnnkit.io.atomic as atomic_mod
    monkeypatch.setattr(atomic_mod.tempfile, "mkstemp", denied)  # root ignores file modes, so fake it
    with pytest.raises(PathError, match=r"ck\.npz: cannot write in .* \(Permission denied\); choose a "
                                             r"writable directory"):
        run(tmp_path, "ck.npz", step_fn=_never_called, max_steps=3)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []  # the write test leaves nothing behind
    run(tmp_path, "ck.npz", max_steps=3)
    assert os.listdir(tmp_path) == ["ck.npz"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_checkpoint_directory_fails_before_training(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(PathError, match="cannot write in"):
            run(ro, "ck.npz", step_fn=_never_called, max_steps=3)
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("field,value", [("step", "x"), ("rng_state", {"bit_generator": "nope"}),
                                         ("window", 5), ("elapsed_s", None)])
def test_malformed_training_state_fails_resume_without_touching_the_model(tmp_path, field, value):
    run(tmp_path, "ck.npz", max_steps=5)
    ck = load_checkpoint(tmp_path / "ck.npz")
    ck.train_state[field] = value
    save_checkpoint(tmp_path / "bad.npz", ck)
    model = Regressor(42)
    before = params(model)
    with pytest.raises(ModelFileError, match=r"bad\.npz: the checkpoint's training state is malformed"):
        fit(model, MomentumSGD(model.parameters()), noisy_carry_step, batches, seed=7, max_steps=9,
            checkpoint_path=tmp_path / "bad.npz", resume=True, progress=False)
    assert_same_params(params(model), before)


def test_optimiser_that_does_not_fit_the_checkpoint_leaves_the_model_untouched(tmp_path):
    make = lambda m: optim.Adam(m.parameters(), lr=0.01)
    run(tmp_path, "ck.npz", opt=make, max_steps=5)
    model = Regressor(42)
    before = params(model)
    wrong = optim.Adam([model.w, model.b], lr=0.01)  # one parameter short
    with pytest.raises(ModelFileError, match=r"ck\.npz: the checkpoint's optimiser state does not fit this "
                                             r"optimiser \(state_dict holds 3 parameters"):
        fit(model, wrong, noisy_carry_step, batches, seed=7, max_steps=9,
            checkpoint_path=tmp_path / "ck.npz", resume=True, progress=False)
    assert_same_params(params(model), before)


def test_checkpoint_headers_do_not_grow_with_the_steps(tmp_path):
    """One history entry per step made a million-step checkpoint header about 75 MB; curves are now capped."""
    from rnnkit.train.checkpoint import CHECKPOINT_HISTORY_POINTS, Checkpoint, load_checkpoint, save_checkpoint
    from rnnkit.train.history import History
    h = History(train=[(s, 1.0 / s) for s in range(1, 50_001)], steps=50_000)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, Checkpoint(model_state={"w": np.zeros(2)}, optimizer_state={}, train_state={"step": 50_000},
                                     history=h))
    back = load_checkpoint(path).history
    assert len(back.train) == CHECKPOINT_HISTORY_POINTS
    assert tuple(back.train[0]) == (1, 1.0) and tuple(back.train[-1]) == (50_000, 1.0 / 50_000)
    assert path.stat().st_size < 2_000_000


def test_the_trained_line_every_command_prints():
    from rnnkit.train.history import trained_line
    assert trained_line(1, 0.54, "epochs") == "trained 1 step in 0.5 s (stopped: epochs)"
    assert trained_line(3, 9.96, "epochs") == "trained 3 steps in 10 s (stopped: epochs)"
    assert trained_line(5113, 1800.4, "max_minutes") == "trained 5,113 steps in 1,800 s (stopped: max_minutes)"
