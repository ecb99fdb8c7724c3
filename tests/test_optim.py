"""rnnkit.optim against torch.optim: optimisers, clipping and schedules, step for step."""

import json
import math
import re

import numpy as np
import pytest
import torch

from rnnkit.errors import ModelFileError, RnnkitError, ShapeError, TrainingError
from rnnkit.nn.module import Parameter
from rnnkit.optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    HyperparameterError,
    LinearWarmup,
    RMSprop,
    StepLR,
    clip_grad_norm,
    clip_grad_value,
    make_schedule,
)

SHAPES = [(3, 4), (5,), (2, 3, 2), (1,)]
N_STEPS = 6

# (our class, torch class, keyword arguments shared by both, which use the same names)
CASES = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.1, weight_decay=0.05)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.5)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True)),
    (Adam, torch.optim.Adam, dict()),
    (Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    (Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True)),
    # beta2 small enough for v to shrink between steps, so amsgrad's max matters
    (Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.5), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    (AdamW, torch.optim.AdamW, dict()),
    (AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.0)),
    (AdamW, torch.optim.AdamW, dict(lr=0.01, betas=(0.8, 0.5), weight_decay=0.2, amsgrad=True)),
    (RMSprop, torch.optim.RMSprop, dict()),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, centered=True)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.9)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
    (Adagrad, torch.optim.Adagrad, dict()),
    (Adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.1)),
    (Adagrad, torch.optim.Adagrad, dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.5)),
    (Adagrad, torch.optim.Adagrad,
     dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.1, eps=1e-6)),
]
CASE_IDS = [f"{ours.__name__}-{kw}" for ours, _, kw in CASES]


def _init_params(rng, dtype):
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def _grad_sequence(rng, n_steps, dtype):
    """Fresh random gradients for every step and parameter."""
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(n_steps)]


