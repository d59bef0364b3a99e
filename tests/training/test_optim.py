"""Optimisers, learning-rate schedules (held against torch's own schedulers), phases, freezing."""

import math

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as tl

from engine.experiment.config import OptimConfig, Phase, ScheduleConfig, TrainConfig
from engine.experiment.errors import ConfigError
from engine.training.optim import LRSchedule, build_optimizer, phase_at, set_trainable


def lr_curve(cfg: ScheduleConfig, base_lr: float, epochs: int, steps_per_epoch: int) -> list[float]:
    """One lr per step over the whole run (plateau shows its starting value: it depends on the run)."""
    sched = LRSchedule(cfg, base_lr, epochs, steps_per_epoch)
    return [sched.lr(e, s) for e in range(epochs) for s in range(sched.steps_per_epoch)]


BASE = 0.1
EPOCHS, STEPS = 7, 3


def torch_curve(make, epochs=EPOCHS, steps=STEPS, per_batch=False, base=BASE) -> list[float]:
    """The lr torch's scheduler gives each batch, stepped the way it is meant to be stepped."""
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = make(opt)
    out = []
    for _ in range(epochs):
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            if per_batch:
                sched.step()
        if not per_batch:
            sched.step()
    return out


def assert_same_curve(ours, theirs):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15), f"step {i}: {a} != {b}"


CASES = [
    ("constant", {}, lambda o: tl.LambdaLR(o, lambda e: 1.0), False),
    ("step", {"step_size": 2, "gamma": 0.5}, lambda o: tl.StepLR(o, step_size=2, gamma=0.5), False),
    (
        "multistep",
        {"milestones": [2, 5], "gamma": 0.1},
        lambda o: tl.MultiStepLR(o, milestones=[2, 5], gamma=0.1),
        False,
    ),
    ("exponential", {"gamma": 0.8}, lambda o: tl.ExponentialLR(o, gamma=0.8), False),
    ("cosine", {"min_lr": 0.001}, lambda o: tl.CosineAnnealingLR(o, T_max=EPOCHS, eta_min=0.001), False),
    ("cosine", {"min_lr": 0.0}, lambda o: tl.CosineAnnealingLR(o, T_max=EPOCHS), False),
    (
        "linear",
        {"min_lr": 0.004},
        lambda o: tl.LinearLR(o, start_factor=1.0, end_factor=0.04, total_iters=EPOCHS),
        False,
    ),
    ("polynomial", {"power": 2.0}, lambda o: tl.PolynomialLR(o, total_iters=EPOCHS, power=2.0), False),
    (
        "cyclic",
        {"max_lr": 0.5, "cycle_epochs": 1.5},
        lambda o: tl.CyclicLR(
            o, base_lr=BASE, max_lr=0.5, step_size_up=1.5 * STEPS, mode="triangular", cycle_momentum=False
        ),
        True,
    ),
    (
        "onecycle",
        {"max_lr": 0.5, "pct_start": 0.3},
        lambda o: tl.OneCycleLR(o, max_lr=0.5, total_steps=EPOCHS * STEPS, pct_start=0.3, cycle_momentum=False),
        True,
    ),
]


@pytest.mark.parametrize("name, fields, make, per_batch", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_schedule_matches_torch(name, fields, make, per_batch):
    cfg = ScheduleConfig(name=name, **fields)
    assert_same_curve(lr_curve(cfg, BASE, EPOCHS, STEPS), torch_curve(make, per_batch=per_batch))


def test_per_epoch_schedules_hold_still_within_an_epoch_and_per_batch_ones_move():
    cosine = lr_curve(ScheduleConfig(name="cosine"), BASE, EPOCHS, STEPS)
    assert all(len(set(cosine[e * STEPS : (e + 1) * STEPS])) == 1 for e in range(EPOCHS))
    onecycle = lr_curve(ScheduleConfig(name="onecycle", max_lr=0.5), BASE, EPOCHS, STEPS)
    assert len(set(onecycle[:STEPS])) == STEPS


def test_onecycle_ignores_the_base_lr_as_torch_does():
    cfg = ScheduleConfig(name="onecycle", max_lr=0.5)
    assert lr_curve(cfg, 0.1, 4, 5) == lr_curve(cfg, 0.003, 4, 5)
    assert lr_curve(cfg, 0.1, 4, 5)[0] == pytest.approx(0.5 / 25)


def test_warmup_ramps_per_batch_then_runs_the_whole_schedule_over_the_remaining_epochs():
    warm = 2
    cfg = ScheduleConfig(name="cosine", min_lr=0.001, warmup_epochs=warm, warmup_start=0.1)
    curve = lr_curve(cfg, BASE, EPOCHS, STEPS)
    ramp = torch_curve(
        lambda o: tl.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=warm * STEPS),
        epochs=warm,
        per_batch=True,
    )
    assert_same_curve(curve[: warm * STEPS], ramp)
    assert curve[0] == pytest.approx(0.1 * BASE)
    after = torch_curve(lambda o: tl.CosineAnnealingLR(o, T_max=EPOCHS - warm, eta_min=0.001), epochs=EPOCHS - warm)
    assert_same_curve(curve[warm * STEPS :], after)


