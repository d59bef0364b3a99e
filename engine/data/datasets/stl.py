"""`stl10`: the labelled part of STL-10 in its binary form, as torchvision's STL10 downloads and
unpacks it (the archive's unlabeled_X.bin, 100,000 images, is not used):

    <root>/stl10_binary/train_X.bin       5,000 images of 3 x 96 x 96 bytes, each plane column-major
    <root>/stl10_binary/train_y.bin       one byte per image, labels 1..10
    <root>/stl10_binary/test_X.bin        8,000 test images alike
    <root>/stl10_binary/test_y.bin
    <root>/stl10_binary/class_names.txt   the ten names, one a line, in label order

Read with numpy.fromfile and transposed to row-major (N, 3, 96, 96), labels shifted to 0..9: what
torchvision does, without building its Dataset. The ten folds of fold_indices.txt are not used;
the validation split is drawn from the 5,000 training images like every other set's.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from engine.data.datasets import download
from engine.data.datasets.decoded import Decoded, Source, keep_first_classes
from engine.data.datasets.errors import DatasetMissing, DatasetUnusable, damaged, shown
from engine.data.datasets.images import resize_images
from engine.experiment.config import DATASETS, DataConfig

FOLDER = "stl10_binary"
FILES = {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin")}
CLASS_NAMES_FILE = "class_names.txt"
SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE
BY_HAND = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
DOWNLOAD_MB = 2640  # the archive holds the 100,000 unlabelled images too


def needed(base: Path) -> list[Path]:
    return [base / name for names in FILES.values() for name in names] + [base / CLASS_NAMES_FILE]


def source(cfg: DataConfig) -> Source:
    root = Path(cfg.root).expanduser()
    base = root / FOLDER
    missing = [p for p in needed(base) if not p.is_file()]
    if missing and cfg.download:
        from torchvision.datasets import STL10  # seconds to import: only to download

        download.with_torchvision("STL-10", root, BY_HAND, lambda: STL10(str(root), split="test", download=True))
        missing = [p for p in needed(base) if not p.is_file()]
    if missing:
        raise DatasetMissing(missing_message(root, missing[0]))
    settings = {"classes": cfg.classes, "image_size": cfg.image_size}
    return Source(root, [str(p) for p in needed(base)], settings, lambda: decode(cfg, base))


def decode(cfg: DataConfig, base: Path) -> Decoded:
    facts = DATASETS["stl10"]
    names = read_class_names(base / CLASS_NAMES_FILE)
    k = cfg.classes or len(names)
    out = []
    for images_name, labels_name in FILES.values():
        part = read_part(base / images_name, base / labels_name, len(names))
        images, labels = keep_first_classes(part, k)
        if cfg.image_size is not None:
            images = resize_images(images, cfg.image_size)
        out.append((images, labels))
    return Decoded(train=out[0], val=None, test=out[1], class_names=names[:k], mean=facts["mean"], std=facts["std"])


def read_class_names(path: Path) -> list[str]:
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError as err:
        raise DatasetUnusable(f"cannot read {shown(path)}: {err.strerror or err}") from None
    names = [n for n in names if n]
    if len(names) != DATASETS["stl10"]["classes"]:
        raise damaged(path, f"it names {len(names)} classes, not 10", BY_HAND)
    return names


def read_part(images_path: Path, labels_path: Path, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, 96, 96) and int64 labels 0..classes-1."""
    try:
        raw = np.fromfile(images_path, dtype=np.uint8)
        labels = np.fromfile(labels_path, dtype=np.uint8).astype(np.int64)
    except OSError as err:
        raise DatasetUnusable(f"cannot read {shown(err.filename or images_path)}: {err.strerror or err}") from None
    if raw.size % IMAGE_BYTES:
        raise damaged(
            images_path,
            f"{raw.size} bytes is not a whole number of {SIDE}x{SIDE} colour images ({IMAGE_BYTES} bytes each)",
            BY_HAND,
        )
    n = raw.size // IMAGE_BYTES
    if len(labels) != n:
        raise DatasetUnusable(
            f"{shown(images_path)} holds {n} images but {shown(labels_path)} {len(labels)} labels: one of them is "
            f"cut short or from another download; fetch {BY_HAND} again"
        )
    if n and (labels.min() < 1 or labels.max() > classes):
        raise damaged(labels_path, f"labels run {labels.min()}..{labels.max()}, not 1..{classes}", BY_HAND)
    # Each plane is stored column by column: (N, C, W, H) on disk, hence the transpose.
    images = np.ascontiguousarray(raw.reshape(n, 3, SIDE, SIDE).transpose(0, 1, 3, 2))
    return torch.from_numpy(images), torch.from_numpy(labels - 1)


def missing_message(root: Path, missing: Path) -> str:
    base = root / FOLDER
    expected = (
        f"{shown(base)}/ holding train_X.bin, train_y.bin, test_X.bin, test_y.bin and {CLASS_NAMES_FILE} "
        "(the binary version, unpacked)"
    )
    if os.path.isdir(base):
        return (
            f"STL-10 in {shown(base)} is incomplete (no {missing.name}): expected {expected}. Unpack {BY_HAND} "
            f"there again, or delete that folder and run again with --set data.download=true."
        )
    return (
        f"STL-10 was not found in {shown(root)}: expected {expected}. Run again with --set data.download=true to "
        f"download it (about {DOWNLOAD_MB / 1000:.1f} GB, the unlabelled images included) into that folder, unpack "
        f"{BY_HAND} there yourself, or point data.root (--data-dir) at the folder that holds {FOLDER}/."
    )