def _run_ours(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad[...] = g
        opt.step()


def _step_both(opt, topt, ours, theirs, step_grads):
    """One step of our optimiser and torch's from the same gradients."""
    for p, q, g in zip(ours, theirs, step_grads):
        p.grad[...] = g
        q.grad = torch.tensor(g)
    opt.step()
    topt.step()


def _compare_with_torch(ours_cls, torch_cls, kwargs, dtype, rtol, atol):
    rng = np.random.default_rng(1234)
    init = _init_params(rng, dtype)
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    opt, topt = ours_cls(ours, **kwargs), torch_cls(theirs, **kwargs)
    for step, step_grads in enumerate(_grad_sequence(rng, N_STEPS, dtype)):
        if step == 3:
            # the lr is read at every step: a schedule may change it between steps
            opt.lr *= 0.5
            topt.param_groups[0]["lr"] *= 0.5
        _step_both(opt, topt, ours, theirs, step_grads)
        for k, (p, q) in enumerate(zip(ours, theirs)):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(
                p.data, q.detach().numpy(), rtol=rtol, atol=atol,
                err_msg=f"{ours_cls.__name__}{kwargs}: step {step + 1}, parameter {k}",
            )


@pytest.mark.parametrize("ours_cls,torch_cls,kwargs", CASES, ids=CASE_IDS)
def test_matches_torch_float64(ours_cls, torch_cls, kwargs):
    _compare_with_torch(ours_cls, torch_cls, kwargs, np.float64, rtol=1e-10, atol=0)


@pytest.mark.parametrize(
    "ours_cls,torch_cls,kwargs",
    [CASES[5], CASES[9], CASES[12], CASES[17], CASES[21]],
    ids=[CASE_IDS[i] for i in (5, 9, 12, 17, 21)],
)
def test_matches_torch_float32(ours_cls, torch_cls, kwargs):
    _compare_with_torch(ours_cls, torch_cls, kwargs, np.float32, rtol=1e-5, atol=1e-6)


def test_defaults_are_torchs():
    p = [Parameter(np.zeros(2))]
    assert SGD(p).lr == 1e-3
    assert Adam(p).hyperparameters() == {"betas": [0.9, 0.999], "eps": 1e-8,
                                         "weight_decay": 0.0, "amsgrad": False}
    assert AdamW(p).weight_decay == 0.01
    assert (RMSprop(p).lr, RMSprop(p).alpha, RMSprop(p).eps) == (1e-2, 0.99, 1e-8)
    assert (Adagrad(p).lr, Adagrad(p).eps) == (1e-2, 1e-10)


def test_sgd_momentum_by_hand():
    # theta = [1, -2], lr = 0.1, momentum = 0.9 (dampening 0).
    # step 1: grad = [0.5, 1]  -> b = grad (the first step copies it) = [0.5, 1]
    #         theta = [1 - 0.1*0.5, -2 - 0.1*1] = [0.95, -2.1]
    # step 2: grad = [1, -1]   -> b = 0.9*[0.5, 1] + [1, -1] = [1.45, -0.1]
    #         theta = [0.95 - 0.1*1.45, -2.1 - 0.1*(-0.1)] = [0.805, -2.09]
    p = Parameter(np.array([1.0, -2.0]))
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad[...] = [0.5, 1.0]
    opt.step()
    np.testing.assert_allclose(p.data, [0.95, -2.1], rtol=1e-15)
    p.grad[...] = [1.0, -1.0]
    opt.step()
    np.testing.assert_allclose(opt.state["momentum_buffer"][0], [1.45, -0.1], rtol=1e-15)
    np.testing.assert_allclose(p.data, [0.805, -2.09], rtol=1e-15)


def test_adam_first_step_by_hand():
    # After bias correction, step 1 has m_hat = g and v_hat = g*g, so
    # theta -= lr * g / (|g| + eps): about lr * sign(g), whatever the gradient's scale.
    p = Parameter(np.array([0.0, 0.0, 0.0]))
    opt = Adam([p], lr=0.01, eps=1e-8)
    p.grad[...] = [1e-3, -5.0, 2.0]
    opt.step()
    g = np.array([1e-3, -5.0, 2.0])
    np.testing.assert_allclose(p.data, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_step_keeps_arrays_and_gradients():
    p = Parameter(np.ones((2, 3), dtype=np.float32))
    data, grad = p.data, p.grad
    p.grad[...] = 0.5
    opt = AdamW([p], lr=np.float64(0.1), weight_decay=0.1)
    opt.lr = np.float64(0.05)  # a NumPy scalar, as a schedule might return
    opt.step()
    assert p.data is data and p.grad is grad
    assert p.data.dtype == np.float32
    assert all(a.dtype == np.float32 for arrs in opt.state.values() for a in arrs)
    np.testing.assert_array_equal(p.grad, 0.5)  # the decay never leaks into .grad
    SGD([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_array_equal(p.grad, 0.5)
    opt.zero_grad()
    np.testing.assert_array_equal(p.grad, 0.0)


# -- state_dict -----------------------------------------------------------

@pytest.mark.parametrize("ours_cls,_torch_cls,kwargs", CASES, ids=CASE_IDS)
def test_state_dict_resume_is_exact(ours_cls, _torch_cls, kwargs):
    rng = np.random.default_rng(7)
    init = _init_params(rng, np.float64)
    grads = _grad_sequence(rng, 6, np.float64)

    straight = [Parameter(a.copy()) for a in init]
    _run_ours(ours_cls(straight, **kwargs), straight, grads)

    first = [Parameter(a.copy()) for a in init]
    opt = ours_cls(first, **kwargs)
    _run_ours(opt, first, grads[:3])
    state = opt.state_dict()
    state["scalars"] = json.loads(json.dumps(state["scalars"]))  # as a checkpoint file stores it

    resumed = [Parameter(p.data.copy()) for p in first]
    # Built with defaults on purpose: lr and hyperparameters must come from the state.
    opt2 = ours_cls(resumed)
    opt2.load_state_dict(state)
    assert opt2.hyperparameters() == opt.hyperparameters() and opt2.lr == opt.lr
    _run_ours(opt2, resumed, grads[3:])
    for p, q in zip(straight, resumed):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_holds_copies():
    p = Parameter(np.zeros(3))
    opt = Adam([p])
    p.grad[...] = 1.0
    opt.step()
    state = opt.state_dict()
    saved = state["arrays"]["exp_avg.0"].copy()
    opt.step()
    np.testing.assert_array_equal(state["arrays"]["exp_avg.0"], saved)
    assert state["scalars"]["steps"] == 1 and sorted(state["arrays"]) == ["exp_avg.0", "exp_avg_sq.0"]


def test_load_state_dict_mismatches():
    params = [Parameter(np.zeros((2, 3))), Parameter(np.zeros(4))]
    opt = Adam(params, amsgrad=True)
    state = opt.state_dict()

    with pytest.raises(ShapeError, match="holds 2 parameters, this optimiser has 1"):
        Adam([Parameter(np.zeros((2, 3)))]).load_state_dict(state)
    with pytest.raises(ShapeError, match=r"parameter 1: expected shape \(5,\), got \(4,\)"):
        Adam([Parameter(np.zeros((2, 3))), Parameter(np.zeros(5))]).load_state_dict(state)
    with pytest.raises(ModelFileError, match="state_dict is for Adam"):
        SGD(params).load_state_dict(state)
    with pytest.raises(ModelFileError, match="not an optimiser state_dict"):
        opt.load_state_dict({"arrays": {}})

    broken = {"scalars": state["scalars"], "arrays": dict(state["arrays"])}
    del broken["arrays"]["max_exp_avg_sq.1"]
    target = Adam(params, lr=0.5)
    with pytest.raises(ModelFileError, match=r"missing \['max_exp_avg_sq.1'\]"):
        target.load_state_dict(broken)
    assert target.lr == 0.5 and not target.amsgrad  # a failed load changes nothing

    wrong_shape = {"scalars": state["scalars"], "arrays": dict(state["arrays"], **{"exp_avg.0": np.zeros(6)})}
    with pytest.raises(ShapeError, match=r"exp_avg.0: expected shape \(2, 3\), got \(6,\)"):
        Adam(params).load_state_dict(wrong_shape)

    bad = json.loads(json.dumps(state["scalars"]))
    bad["hyperparameters"]["betas"] = [1.5, 0.999]
    # a bad value in a checkpoint is a file problem, reported as such (naming the field)
    with pytest.raises(ModelFileError, match=r"hyperparameters do not fit Adam: betas\[0\] must be in"):
        Adam(params).load_state_dict({"scalars": bad, "arrays": state["arrays"]})


# -- hyperparameter validation ----------------------------------------------

def _p():
    return [Parameter(np.zeros(2))]


@pytest.mark.parametrize(
    "build,name",
    [
        (lambda: SGD(_p(), lr=-0.1), "lr"),
        (lambda: SGD(_p(), lr=float("nan")), "lr"),
        (lambda: SGD(_p(), lr="fast"), "lr"),
        (lambda: SGD(_p(), momentum=-0.5), "momentum"),
        (lambda: SGD(_p(), dampening=-1), "dampening"),
        (lambda: SGD(_p(), weight_decay=-1e-4), "weight_decay"),
        (lambda: SGD(_p(), nesterov=True), "nesterov"),
        (lambda: SGD(_p(), momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
        (lambda: Adam(_p(), betas=(1.0, 0.999)), r"betas\[0\]"),
        (lambda: Adam(_p(), betas=(0.9, -0.1)), r"betas\[1\]"),
        (lambda: Adam(_p(), betas=(0.9,)), "betas"),
        (lambda: Adam(_p(), eps=-1e-8), "eps"),
        (lambda: Adam(_p(), amsgrad="yes"), "amsgrad"),
        (lambda: AdamW(_p(), weight_decay=-0.01), "weight_decay"),
        (lambda: RMSprop(_p(), alpha=1.5), "alpha"),
        (lambda: RMSprop(_p(), momentum=-0.1), "momentum"),
        (lambda: RMSprop(_p(), centered=1), "centered"),
        (lambda: Adagrad(_p(), lr_decay=-0.1), "lr_decay"),
        (lambda: Adagrad(_p(), initial_accumulator_value=-1), "initial_accumulator_value"),
        (lambda: Adam([]), "params"),
        (lambda: StepLR(0.1, step_size=0), "step_size"),
        (lambda: StepLR(0.1, step_size=2.5), "step_size"),
        (lambda: ExponentialLR(-0.1, gamma=0.9), "base_lr"),
        (lambda: CosineAnnealingLR(0.1, T_max=0), "T_max"),
        (lambda: CosineAnnealingLR(0.1, T_max=10, eta_min=-1), "eta_min"),
        (lambda: LinearWarmup(ConstantLR(0.1), 5, start_factor=0.0), "start_factor"),
        (lambda: LinearWarmup(ConstantLR(0.1), -1), "warmup_steps"),
        (lambda: ConstantLR(0.1).lr_at(-1), "step"),
        (lambda: clip_grad_norm(_p(), max_norm=-1.0), "max_norm"),
        (lambda: clip_grad_norm(_p(), max_norm=1.0, norm_type=0), "norm_type"),
        (lambda: clip_grad_value(_p(), clip_value=-1.0), "clip_value"),
    ],
)
def test_bad_hyperparameters_are_named(build, name):
    with pytest.raises(HyperparameterError, match=name) as info:
        build()
    assert isinstance(info.value, ValueError) and isinstance(info.value, RnnkitError)


def test_bad_hyperparameter_message_says_expected_and_got():
    with pytest.raises(HyperparameterError, match=r"betas\[1\] must be in \[0, 1\), got 1\.2"):
        Adam(_p(), betas=(0.9, 1.2))
    with pytest.raises(HyperparameterError, match=r"lr must be >= 0, got -0\.1"):
        SGD(_p(), lr=-0.1)


def test_params_must_be_parameters():
    with pytest.raises(TypeError, match=r"params\[0\] must be an rnnkit Parameter, got ndarray"):
        SGD([np.zeros(3)])
    p = Parameter(np.zeros(3))
    with pytest.raises(HyperparameterError, match="more than once"):
        SGD([p, p])


# -- clipping ---------------------------------------------------------------

def _grads_pair(scale, dtype=np.float64, seed=3):
    rng = np.random.default_rng(seed)
    ours, theirs = [], []
    for shape in SHAPES:
        g = (scale * rng.standard_normal(shape)).astype(dtype)
        p = Parameter(np.zeros(shape, dtype=dtype))
        p.grad[...] = g
        q = torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64 if dtype == np.float64 else torch.float32))
        q.grad = torch.tensor(g)
        ours.append(p)
        theirs.append(q)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf"), "inf"])
@pytest.mark.parametrize("scale", [0.01, 10.0])  # total norm below / above max_norm
def test_clip_grad_norm_matches_torch(norm_type, scale):
    ours, theirs = _grads_pair(scale)
    before = [p.grad.copy() for p in ours]
    total = clip_grad_norm(ours, max_norm=1.0, norm_type=norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm=1.0, norm_type=norm_type)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, t_total.item(), rtol=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12)
    if scale < 1:
        for p, b in zip(ours, before):
            np.testing.assert_array_equal(p.grad, b)  # below max_norm nothing changes
    else:
        # the norm of all gradients as one vector lands just below max_norm
        flat = np.concatenate([p.grad.ravel() for p in ours])
        assert 1.0 - 1e-5 < np.linalg.norm(flat, ord=float(norm_type)) < 1.0


def test_clip_grad_norm_float32_matches_torch():
    ours, theirs = _grads_pair(10.0, dtype=np.float32)
    total = clip_grad_norm(ours, max_norm=0.5)
    t_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm=0.5)
    np.testing.assert_allclose(total, t_total.item(), rtol=1e-6)
    for p, q in zip(ours, theirs):
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-6)


def test_clip_grad_norm_edge_cases():
    zero = [Parameter(np.zeros(3))]
    assert clip_grad_norm(zero, max_norm=1.0) == 0.0  # the 1e-6 keeps 0/0 away
    np.testing.assert_array_equal(zero[0].grad, 0.0)
    assert clip_grad_norm([], max_norm=1.0) == 0.0

    ours, theirs = _grads_pair(1.0)
    ours[1].grad[2] = np.nan
    theirs[1].grad[2] = float("nan")
    with pytest.raises(TrainingError, match="non-finite|nan"):
        clip_grad_norm(ours, max_norm=1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(theirs, max_norm=1.0, error_if_nonfinite=True)
    # Without the check both libraries scale by the NaN coefficient.
    assert math.isnan(clip_grad_norm(ours, max_norm=1.0))
    torch.nn.utils.clip_grad_norm_(theirs, max_norm=1.0)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad, q.grad.numpy())


def test_clip_grad_value_matches_torch():
    ours, theirs = _grads_pair(2.0)
    clip_grad_value(ours, clip_value=1.5)
    torch.nn.utils.clip_grad_value_(theirs, clip_value=1.5)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad, q.grad.numpy())
    assert max(np.abs(p.grad).max() for p in ours) == 1.5