def test_warmup_multiplies_a_per_batch_schedule_from_its_start():
    cfg = ScheduleConfig(name="onecycle", max_lr=0.5, warmup_epochs=1, warmup_start=0.5)
    curve = lr_curve(cfg, BASE, EPOCHS, STEPS)
    start = 0.5 / 25
    assert curve[:STEPS] == pytest.approx([start * (0.5 + 0.5 * s / STEPS) for s in range(STEPS)])
    plain = lr_curve(ScheduleConfig(name="onecycle", max_lr=0.5), BASE, EPOCHS - 1, STEPS)
    assert_same_curve(curve[STEPS:], plain)


def test_a_fractional_warmup_counts_the_schedules_epochs_from_its_end():
    steps = 4
    cfg = ScheduleConfig(name="step", step_size=1, gamma=0.5, warmup_epochs=0.5, warmup_start=0.2)
    curve = lr_curve(cfg, BASE, 3, steps)
    assert curve[:2] == pytest.approx([0.2 * BASE, 0.6 * BASE])
    # The step schedule proper starts at batch 2 and halves every 4 batches from there.
    assert curve[2:] == pytest.approx([BASE] * 4 + [BASE / 2] * 4 + [BASE / 4] * 2)


PLATEAU_LOSSES = [
    1.0,
    0.9,
    0.9,
    0.89995,
    0.95,
    0.8,
    0.85,
    0.86,
    0.87,
    0.9,
    0.9,
    0.9,
    0.9,
    0.9,
    0.9,
    0.9,
    0.9,
    0.9,
    0.9,
    0.9,
]


def test_plateau_reduces_after_patience_like_torch_and_stops_at_min_lr():
    cfg = ScheduleConfig(name="plateau", gamma=0.5, patience=2, min_lr=0.02)
    ours = LRSchedule(cfg, BASE, len(PLATEAU_LOSSES) + 1, STEPS)
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=BASE)
    theirs = tl.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, min_lr=0.02)
    seen = []
    for epoch, loss in enumerate(PLATEAU_LOSSES):
        assert ours.lr(epoch, STEPS - 1) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        ours.end_epoch(loss)
        theirs.step(loss)
        seen.append(ours.lr(epoch + 1, 0))
    assert seen == pytest.approx([g for g in _lrs_after_each(PLATEAU_LOSSES)], rel=1e-12)
    assert seen[0] == BASE and min(seen) == pytest.approx(0.02)
    assert seen[3] == BASE  # 0.89995 is not better than 0.9 by torch's relative threshold ...
    assert seen[4] == pytest.approx(BASE / 2)  # ... so the third epoch without improvement (more than patience) reduces


def _lrs_after_each(losses):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=BASE)
    sched = tl.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, min_lr=0.02)
    out = []
    for loss in losses:
        sched.step(loss)
        out.append(opt.param_groups[0]["lr"])
    return out


def test_plateau_ignores_epochs_without_a_validation_loss():
    sched = LRSchedule(ScheduleConfig(name="plateau", patience=0), BASE, 5, 2)
    for _ in range(4):
        sched.end_epoch(None)
    assert sched.lr(4, 0) == BASE


def test_plateau_resumes_from_its_state_dict_exactly():
    cfg = ScheduleConfig(name="plateau", gamma=0.5, patience=2, min_lr=0.02, warmup_epochs=1)
    epochs = len(PLATEAU_LOSSES) + 1
    whole = LRSchedule(cfg, BASE, epochs, STEPS)
    expected = []
    for epoch, loss in enumerate(PLATEAU_LOSSES):
        whole.end_epoch(loss)
        expected.append(whole.lr(epoch + 1, 1))

    first, got = LRSchedule(cfg, BASE, epochs, STEPS), []
    for epoch, loss in enumerate(PLATEAU_LOSSES[:7]):
        first.end_epoch(loss)
        got.append(first.lr(epoch + 1, 1))
    state = first.state_dict()
    assert all(isinstance(v, (str, int, float)) for v in state.values())
    resumed = LRSchedule(cfg, BASE, epochs, STEPS)  # a new process, from the checkpoint's state
    resumed.load_state_dict(state)
    for epoch, loss in enumerate(PLATEAU_LOSSES[7:], start=7):
        resumed.end_epoch(loss)
        got.append(resumed.lr(epoch + 1, 1))
    assert len(set(expected)) > 2  # the run does reduce, before and after the interruption
    assert got == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "cosine", "min_lr": 0.001, "warmup_epochs": 1.5},
        {"name": "onecycle", "max_lr": 0.4},
        {"name": "cyclic", "max_lr": 0.4, "cycle_epochs": 0.5},
        {"name": "multistep", "milestones": [3, 4]},
    ],
)
def test_a_resumed_schedule_continues_the_uninterrupted_curve(fields):
    cfg = ScheduleConfig(**fields)
    whole = lr_curve(cfg, BASE, EPOCHS, STEPS)
    before = LRSchedule(cfg, BASE, EPOCHS, STEPS)
    after = LRSchedule(cfg, BASE, EPOCHS, STEPS)  # a new process, from the checkpoint's state
    after.load_state_dict(before.state_dict())
    resumed = [after.lr(e, s) for e in range(4, EPOCHS) for s in range(STEPS)]
    assert resumed == whole[4 * STEPS :]


