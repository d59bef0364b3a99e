"""One optimisation step: forward under autocast, the loss, backward, clipping, the optimiser's step.

The trainer takes one per batch and `cnnlab bench` times this same step as pure compute, so the
bench's ratio measures exactly what lies around it. `make_step` assembles one from an experiment
(its optimizer over the parameters that train, a gradient scaler for fp16, the recipe's label
smoothing and clipping): the trainer, the lr range test, auto's probe and the bench all take theirs
from it, so what they time or advise is the step a run trains with.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.compute.device import Runtime
from engine.experiment.config import Experiment
from engine.training.optim import build_optimizer


@dataclass
class TrainStep:
    """The model, its optimiser and scaler on a runtime, with the two numbers a step reads from the
    recipe. Call it with a batch: `logits, loss = step(x, target)`, both still on the device."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    rt: Runtime
    _: KW_ONLY
    label_smoothing: float = 0.0  # augment.label_smoothing
    grad_clip: float | None = None  # optim.grad_clip
    forward: nn.Module | None = None  # run in the model's place: its torch.compile or DistributedDataParallel wrapper

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        forward = self.forward if self.forward is not None else self.model
        with self.rt.autocast():
            logits = forward(x)
            loss = F.cross_entropy(logits.float(), target, label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return logits, loss


def make_step(
    exp: Experiment,
    model: nn.Module,
    rt: Runtime,
    *,
    lr: float | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    init_scale: float = 2.0**16,
    forward: nn.Module | None = None,
) -> TrainStep:
    """The step of `exp` for `model` (already on `rt`'s device) on `rt`: a new optimizer (optim.*, at
    `lr`, else optim.lr) over the parameters that train unless one is given, and a new gradient scaler
    (on for fp16, starting at `init_scale`) unless one is given."""
    return TrainStep(
        model,
        optimizer if optimizer is not None else optimizer_for(exp, model, lr),
        scaler if scaler is not None else scaler_for(rt, init_scale),
        rt,
        label_smoothing=exp.augment.label_smoothing,
        grad_clip=exp.optim.grad_clip,
        forward=forward,
    )


def optimizer_for(exp: Experiment, model: nn.Module, lr: float | None = None) -> torch.optim.Optimizer:
    """optim.* over the parameters of `model` that train, at `lr` (else optim.lr)."""
    return build_optimizer(exp.optim, [p for p in model.parameters() if p.requires_grad], lr=lr)


def scaler_for(rt: Runtime, init_scale: float = 2.0**16) -> torch.amp.GradScaler:
    """The gradient scaler of `rt`: on for fp16 alone, starting at `init_scale`."""
    return torch.amp.GradScaler(rt.device.type, init_scale=init_scale, enabled=rt.needs_scaler)