# -- schedules ----------------------------------------------------------------

N_SCHED = 30
BASE_LR = 0.1


def _torch_lrs(make_scheduler, n=N_SCHED, lr=BASE_LR):
    """The lr each of ``n`` optimiser steps uses under a torch scheduler."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = make_scheduler(opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return lrs


def _warmup(inner, steps=5, start_factor=0.25):
    """torch's equivalent of LinearWarmup: LinearLR, then ``inner`` via SequentialLR."""
    def make(opt):
        linear = torch.optim.lr_scheduler.LinearLR(opt, start_factor=start_factor, total_iters=steps)
        return torch.optim.lr_scheduler.SequentialLR(opt, [linear, inner(opt)], milestones=[steps])
    return make


LRS = torch.optim.lr_scheduler
SCHEDULE_CASES = [
    (StepLR(BASE_LR, step_size=4, gamma=0.5), lambda o: LRS.StepLR(o, step_size=4, gamma=0.5)),
    (StepLR(BASE_LR, step_size=3), lambda o: LRS.StepLR(o, step_size=3)),
    (ExponentialLR(BASE_LR, gamma=0.9), lambda o: LRS.ExponentialLR(o, gamma=0.9)),
    (CosineAnnealingLR(BASE_LR, T_max=30), lambda o: LRS.CosineAnnealingLR(o, T_max=30)),
    # T_max < 30: also covers the climb back after T_max
    (CosineAnnealingLR(BASE_LR, T_max=10, eta_min=0.01),
     lambda o: LRS.CosineAnnealingLR(o, T_max=10, eta_min=0.01)),
    (LinearWarmup(CosineAnnealingLR(BASE_LR, T_max=20, eta_min=0.001), 5, start_factor=0.25),
     _warmup(lambda o: LRS.CosineAnnealingLR(o, T_max=20, eta_min=0.001))),
    (LinearWarmup(StepLR(BASE_LR, step_size=7, gamma=0.5), 8, start_factor=0.1),
     _warmup(lambda o: LRS.StepLR(o, step_size=7, gamma=0.5), steps=8, start_factor=0.1)),
    (LinearWarmup(ExponentialLR(BASE_LR, gamma=0.95), 3),
     _warmup(lambda o: LRS.ExponentialLR(o, gamma=0.95), steps=3, start_factor=1 / 3)),
]


