"""Datasets in memory: every split held once as a uint8 tensor (N, C, H, W) plus int64 labels,
ready to be moved to the training device and augmented there per batch.

`load_splits` finds the dataset (engine/data/datasets/, one file per format), decodes it or reads its
decoded cache, keeps the first K classes, then draws with data.split_seed:

    order = torch.randperm(N, generator=Generator().manual_seed(split_seed))   # over the training images
    order = order[:train_subset]                                                # data.train_subset
    train | val | test = consecutive slices of order, in that order

so that with no subset and no test split it is exactly torch.utils.data.random_split(train,
[n_train, n_val]) after torch.manual_seed(split_seed): report 001's listing, which gives its very
40,000 / 10,000 split of CIFAR-100 with data.val_split = 10000, split_seed = 0. data.val_split and
data.test_split are each a fraction of the same training images (after the subset), so
val_split = test_split = 0.1 gives report 002's 0.8 / 0.1 / 0.1; a val_split of 1 or more is a count.
A labelled val/ that ships with the data (folder format) is used instead of a validation split,
and the dataset's own test set is used unless data.test_split carves one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.data.datasets import cache, cifar, folder, mnist, shapes, stl, svhn, tiny_imagenet
from engine.data.datasets.decoded import Decoded, channel_stats
from engine.data.datasets.errors import DatasetMissing, DatasetUnusable
from engine.experiment.config import DATASETS, DataConfig

__all__ = ["DatasetMissing", "DatasetUnusable", "Split", "Splits", "describe", "load_splits", "split_sizes"]

CACHE_FOLDER = ".cnnlab-cache"
# The module of engine/data/datasets/ that reads each dataset on disk (shapes is generated in memory).
FORMATS = {
    "cifar10": cifar,
    "cifar100": cifar,
    "tiny-imagenet": tiny_imagenet,
    "mnist": mnist,
    "fashion-mnist": mnist,
    "kmnist": mnist,
    "svhn": svhn,
    "stl10": stl,
    "folder": folder,
}


@dataclass
class Split:
    images: torch.Tensor  # uint8 (N, C, H, W), contiguous, on the CPU
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Splits:
    train: Split
    val: Split | None  # None when data.val_split is 0
    test: Split | None  # None when the dataset has no labelled test set
    class_names: list[str]  # after the first-K-classes filter
    mean: tuple[float, ...]  # the normalisation used, on a 0..1 scale, one figure per channel
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def preprocessing(self) -> dict[str, Any]:
        """What a model trained on these splits takes: square size, channels, the normalisation (one
        figure per channel) and the class names its outputs stand for."""
        images = self.train.images
        channels = int(images.shape[1])
        return {
            "size": int(images.shape[-1]),
            "channels": channels,
            "mean": [float(m) for m in self.mean][:channels],
            "std": [float(s) for s in self.std][:channels],
            "class_names": list(self.class_names),
        }


def describe(cfg: DataConfig) -> tuple[int, int, int]:
    """(classes, channels, image size) without decoding any image: what a dry run needs. A folder
    dataset's files are checked too (check_folder_files), so a dry run finds a corrupt image."""
    if cfg.dataset == "folder":
        facts = folder.describe(cfg)
        check_folder_files(cfg)
        return facts
    info = DATASETS[cfg.dataset]
    return cfg.classes or info["classes"], info["channels"], cfg.image_size or info["size"]


def check_folder_files(cfg: DataConfig) -> None:
    """Every image of a folder dataset opens and checks out (DatasetUnusable naming the first that does
    not), unless the decoded cache already holds these very files: then they decoded once already."""
    from engine.data.datasets.images import check_images

    src = folder.source(cfg)
    if cfg.cache and src.files:
        entry = cache.entry_path(src.root / CACHE_FOLDER, cfg.dataset, src.settings, src.root, src.files)
        if entry.exists():
            return
    check_images(src.files)


def load_splits(cfg: DataConfig, *, cache_dir: Path | None = None) -> Splits:
    decoded = decode(cfg, cache_dir=cache_dir)
    images, labels = decoded.train
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(cfg.split_seed))
    if cfg.train_subset is not None:
        order = order[: cfg.train_subset]
    n = len(order)
    own_val = decoded.val is not None and cfg.val_split > 0
    n_train, n_val, n_test = split_sizes(cfg, n, own_val)
    if n_train < 1:
        raise DatasetUnusable(
            f"data.val_split ({cfg.val_split:g}) and data.test_split ({cfg.test_split:g}) take {n_val + n_test} of the "
            f"{n} training images, leaving none to train on: lower them or raise data.train_subset"
        )

    # Which part each image goes to; reading the parts back off in index order gives sorted
    # indices (the copies then read memory in order) without a sort.
    part = torch.full((len(labels),), -1, dtype=torch.int8)
    part[order[:n_train]] = 0
    part[order[n_train : n_train + n_val]] = 1
    part[order[n_train + n_val :]] = 2

    def take(k: int) -> Split:
        idx = (part == k).nonzero().squeeze(1)
        if len(idx) == len(labels):  # everything: no second copy of the dataset
            return Split(images, labels)
        return Split(images.index_select(0, idx), labels.index_select(0, idx))

    train = take(0)
    val = Split(*decoded.val) if own_val else take(1) if n_val else None
    test = take(2) if n_test else Split(*decoded.test) if decoded.test is not None else None

    if cfg.normalize == "dataset":
        mean, std = decoded.mean, decoded.std
    elif cfg.normalize == "given":
        mean, std = cfg.mean, cfg.std
    elif cfg.normalize == "compute":
        mean, std = channel_stats(train.images)
    else:
        mean, std = (0.0,), (1.0,)
    channels = train.images.shape[1]
    return Splits(train, val, test, list(decoded.class_names), per_channel(mean, channels), per_channel(std, channels))


def per_channel(values, channels: int) -> tuple[float, ...]:
    """One figure per channel of the data: a single figure (or three equal ones, the form's R, G, B
    given for a grey set) is repeated or cut to fit; figures that differ cannot fit another count."""
    values = tuple(float(v) for v in values)
    if len(values) == channels:
        return values
    if len(set(values)) == 1:
        return values[:1] * channels
    raise DatasetUnusable(f"the data has {channels} channels but the normalisation gives {len(values)} figures")


def decode(cfg: DataConfig, *, cache_dir: Path | None = None) -> Decoded:
    """Every labelled image of the dataset's first K classes at the load-time size, from the
    decoded cache when it has them."""
    if cfg.dataset == "shapes":
        # Generated in well under a second (and kept for the process): no disk cache.
        return shapes.decode(cfg)
    src = FORMATS[cfg.dataset].source(cfg)
    if not cfg.cache or not src.files:
        return src.decode()
    where = Path(cache_dir) if cache_dir is not None else src.root / CACHE_FOLDER
    return cache.load_or_decode(cache.entry_path(where, cfg.dataset, src.settings, src.root, src.files), src.decode)


def split_sizes(cfg: DataConfig, n: int, own_val: bool = False) -> tuple[int, int, int]:
    """(train, val, test) images of n training images under data.val_split and data.test_split;
    no validation split when the data ships its own (own_val). No torch: the bench sizes an epoch by it."""
    n_test = _count(cfg.test_split, n) if cfg.test_split > 0 else 0
    n_val = _count(cfg.val_split, n) if cfg.val_split > 0 and not own_val else 0
    return n - n_val - n_test, n_val, n_test


def _count(split: float, n: int) -> int:
    """A fraction of n (at least one image), or a count when 1 or more."""
    if split >= 1:
        return int(split)
    return max(1, round(split * n))
