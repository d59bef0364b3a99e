"""The phase an epoch trains in, and what it brings: an optimizer over the parameters it trains, a
schedule restarted at its own lr, and the step (engine.training.step) that uses them. Without phases
(train.phases empty) a run is one phase of every epoch at optim.lr. A resume inside the phase its
checkpoint was taken in continues that phase's optimizer and schedule states.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from engine.compute.device import Runtime
from engine.events import Event, LogMessage
from engine.experiment.config import Experiment, Phase
from engine.training import checkpoint as ckpt
from engine.training.optim import LRSchedule, freeze_batchnorm_outside_head, phase_at, set_trainable
from engine.training.step import TrainStep, make_step


class Phases:
    """`enter(epoch)` before each epoch; `step`, `schedule` and `lr` are then the epoch's phase's."""

    def __init__(
        self,
        exp: Experiment,
        model: nn.Module,
        rt: Runtime,
        scaler: torch.amp.GradScaler,
        steps: int,
        forward: Callable[[], nn.Module | None],
        emit: Callable[[Event], None],
        saved: ckpt.Restored | None,
    ) -> None:
        self.exp, self.model, self.rt, self.scaler, self.steps = exp, model, rt, scaler, steps
        self.forward, self.emit, self.saved = forward, emit, saved
        self.index, self.start = -1, 0
        self.phase: Phase | None = None
        self.schedule: LRSchedule | None = None
        self.step: TrainStep | None = None

    def enter(self, epoch: int) -> None:
        """The epoch's phase: a new one gets an optimizer over the parameters it trains and restarts
        the schedule at its own lr."""
        exp, t = self.exp, self.exp.train
        idx, phase, self.start = phase_at(t, epoch)
        if idx == self.index and self.schedule is not None:
            return
        self.index, self.phase = idx, phase
        if phase is not None:
            set_trainable(self.model, phase.train)
            self.emit(
                LogMessage(f"phase {idx + 1}: {phase.train} layers train, lr {phase.lr:g}, {phase.epochs} epochs")
            )
        base_lr = phase.lr if phase is not None else exp.optim.lr
        span = phase.epochs if phase is not None else t.epochs
        step = make_step(exp, self.model, self.rt, lr=base_lr, scaler=self.scaler, forward=None)
        self.schedule = LRSchedule(exp.schedule, base_lr, span, self.steps)
        if self.saved is not None and self.saved.phase == idx:
            # Resuming inside the phase the checkpoint was taken in: continue its state.
            step.optimizer.load_state_dict(self.saved.optimizer)
            self.schedule.load_state_dict(self.saved.scheduler)
        self.saved = None
        step.forward = self.forward()
        self.step = step

    def train_mode(self) -> None:
        """The model in training mode, its BatchNorm statistics frozen outside a head that trains alone."""
        self.model.train()
        if self.phase is not None and self.phase.train == "head":
            freeze_batchnorm_outside_head(self.model)

    def lr(self, epoch: int, step: int) -> float:
        """The schedule's lr at batch `step` of `epoch`."""
        return self.schedule.lr(epoch - self.start, step)

    def set_lr(self, lr: float) -> None:
        for group in self.step.optimizer.param_groups:
            group["lr"] = lr

    @property
    def number(self) -> int | None:
        """The phase's number in the metrics line (1-based), None without phases."""
        return self.index + 1 if self.phase is not None else None