@pytest.mark.parametrize("schedule,make_torch", SCHEDULE_CASES, ids=[repr(s) for s, _ in SCHEDULE_CASES])
def test_schedule_matches_torch(schedule, make_torch):
    ours = [schedule.lr_at(step) for step in range(N_SCHED)]
    np.testing.assert_allclose(ours, _torch_lrs(make_torch), rtol=1e-12, atol=0)


def test_cosine_is_exactly_torchs_up_to_t_max():
    ours = [CosineAnnealingLR(BASE_LR, T_max=10, eta_min=0.01).lr_at(s) for s in range(11)]
    assert ours == _torch_lrs(lambda o: LRS.CosineAnnealingLR(o, T_max=10, eta_min=0.01), n=11)
    assert ours[0] == BASE_LR and ours[10] == 0.01


def test_warmup_by_hand():
    # lr0 = 0.1, start_factor = 0.5, 4 warmup steps: factors 0.5, 0.625, 0.75, 0.875, then 0.1.
    s = LinearWarmup(ConstantLR(0.1), warmup_steps=4, start_factor=0.5)
    np.testing.assert_allclose([s.lr_at(k) for k in range(6)],
                               [0.05, 0.0625, 0.075, 0.0875, 0.1, 0.1], rtol=1e-15)
    assert LinearWarmup(ConstantLR(0.1), 0).lr_at(0) == 0.1


