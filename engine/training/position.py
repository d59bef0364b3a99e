"""The exact place inside an epoch, so that a stop, a signal or a timed checkpoint loses nothing.

    <run>/checkpoints/position.pt    a training checkpoint (engine.training.checkpoint.training_state) of the
                                     epochs done, plus `position`: where the epoch in progress is

What an epoch needs to go on as if it had never stopped: its order of the training images (the
permutation drawn at its start), the number of batches done, the running sums of its loss and
correct predictions, and the RNG states at that batch (in the checkpoint's `rng`, taken at the same
moment). All plain tensors and numbers, so it loads with weights_only=True. It is written between
two batches and removed once the epoch's own end-of-epoch checkpoint (last.pt) is on disk, so it
never outlives the epoch it describes; `last` and `best` keep their meaning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

POSITION_FILE = "position.pt"


@dataclass
class Position:
    epoch: int  # 0-based: the epoch in progress (= epochs done)
    batch: int  # batches of it done: the next to train is this index of the permutation's batches
    perm: torch.Tensor  # the epoch's order of the training images
    loss_sum: torch.Tensor  # sum over the images seen of their loss (on the device, as the loop keeps it)
    correct: torch.Tensor  # number of them predicted right
    seen: int
    seconds: float  # training time spent in the epoch so far, pauses left out
    lr: float  # at the last batch done

    def state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "perm": self.perm.detach().cpu(),
            "loss_sum": self.loss_sum.detach().cpu(),
            "correct": self.correct.detach().cpu(),
            "seen": self.seen,
            "seconds": self.seconds,
            "lr": self.lr,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any], device: torch.device, train_size: int, batches: int) -> Position:
        """The position a checkpoint holds, on `device`; ValueError if it cannot belong to this run of
        `batches` batches an epoch (a damaged or foreign file must fall back to last.pt, never fail the
        run an epoch in, nor end an epoch early)."""
        perm, loss_sum, correct = d["perm"], d["loss_sum"], d["correct"]
        batch, seen, seconds, lr = int(d["batch"]), int(d["seen"]), float(d["seconds"]), float(d["lr"])
        if not isinstance(perm, torch.Tensor) or perm.dim() != 1 or perm.numel() != train_size:
            raise ValueError(f"its permutation is not one of the {train_size} training images")
        if perm.is_floating_point() or perm.is_complex() or perm.dtype == torch.bool:
            raise ValueError(f"its permutation holds {perm.dtype}, not image indices")
        if not torch.equal(perm.sort().values, torch.arange(train_size, dtype=perm.dtype)):
            raise ValueError(f"its permutation is not an order of the {train_size} training images")
        if not (0 <= batch <= seen <= train_size and (batch == 0) == (seen == 0)):  # each batch saw an image
            raise ValueError(f"batch {batch}, {seen} images seen: not a place inside this epoch")
        if batch >= batches:
            raise ValueError(f"batch {batch}: past the end of an epoch of {batches} batches")
        for name, t, floating in (("loss_sum", loss_sum, True), ("correct", correct, False)):
            if not isinstance(t, torch.Tensor) or t.numel() != 1 or t.is_floating_point() != floating:
                raise ValueError(f"its {name} is not a {'sum of losses' if floating else 'count'}")
        if not (math.isfinite(seconds) and seconds >= 0 and math.isfinite(lr)):
            raise ValueError(f"its time ({seconds}) or lr ({lr}) is not a finite number")
        return cls(
            epoch=int(d["epoch"]),
            batch=batch,
            perm=perm.to(device=device, dtype=torch.long),
            loss_sum=loss_sum.reshape(()).to(device),
            correct=correct.reshape(()).to(device=device, dtype=torch.long),
            seen=seen,
            seconds=seconds,
            lr=lr,
        )
