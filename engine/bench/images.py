"""The bench's images: a folder dataset of the preset's shape written to a temporary directory (so
the engine's real path reads files, decodes them and caches them), and the decoded cache's speed-up."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from engine.bench import BenchError

CACHE_MIN_IMAGES = 2000  # enough files for the decoded cache's speed-up to mean something


def write_folder_dataset(root: Path, images: int, classes: int, size: int) -> None:
    """`root/train/<class>/<n>.png`: the generated shapes images (resized to `size`, repeated as
    needed), labelled round-robin over `classes` folders."""
    import numpy as np
    from PIL import Image

    from engine.data.datasets import shapes
    from engine.data.datasets.images import resize_images
    from engine.experiment.config import DataConfig

    source = shapes.decode(DataConfig(dataset="shapes", val_split=0)).train[0]
    source = resize_images(source, size).permute(0, 2, 3, 1).contiguous().numpy()
    folders = [root / "train" / f"c{k:03d}" for k in range(classes)]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        Image.fromarray(np.ascontiguousarray(source[i % len(source)])).save(folders[i % classes] / f"{i:06d}.png")


def time_decoded_cache(root: Path) -> dict[str, Any]:
    """First load of a folder dataset (decode every file, write the cache) against the second (read
    the cache). The files were just written, so both read from the OS's page cache."""
    import torch

    from engine.data.splits import load_splits
    from engine.experiment.config import DataConfig

    cfg = DataConfig(dataset="folder", root=str(root), val_split=0)
    t0 = time.perf_counter()
    first = load_splits(cfg)
    t1 = time.perf_counter()
    second = load_splits(cfg)
    t2 = time.perf_counter()
    if not torch.equal(first.train.images, second.train.images):
        raise BenchError("the decoded cache gave back other images than the files hold")
    images = first.train.images
    return {
        "images": int(images.shape[0]),
        "first_s": round(t1 - t0, 4),
        "second_s": round(t2 - t1, 4),
        "speedup": round((t1 - t0) / max(t2 - t1, 1e-9), 1),
        "held_dtype": str(images.dtype).replace("torch.", ""),
        "held_bytes": images.element_size() * images.numel(),
    }


def count_images(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root / "train"))