def test_make_schedule_round_trips_config():
    for schedule in [ConstantLR(0.3)] + [s for s, _ in SCHEDULE_CASES]:
        config = json.loads(json.dumps(schedule.config()))
        rebuilt = make_schedule(**config)
        assert type(rebuilt) is type(schedule) and rebuilt.config() == schedule.config()
        assert [rebuilt.lr_at(k) for k in range(40)] == [schedule.lr_at(k) for k in range(40)]
    s = make_schedule("cosine", 0.1, T_max=20, warmup_steps=5)
    assert isinstance(s, LinearWarmup) and s.start_factor == 1 / 3
    assert isinstance(make_schedule("step", 0.1, step_size=2, warmup_steps=0), StepLR)


def test_make_schedule_errors():
    with pytest.raises(HyperparameterError,
                       match="unknown schedule 'cosin'; valid names are 'constant', 'step', 'exponential', 'cosine'"):
        make_schedule("cosin", 0.1)
    with pytest.raises(HyperparameterError, match="step_size"):
        make_schedule("step", 0.1)  # missing
    with pytest.raises(HyperparameterError, match="T_max"):
        make_schedule("cosine", 0.1, T_max=10, Tmax=3)  # misspelt extra


def test_training_loop_with_schedule_matches_torch():
    """The intended loop: set opt.lr from the schedule before each step."""
    rng = np.random.default_rng(5)
    init = _init_params(rng, np.float64)
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    opt = AdamW(ours, lr=0.05)
    schedule = make_schedule("cosine", 0.05, T_max=8, eta_min=0.001, warmup_steps=4,
                             warmup_start_factor=0.2)
    topt = torch.optim.AdamW(theirs, lr=0.05)
    tsched = _warmup(lambda o: LRS.CosineAnnealingLR(o, T_max=8, eta_min=0.001),
                     steps=4, start_factor=0.2)(topt)
    for step, grads in enumerate(_grad_sequence(rng, 12, np.float64)):
        opt.lr = schedule.lr_at(step)
        for p, q, g in zip(ours, theirs, grads):
            p.grad[...] = g
            q.grad = torch.tensor(g)
        opt.step()
        topt.step()
        tsched.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-10, atol=0)


