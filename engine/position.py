"""The exact place inside an epoch, so that a stop, a signal or a timed checkpoint loses nothing.

    <run>/checkpoints/position.pt    a training checkpoint (engine.checkpoint.training_state) of the
                                     epochs done, plus `position`: where the epoch in progress is

What an epoch needs to go on as if it had never stopped: its order of the training images (the
permutation drawn at its start), the number of batches done, the running sums of its loss and
correct predictions, and the RNG states at that batch (in the checkpoint's `rng`, taken at the same
moment). All plain tensors and numbers, so it loads with weights_only=True. It is written between
two batches and removed once the epoch's own end-of-epoch checkpoint (last.pt) is on disk, so it
never outlives the epoch it describes; `last` and `best` keep their meaning.
"""

from __future__ import annotations

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
    def from_state(cls, d: dict[str, Any], device: torch.device, train_size: int) -> Position:
        """The position a checkpoint holds, on `device`; ValueError if it cannot belong to this run."""
        perm = d["perm"]
        batch, seen = int(d["batch"]), int(d["seen"])
        if not isinstance(perm, torch.Tensor) or perm.dim() != 1 or perm.numel() != train_size:
            raise ValueError(f"its permutation is not one of the {train_size} training images")
        if not 0 <= seen <= train_size or batch < 0:
            raise ValueError(f"batch {batch}, {seen} images seen: not a place inside this epoch")
        return cls(
            epoch=int(d["epoch"]),
            batch=batch,
            perm=perm.to(device=device, dtype=torch.long),
            loss_sum=d["loss_sum"].to(device),
            correct=d["correct"].to(device),
            seen=seen,
            seconds=float(d["seconds"]),
            lr=float(d["lr"]),
        )
