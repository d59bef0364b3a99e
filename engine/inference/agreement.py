"""Whether an exported model answers as the torch model does: on the same inputs, the same top-1
class for every image, and how far apart the logits are at most.

The inputs are the run's own test images through its eval-mode transform (up to CHECK_IMAGES of
them) or, when the dataset is not here, a few seeded random images of the run's size and channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.inference.trained import TrainedModel

CHECK_IMAGES = 256
RANDOM_IMAGES = 8


@dataclass(frozen=True)
class Agreement:
    images: int
    same_top1: int  # images whose top-1 class is the torch model's
    max_abs_diff: float  # the largest difference of any logit
    source: str  # "the run's test images" or "random images"

    @property
    def agrees(self) -> bool:
        return self.same_top1 == self.images

    def text(self) -> str:
        return (
            f"same top-1 class as torch on {self.same_top1} of {self.images} {self.source}, "
            f"largest logit difference {self.max_abs_diff:.2e}"
        )


def check_inputs(trained: TrainedModel) -> tuple[torch.Tensor, str]:
    """float32 (N, C, H, W) on the CPU, as the model takes them, and where they came from."""
    p = trained.prep
    if trained.test is not None and len(trained.test):
        images, source = trained.test.images[:CHECK_IMAGES], "of the run's test images"
    else:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (RANDOM_IMAGES, p.channels, p.size, p.size), generator=g, dtype=torch.uint8)
        source = "random images (the run's dataset is not here)"
    return trained.augment.eval(images).contiguous(), source


def compare(reference: torch.Tensor, other: torch.Tensor, source: str) -> Agreement:
    """The exported model's logits (other) against torch's (reference), both (N, classes)."""
    other = torch.as_tensor(other, dtype=torch.float32)
    same = int((reference.argmax(1) == other.argmax(1)).sum())
    diff = float((reference - other).abs().max()) if reference.numel() else 0.0
    return Agreement(len(reference), same, diff, source)
