"""`cifar10` and `cifar100`: the python-pickle versions, read through torchvision's CIFAR10 /
CIFAR100 (which check every file's MD5 and download only when data.download allows it). The
arrays come straight from `.data` (N, 32, 32, 3) uint8: no per-image transforms."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import torch

from engine.data.datasets.decoded import Decoded, Source, keep_first_classes
from engine.data.datasets.errors import DatasetMissing, shown
from engine.data.datasets.images import resize_images
from engine.experiment.config import DataConfig

# The layout torchvision expects (its train_list / test_list / meta), kept here so that finding
# the files for the cache does not import torchvision (seconds) when the cache will answer.
LAYOUT = {
    "cifar10": {
        "title": "CIFAR-10",
        "folder": "cifar-10-batches-py",
        "files": [
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
            "test_batch",
            "batches.meta",
        ],
        "archive": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "download_mb": 163,
        # Per-channel statistics of the 50,000 training images.
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2470, 0.2435, 0.2616),
    },
    "cifar100": {
        "title": "CIFAR-100",
        "folder": "cifar-100-python",
        "files": ["train", "test", "meta"],
        "archive": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "download_mb": 161,
        "mean": (0.5071, 0.4865, 0.4409),
        "std": (0.2673, 0.2564, 0.2762),
    },
}


def source(cfg: DataConfig) -> Source:
    root = Path(cfg.root).expanduser()
    layout = LAYOUT[cfg.dataset]
    files = [str(root / layout["folder"] / name) for name in layout["files"]]
    present = all(os.path.isfile(f) for f in files)
    settings = {"classes": cfg.classes, "image_size": cfg.image_size}
    return Source(root, files if present else [], settings, lambda: decode(cfg))


def decode(cfg: DataConfig) -> Decoded:
    from torchvision.datasets import CIFAR10, CIFAR100  # seconds to import: only when decoding

    root = Path(cfg.root).expanduser()
    layout = LAYOUT[cfg.dataset]
    cls = CIFAR10 if cfg.dataset == "cifar10" else CIFAR100
    try:
        train = cls(str(root), train=True, download=cfg.download)
        test = cls(str(root), train=False, download=False)
    except RuntimeError:  # torchvision's "Dataset not found or corrupted"
        raise DatasetMissing(missing_message(cfg)) from None
    except (OSError, urllib.error.URLError) as err:
        raise DatasetMissing(
            f"{layout['title']} could not be downloaded into {shown(root)} ({err}). Check the network, or download "
            f"{layout['archive']} yourself and unpack it there."
        ) from None

    k = cfg.classes or len(train.classes)
    parts = []
    for ds in (train, test):
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        labels = torch.tensor(ds.targets, dtype=torch.int64)
        images, labels = keep_first_classes((images, labels), k)
        if cfg.image_size is not None:
            images = resize_images(images, cfg.image_size)
        parts.append((images, labels))
    return Decoded(
        train=parts[0],
        val=None,
        test=parts[1],
        class_names=list(train.classes[:k]),
        mean=layout["mean"],
        std=layout["std"],
    )


def missing_message(cfg: DataConfig) -> str:
    root = Path(cfg.root).expanduser()
    layout = LAYOUT[cfg.dataset]
    folder = root / layout["folder"]
    expected = f"{shown(folder)}/ holding {', '.join(layout['files'])} (the python version of the dataset)"
    if folder.is_dir():
        return (
            f"{layout['title']} in {shown(folder)} is incomplete or corrupted "
            "(a file is missing or its checksum is wrong); "
            f"expected {expected}. Delete that folder and run again with --set data.download=true, or unpack "
            f"{layout['archive']} there again."
        )
    return (
        f"{layout['title']} was not found in {shown(root)}: expected {expected}. "
        f"Run again with --set data.download=true to download it (about {layout['download_mb']} MB) into that folder, "
        f"unpack {layout['archive']} there yourself, "
        f"or point data.root (--data-dir) at the folder that holds {layout['folder']}/."
    )
