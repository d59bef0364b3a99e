"""What every format's loader hands back: all the labelled images it has, decoded, before the
subset and the train / validation / test split are drawn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

Part = tuple[torch.Tensor, torch.Tensor]  # uint8 (N, C, H, W), int64 (N,)


@dataclass
class Decoded:
    train: Part
    val: Part | None  # a labelled validation set that ships with the data (folder's val/)
    test: Part | None  # the dataset's own labelled test set
    class_names: list[str]
    # The dataset's statistics on a 0..1 scale, one per channel (published ones, or measured over `train` once).
    mean: tuple[float, ...]
    std: tuple[float, ...]


def keep_first_classes(part: Part, k: int) -> Part:
    """Images of labels 0..k-1 only; labels are already in class order, so no relabelling."""
    images, labels = part
    keep = labels < k
    if bool(keep.all()):
        return part
    return images[keep].contiguous(), labels[keep].contiguous()


def channel_stats(images: torch.Tensor, chunk: int = 2048) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on a 0..1 scale, in chunks so a big uint8 set never becomes one
    big float copy."""
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for i in range(0, images.shape[0], chunk):
        x = images[i : i + chunk].to(torch.float64).div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square_().sum(dim=(0, 2, 3))
    n = max(images.shape[0] * images.shape[2] * images.shape[3], 1)
    mean = total / n
    std = (squares / n - mean.square()).clamp_min(0).sqrt()
    return tuple(round(float(v), 4) for v in mean), tuple(max(round(float(v), 4), 1e-4) for v in std)


@dataclass
class Source:
    """A dataset found on disk, not yet decoded: the files that fingerprint it for the cache
    (empty: do not cache), the settings that change what `decode` makes, and `decode` itself."""

    root: Path
    files: list[str]
    settings: dict
    decode: Callable[[], Decoded]
