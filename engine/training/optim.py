"""Optimisers, the learning-rate schedule, and fine-tuning phases.

The schedule is a pure function of (epoch, step) for every kind except plateau, so a resumed run
asks for the same point of the curve and gets the same number; no torch scheduler object has to
be stepped in lockstep with the loop. The formulas are torch's own (lr_scheduler.py, closed form)
and the tests hold them against torch's schedulers.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

import torch
from torch import nn

from engine.experiment.config import OptimConfig, Phase, ScheduleConfig, TrainConfig
from engine.experiment.errors import ConfigError

# The devices cnnlab trains on; torch has fused SGD, Adam and AdamW kernels for each (MPS since 2.5).
FUSED_DEVICES = frozenset({"cpu", "cuda", "mps"})
# torch.optim.ReduceLROnPlateau's defaults (mode "min", threshold_mode "rel", cooldown 0).
PLATEAU_THRESHOLD = 1e-4
PLATEAU_EPS = 1e-8
# torch.optim.lr_scheduler.OneCycleLR's defaults.
ONECYCLE_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4


def build_optimizer(cfg: OptimConfig, params: Iterable, lr: float | None = None) -> torch.optim.Optimizer:
    """SGD, Adam (weight decay as an L2 term in the gradient) or AdamW (decoupled decay).

    The fused kernels are used on the CPU, CUDA and MPS: one kernel over all parameters instead of a
    Python loop per tensor, measured here on one CPU thread at 3x (SGD) to 5x (Adam/AdamW) faster per
    step than torch's default. Elsewhere torch's own default (foreach or the per-tensor loop) applies.
    """
    params = list(params)
    lr = cfg.lr if lr is None else float(lr)
    impl = {"fused": True} if _fused_fits(params) else {}
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay, **impl
        )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, **impl)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, **impl)
    raise ValueError(f"unknown optimizer {cfg.name!r}")


def _fused_fits(params: list) -> bool:
    # Params may be tensors or param-group dicts; fused needs every tensor floating point on a supported device.
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    return bool(tensors) and all(t.device.type in FUSED_DEVICES and torch.is_floating_point(t) for t in tensors)


class LRSchedule:
    """The learning rate as a function of progress. For every schedule except plateau the lr is a pure
    function of (epoch, step), so a resume continues the curve exactly; plateau keeps a small state.

    Warm-up: the first round(warmup_epochs * steps_per_epoch) steps are the schedule's starting value
    times a per-batch linear ramp from warmup_start to 1; the schedule then runs from its beginning
    over the steps that remain. Per-epoch schedules step every steps_per_epoch batches counted from
    the end of the warm-up (so a fractional warm-up moves their steps off the epoch boundaries).
    """

    def __init__(self, cfg: ScheduleConfig, base_lr: float, epochs: int, steps_per_epoch: int):
        self.cfg = cfg
        self.base_lr = float(base_lr)
        self.epochs = int(epochs)
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        total = self.epochs * self.steps_per_epoch
        self.warmup_steps = min(round(cfg.warmup_epochs * self.steps_per_epoch), total)
        # What the schedule proper runs over, after the warm-up.
        self.span_steps = max(total - self.warmup_steps, 1)
        self.span_epochs = self.span_steps / self.steps_per_epoch
        self._plateau_lr = self.base_lr
        self._best = math.inf
        self._bad_epochs = 0

    def lr(self, epoch: int, step: int) -> float:
        """The lr for batch `step` (0-based within the epoch) of `epoch` (0-based)."""
        g = epoch * self.steps_per_epoch + step
        value = self._scheduled(max(g - self.warmup_steps, 0))
        if g < self.warmup_steps:
            start = self.cfg.warmup_start
            value *= start + (1.0 - start) * g / self.warmup_steps
        return value

    def _scheduled(self, i: int) -> float:
        """The schedule proper at step i after the warm-up."""
        c, base = self.cfg, self.base_lr
        e = i // self.steps_per_epoch
        progress = min(e, self.span_epochs) / self.span_epochs
        match c.name:
            case "constant":
                return base
            case "step":
                return base * c.gamma ** (e // c.step_size)
            case "multistep":
                return base * c.gamma ** bisect.bisect_right(c.milestones, e)
            case "exponential":
                return base * c.gamma**e
            case "cosine":
                return c.min_lr + (base - c.min_lr) * (1 + math.cos(math.pi * progress)) / 2
            case "linear":
                return base + (c.min_lr - base) * progress
            case "polynomial":
                return base * (1.0 - progress) ** c.power
            case "cyclic":
                return self._cyclic(i)
            case "onecycle":
                return self._onecycle(min(i, self.span_steps - 1))
            case "plateau":
                return self._plateau_lr
        raise ValueError(f"unknown schedule {c.name!r}")

    def _max_lr(self) -> float:
        if self.cfg.max_lr is None:
            raise ValueError(f"the {self.cfg.name} schedule needs schedule.max_lr")
        return self.cfg.max_lr

    def _cyclic(self, i: int) -> float:
        # CyclicLR, mode "triangular", step_size_up = step_size_down = the half period.
        half = self.cfg.cycle_epochs * self.steps_per_epoch
        cycle = math.floor(1 + i / (2 * half))
        x = 1.0 + i / (2 * half) - cycle
        scale = x / 0.5 if x <= 0.5 else (x - 1) / (0.5 - 1)
        return self.base_lr + (self._max_lr() - self.base_lr) * scale

    def _onecycle(self, i: int) -> float:
        # OneCycleLR, two phases, cosine anneal; the base lr plays no part, as in torch.
        peak = self._max_lr()
        initial = peak / ONECYCLE_DIV
        final = initial / ONECYCLE_FINAL_DIV
        rise_end = float(self.cfg.pct_start * self.span_steps) - 1
        if i <= rise_end:
            start, end, lo, hi = initial, peak, 0.0, rise_end
        else:
            start, end, lo, hi = peak, final, rise_end, float(self.span_steps - 1)
        # A phase of zero length (torch divides by zero here) is already at its end.
        pct = (i - lo) / (hi - lo) if hi != lo else 1.0
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def end_epoch(self, val_loss: float | None) -> None:
        """Tell the schedule an epoch ended. Only plateau listens: it counts epochs whose validation
        loss is not better than the best by torch's relative threshold, and after more than
        `patience` of them multiplies the lr by gamma, never below min_lr."""
        if self.cfg.name != "plateau" or val_loss is None:
            return
        if val_loss < self._best * (1.0 - PLATEAU_THRESHOLD):
            self._best = float(val_loss)
            self._bad_epochs = 0
        else:
            self._bad_epochs += 1
        if self._bad_epochs > self.cfg.patience:
            reduced = max(self._plateau_lr * self.cfg.gamma, self.cfg.min_lr)
            if self._plateau_lr - reduced > PLATEAU_EPS:
                self._plateau_lr = reduced
            self._bad_epochs = 0

    def state_dict(self) -> dict:
        if self.cfg.name != "plateau":
            return {"name": self.cfg.name}
        return {"name": "plateau", "lr": self._plateau_lr, "best": self._best, "bad_epochs": self._bad_epochs}

    def load_state_dict(self, d: dict) -> None:
        # A state saved under another schedule kind carries nothing that applies here.
        if self.cfg.name == "plateau" and d.get("name") == "plateau":
            self._plateau_lr = float(d["lr"])
            self._best = float(d["best"])
            self._bad_epochs = int(d["bad_epochs"])


def phase_at(train: TrainConfig, epoch: int) -> tuple[int, Phase | None, int]:
    """(phase index, phase, the epoch that phase started at) for a 0-based epoch; (0, None, 0) without
    phases. Epochs past the end belong to the last phase."""
    if not train.phases:
        return 0, None, 0
    start = 0
    for i, phase in enumerate(train.phases):
        if epoch < start + phase.epochs:
            return i, phase, start
        start += phase.epochs
    last = len(train.phases) - 1
    return last, train.phases[last], start - train.phases[last].epochs


def set_trainable(model: nn.Module, train: str) -> None:
    """ "head": only model.head's parameters get gradients; "all": every parameter does."""
    if train == "all":
        model.requires_grad_(True)
        return
    if train != "head":
        raise ValueError(f"train must be 'head' or 'all', not {train!r}")
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module) or not any(True for _ in head.parameters()):
        raise ConfigError(
            [
                (
                    "train.phases",
                    f"a head-only phase needs a model with a classifier head; {type(model).__name__} has none",
                )
            ]
        )
    model.requires_grad_(False)
    head.requires_grad_(True)


def freeze_batchnorm_outside_head(model: nn.Module) -> None:
    """A head-only phase keeps the frozen body's BatchNorm statistics too (pretrained ones are worth
    keeping): its BatchNorm layers run in eval mode while the model trains."""
    head = set(map(id, model.head.modules()))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in head:
            m.eval()
