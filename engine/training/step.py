"""One optimisation step: forward under autocast, the loss, backward, clipping, the optimiser's step.

The trainer takes one per batch and `cnnlab bench` times this same step as pure compute, so the
bench's ratio measures exactly what lies around it.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.compute.device import Runtime


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