# -- non-finite values, modules passed as params, crafted states ---------------

@pytest.mark.parametrize(
    "build,name",
    [
        (lambda: Adam(_p(), lr=math.inf), "lr"),
        (lambda: SGD(_p(), lr=0.1, weight_decay=math.inf), "weight_decay"),
        (lambda: Adam(_p(), eps=math.inf), "eps"),
        (lambda: RMSprop(_p(), momentum=-math.inf), "momentum"),
        (lambda: Adagrad(_p(), lr_decay=math.inf), "lr_decay"),
        (lambda: StepLR(math.inf, 3), "base_lr"),
        (lambda: CosineAnnealingLR(0.1, T_max=10, eta_min=math.inf), "eta_min"),
    ],
)
def test_infinite_hyperparameters_are_refused(build, name):
    with pytest.raises(HyperparameterError, match=rf"{name} must be finite, got -?inf"):
        build()


def test_hyperparameter_error_lives_in_rnnkit_errors_and_is_re_exported():
    import rnnkit.errors
    import rnnkit.optim.optimizers
    assert HyperparameterError is rnnkit.errors.HyperparameterError is rnnkit.optim.optimizers.HyperparameterError
    assert issubclass(HyperparameterError, RnnkitError) and issubclass(HyperparameterError, ValueError)


def test_shared_checks_are_public():
    from rnnkit.optim import checks, schedules
    assert checks.check_real("gamma", np.float32(0.5)) == 0.5
    with pytest.raises(HyperparameterError, match="must be a real number, got True"):
        checks.check_real("lr", True)
    assert checks.check_count("n", np.int64(3), 1) == 3
    # no module reaches into another's private helpers any more
    assert not [n for n in vars(schedules) if n in ("_real", "_count")]


@pytest.mark.parametrize("call", [lambda m: Adam(m), lambda m: SGD(m, lr=0.1),
                                  lambda m: clip_grad_norm(m, 1.0), lambda m: clip_grad_value(m, 1.0)])
def test_passing_the_model_instead_of_its_parameters_says_what_to_pass(call):
    from rnnkit.nn import LSTM
    with pytest.raises(TypeError, match=r"got the LSTM module itself; pass model\.parameters\(\)"):
        call(LSTM(2, 3))