def test_phase_at_finds_each_phase_and_its_start():
    head, full = Phase(epochs=10, train="head", lr=1e-3), Phase(epochs=5, train="all", lr=1e-4)
    t = TrainConfig(epochs=15, phases=[head, full])
    assert phase_at(t, 0) == (0, head, 0)
    assert phase_at(t, 9) == (0, head, 0)
    assert phase_at(t, 10) == (1, full, 10)
    assert phase_at(t, 14) == (1, full, 10)
    assert phase_at(t, 20) == (1, full, 10)
    assert phase_at(TrainConfig(epochs=3), 2) == (0, None, 0)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


def test_set_trainable_head_freezes_everything_but_the_head_and_all_thaws():
    torch.manual_seed(0)
    model = Tiny()
    set_trainable(model, "head")
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    # A step with momentum and weight decay leaves the frozen body exactly as it was.
    opt = build_optimizer(OptimConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.01), model.parameters())
    body = [p.detach().clone() for p in model.body.parameters()]
    head = [p.detach().clone() for p in model.head.parameters()]
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        model(torch.randn(6, 4)).square().mean().backward()
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(body, model.body.parameters(), strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(head, model.head.parameters(), strict=True))

    set_trainable(model, "all")
    assert all(p.requires_grad for p in model.parameters())


def test_set_trainable_head_needs_a_head():
    with pytest.raises(ConfigError) as err:
        set_trainable(nn.Sequential(nn.Linear(2, 2)), "head")
    assert err.value.problems[0][0] == "train.phases"


def _param(values):
    return nn.Parameter(torch.tensor(values))


def test_build_optimizer_sgd_hyperparameters_and_one_step():
    cfg = OptimConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.01)
    p = _param([1.0, -2.0])
    opt = build_optimizer(cfg, [p])
    assert type(opt) is torch.optim.SGD
    g = opt.param_groups[0]
    assert (g["lr"], g["momentum"], g["nesterov"], g["weight_decay"]) == (0.1, 0.9, False, 0.01)
    p.grad = torch.tensor([0.5, 0.5])
    opt.step()
    # First step: the momentum buffer is the gradient plus the L2 term.
    assert p.detach() == pytest.approx(torch.tensor([1.0 - 0.1 * (0.5 + 0.01), -2.0 - 0.1 * (0.5 - 0.02)]))


def test_build_optimizer_nesterov_and_lr_override():
    cfg = OptimConfig(name="sgd", lr=0.1, momentum=0.5, nesterov=True)
    p = _param([1.0])
    opt = build_optimizer(cfg, (q for q in [p]), lr=0.01)
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["nesterov"] is True
    p.grad = torch.tensor([1.0])
    opt.step()
    assert p.item() == pytest.approx(1.0 - 0.01 * (1 + 0.5))


def test_adam_decays_as_l2_and_adamw_decoupled():
    lr, wd = 0.01, 0.1
    for name in ("adam", "adamw"):
        p = _param([2.0, -3.0])
        opt = build_optimizer(OptimConfig(name=name, lr=lr, beta1=0.8, beta2=0.99, weight_decay=wd), [p])
        assert type(opt).__name__ == {"adam": "Adam", "adamw": "AdamW"}[name]
        assert opt.param_groups[0]["betas"] == (0.8, 0.99) and opt.param_groups[0]["weight_decay"] == wd
        p.grad = torch.zeros(2)
        opt.step()
        if name == "adamw":
            # Decoupled: the weights shrink by lr*wd and the (zero) gradient moves nothing.
            assert p.detach() == pytest.approx(torch.tensor([2.0, -3.0]) * (1 - lr * wd))
        else:
            # L2: wd*p enters the gradient, and Adam's normalised first step is lr in its sign's direction.
            assert p.detach() == pytest.approx(torch.tensor([2.0 - lr, -3.0 + lr]), rel=1e-5)


def test_build_optimizer_uses_the_fused_kernels_on_the_cpu():
    for name in ("sgd", "adam", "adamw"):
        opt = build_optimizer(OptimConfig(name=name), Tiny().parameters())
        assert opt.defaults["fused"] is True