def test_clipping_refuses_things_that_are_not_parameters():
    with pytest.raises(TypeError, match=r"params\[0\] must be an rnnkit Parameter, got ndarray"):
        clip_grad_norm([np.zeros(3)], 1.0)
    with pytest.raises(TypeError, match="params must be an iterable of rnnkit Parameters"):
        clip_grad_value(3, 1.0)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("param_shapes", 5, "'param_shapes' must be a list of shapes"),
        ("param_shapes", [5, [2]], "'param_shapes' must be a list of shapes"),
        ("param_shapes", [[-2]], "'param_shapes' must be a list of shapes"),
        ("steps", "x", "'steps' must be a non-negative integer, got 'x'"),
        ("steps", -3, "'steps' must be a non-negative integer, got -3"),
        ("steps", 2.5, "'steps' must be a non-negative integer, got 2.5"),
        ("steps", True, "'steps' must be a non-negative integer, got True"),
        ("hyperparameters", [1], "'hyperparameters' must be a dict of keyword arguments"),
        ("optimizer", None, "'optimizer' must be a class name"),
        ("lr", "fast", "hyperparameters do not fit SGD: lr must be a real number, got 'fast'"),
        ("lr", math.inf, "hyperparameters do not fit SGD: lr must be finite, got inf"),
    ],
)
def test_crafted_optimiser_state_scalars_name_the_field(field, value, message):
    src = SGD([Parameter(np.ones(2))], lr=0.1, momentum=0.9)
    state = src.state_dict()
    state["scalars"][field] = value
    target = SGD([Parameter(np.ones(2))], lr=0.3, momentum=0.5)
    with pytest.raises(ModelFileError, match=re.escape(message)):
        target.load_state_dict(state)
    assert (target.lr, target.momentum, target.steps) == (0.3, 0.5, 0)  # unchanged


def test_crafted_optimiser_state_containers_and_arrays():
    state = SGD([Parameter(np.ones(2))], lr=0.1, momentum=0.9).state_dict()
    target = SGD([Parameter(np.ones(2))], lr=0.1, momentum=0.9)
    for bad, message in [({"scalars": [], "arrays": {}}, "'scalars' must be a dict"),
                         ({"scalars": state["scalars"], "arrays": [1]}, "'arrays' must be a dict of arrays"),
                         ("junk", "not an optimiser state_dict"),
                         ({"scalars": state["scalars"], "arrays": {"momentum_buffer.0": np.array(["a", "b"])}},
                          "array momentum_buffer.0 must hold numbers, got dtype <U1")]:
        with pytest.raises(ModelFileError, match=re.escape(message)):
            target.load_state_dict(bad)


@pytest.mark.parametrize("make, name, value, message", [
    (lambda ps: Adam(ps, lr=0.01), "exp_avg_sq.0", -1.0, "array exp_avg_sq.0 sums squares but holds negative values"),
    (lambda ps: Adam(ps, lr=0.01), "exp_avg.0", np.nan, "array exp_avg.0 holds NaN or infinite values"),
    (lambda ps: AdamW(ps, lr=0.01, amsgrad=True), "max_exp_avg_sq.0", -2.0, "max_exp_avg_sq.0 sums squares"),
    (lambda ps: RMSprop(ps, lr=0.01), "square_avg.0", np.inf, "square_avg.0 holds NaN or infinite values"),
    (lambda ps: Adagrad(ps, lr=0.01), "sum.0", -0.5, "array sum.0 sums squares but holds negative values"),
    (lambda ps: SGD(ps, lr=0.1, momentum=0.9), "momentum_buffer.0", -np.inf, "holds NaN or infinite values"),
])
def test_a_damaged_state_with_non_finite_or_negative_moments_is_refused(make, name, value, message):
    # loaded before, and the next Adam step turned every parameter into NaN (a square root of a negative)
    params = [Parameter(np.ones(3))]
    opt = make(params)
    params[0].grad = np.ones(3)
    opt.step()
    state = opt.state_dict()
    state["arrays"][name] = np.array(state["arrays"][name])
    state["arrays"][name][1] = value
    fresh = make([Parameter(np.ones(3))])
    before = {k: [a.copy() for a in v] for k, v in fresh.state.items()}
    with pytest.raises(ModelFileError, match=re.escape(message)):
        fresh.load_state_dict(state)
    assert all(np.array_equal(a, b) for k in before for a, b in zip(before[k], fresh.state[k]))   # nothing changed


def test_loading_a_state_replaces_the_hyperparameters_given_to_the_constructor():
    # torch.optim's rule, documented in Optimizer.load_state_dict: the checkpoint wins
    params = [Parameter(np.ones(2))]
    state = Adam(params, lr=0.001, betas=(0.5, 0.6), weight_decay=0.1).state_dict()
    opt = Adam(params, lr=0.1)
    opt.load_state_dict(state)
    assert (opt.lr, opt.beta1, opt.beta2, opt.weight_decay) == (0.001, 0.5, 0.6, 0.1)
    assert "replace" in Adam.load_state_dict.__doc__


# -- decay_mask: which parameters weight decay reaches ------------------------------------------------------
MASK = [True, False, True, False]          # SHAPES: the matrix and the 3-D array decay, the vectors do not
MASK_CASES = [(SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.3)),
              (Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.3)),
              (AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.3)),
              (AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
              (RMSprop, torch.optim.RMSprop, dict(lr=0.01, weight_decay=0.3, centered=True)),
              (Adagrad, torch.optim.Adagrad, dict(lr=0.1, weight_decay=0.3))]


@pytest.mark.parametrize("ours_cls,torch_cls,kwargs", MASK_CASES, ids=[f"{c.__name__}-{k}" for c, _, k in MASK_CASES])
@pytest.mark.parametrize("as_function", [False, True])
def test_decay_mask_matches_two_torch_parameter_groups(ours_cls, torch_cls, kwargs, as_function):
    """decay_mask does what torch's two parameter groups (one with weight_decay=0) do, step for step; given as
    bools or as a function of the Parameter."""
    rng = np.random.default_rng(7)
    init = _init_params(rng, np.float64)
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    mask = (lambda p: p.data.ndim > 1) if as_function else MASK
    opt = ours_cls(ours, decay_mask=mask, **kwargs)
    assert opt.decay_mask == tuple(MASK)
    groups = [{"params": [q for q, m in zip(theirs, MASK) if m]},
              {"params": [q for q, m in zip(theirs, MASK) if not m], "weight_decay": 0.0}]
    topt = torch_cls(groups, **kwargs)
    grads = _grad_sequence(rng, N_STEPS, np.float64)
    for step_grads in grads:
        _step_both(opt, topt, ours, theirs, step_grads)
    for k, (p, q) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-10, atol=0, err_msg=f"parameter {k}")
    # and the mask matters: decaying every parameter moves the masked ones elsewhere, the others not
    plain = [Parameter(a.copy()) for a in init]
    _run_ours(ours_cls(plain, **kwargs), plain, grads)
    assert not np.allclose(plain[1].data, ours[1].data) and not np.allclose(plain[3].data, ours[3].data)
    np.testing.assert_allclose(plain[0].data, ours[0].data, rtol=1e-12)


def test_decay_mask_travels_in_the_state_dict():
    rng = np.random.default_rng(3)
    params = [Parameter(a) for a in _init_params(rng, np.float64)]
    opt = AdamW(params, lr=0.01, weight_decay=0.5, decay_mask=MASK)
    state = json.loads(json.dumps(opt.state_dict()["scalars"]))         # the scalars are JSON, as in a checkpoint
    assert state["hyperparameters"]["decay_mask"] == MASK
    saved = {"scalars": state, "arrays": opt.state_dict()["arrays"]}
    fresh = AdamW(params, lr=0.1, weight_decay=0.1, decay_mask=lambda p: p.data.ndim > 1)
    fresh.load_state_dict(saved)                    # the other hyperparameters come from the state, as in torch
    assert fresh.decay_mask == tuple(MASK) and (fresh.lr, fresh.weight_decay) == (0.01, 0.5)
    # which parameters decay is their grouping: a state of another grouping is refused, not adopted (as torch
    # refuses another number of parameter groups); no mask and an all-True one are the same grouping
    for mask in (None, [True, True, False, False]):
        with pytest.raises(ModelFileError, match=r"state_dict decays other parameters than this optimiser"):
            AdamW(params, lr=0.01, weight_decay=0.5, decay_mask=mask).load_state_dict(saved)
    AdamW(params, decay_mask=[True] * 4).load_state_dict(AdamW(params).state_dict())
    with pytest.raises(ModelFileError, match="decay_mask"):
        AdamW(params, decay_mask=MASK).load_state_dict(AdamW(params).state_dict())
    assert "decay_mask" not in AdamW(params).state_dict()["scalars"]["hyperparameters"]   # old states stay as they were
    assert "decay_mask=[True, False, True, False]" in repr(opt)


@pytest.mark.parametrize("mask,message", [
    ([True, False], "decay_mask has 2 entries for 4 parameters"),
    ([True, 0, True, False], "decay_mask[1] must be True or False, got 0"),
    ("ndim", "decay_mask must be one bool per parameter or a function"),
    (lambda p: "yes", "decay_mask[0] must be True or False, got 'yes'"),
])
def test_decay_mask_refusals(mask, message):
    params = [Parameter(a) for a in _init_params(np.random.default_rng(0), np.float64)]
    with pytest.raises(HyperparameterError, match=re.escape(message)):
        AdamW(params, decay_mask=mask)
