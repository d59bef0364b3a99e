"""`folder`: anyone's own images, laid out the way torchvision's ImageFolder reads them.

    <root>/train/<class>/**/<image>     required; one folder per class
    <root>/val/<class>/**/<image>       optional: the validation set instead of a split from train
    <root>/test/<class>/**/<image>      optional: the labelled test set

Classes are the train/ folder names in sorted order (ImageFolder's; hidden folders such as
.ipynb_checkpoints are skipped). Any image Pillow opens is read as RGB; data.image_size resizes
each one to a square, otherwise all must share one size.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.data.datasets.decoded import Decoded, Source, channel_stats
from engine.data.datasets.errors import DatasetMissing, DatasetUnusable, shown
from engine.data.datasets.images import decode_files, image_size, list_images
from engine.experiment.config import DataConfig

Listing = list[tuple[str, int]]


def missing_message(root: Path, what: str) -> str:
    return (
        f"No image folder dataset in {shown(root)} ({what}): "
        f"expected {shown(root / 'train')}/<class>/<images> with one folder per class "
        "(any format Pillow reads: PNG, JPEG, ...), and optionally val/<class>/ and test/<class>/ beside train/. "
        "Point data.root (--data-dir) at the folder that holds train/."
    )


def class_names(root: Path) -> list[str]:
    train = root / "train"
    if not train.is_dir():
        raise DatasetMissing(missing_message(root, "no train/ folder"))
    names = sorted(d.name for d in _folders(train))
    if not names:
        raise DatasetMissing(missing_message(root, "train/ has no class folders"))
    return names


def _folders(folder: Path) -> list[Path]:
    """The class folders in `folder` (hidden ones left out); DatasetUnusable when it cannot be read."""
    try:
        return [d for d in folder.iterdir() if not d.name.startswith(".") and d.is_dir()]
    except OSError as err:
        raise DatasetUnusable(f"cannot read the folder {shown(folder)}: {err.strerror or err}") from None


def kept_classes(cfg: DataConfig, root: Path) -> list[str]:
    names = class_names(root)
    if len(names) < 2:
        raise DatasetUnusable(
            f"{shown(root / 'train')} has one class folder ({names[0]}): a classifier needs two classes or more, "
            "one folder of images per class"
        )
    k = cfg.classes or len(names)
    if k > len(names):
        raise DatasetUnusable(f"data.classes is {k} but {shown(root / 'train')} has only {len(names)} class folders")
    return names[:k]


def describe(cfg: DataConfig) -> tuple[int, int, int]:
    """(classes, channels, image size) from the folder names and one image header."""
    root = Path(cfg.root).expanduser()
    keep = kept_classes(cfg, root)
    if cfg.image_size is not None:
        return len(keep), 3, cfg.image_size
    found = list_images(root / "train" / keep[0], recursive=True)
    if not found:
        raise DatasetUnusable(f"the class folder {shown(root / 'train' / keep[0])} has no images")
    w, h = image_size(found[0])
    if w != h:
        raise DatasetUnusable(
            f"{shown(found[0])} is {w}x{h}, not square: set data.image_size to resize every image to a square"
        )
    return len(keep), 3, w


def source(cfg: DataConfig) -> Source:
    root = Path(cfg.root).expanduser()
    keep = kept_classes(cfg, root)
    everything = class_names(root)
    train = _listing(root / "train", keep, everything, every_class=True)
    val = _listing(root / "val", keep, everything) if cfg.val_split > 0 and (root / "val").is_dir() else None
    test = _listing(root / "test", keep, everything) if cfg.test_split == 0 and (root / "test").is_dir() else None

    settings = {"classes": len(keep), "image_size": cfg.image_size, "val": val is not None, "test": test is not None}
    files = [p for listing in (train, val, test) for p, _ in listing or []]

    def decode() -> Decoded:
        # An optional val/ or test/ with no images of the kept classes counts as absent.
        parts = [_decode(listing, cfg.image_size) if listing else None for listing in (train, val, test)]
        size = parts[0][0].shape[1:]
        for name, part in zip(("val", "test"), parts[1:], strict=False):
            if part is not None and part[0].shape[1:] != size:
                raise DatasetUnusable(
                    f"the images in {shown(root / name)} are {part[0].shape[-1]}x{part[0].shape[-2]} but those in "
                    f"{shown(root / 'train')} are {size[-1]}x{size[-2]}: set data.image_size to resize them all"
                )
        if size[-1] != size[-2]:
            raise DatasetUnusable(
                f"the images in {shown(root / 'train')} are {size[-1]}x{size[-2]}, not square: set data.image_size"
            )
        mean, std = channel_stats(parts[0][0])
        return Decoded(train=parts[0], val=parts[1], test=parts[2], class_names=keep, mean=mean, std=std)

    return Source(root, files, settings, decode)


def _listing(split: Path, keep: list[str], everything: list[str], every_class: bool = False) -> Listing:
    """(image, label) pairs of the kept classes under split/<class>/; a class folder that train/
    does not have is an error (its label would mean nothing)."""
    unknown = sorted(d.name for d in _folders(split) if d.name not in everything)
    if unknown:
        raise DatasetUnusable(f"{shown(split)} has class folders that train/ does not: {', '.join(unknown)}")
    out: Listing = []
    for label, name in enumerate(keep):
        folder = split / name
        files = list_images(folder, recursive=True)
        if not files and every_class:
            raise DatasetUnusable(f"the class folder {shown(folder)} has no images")
        out += [(p, label) for p in files]
    return out


def _decode(listing: Listing, size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    images = decode_files([p for p, _ in listing], size)
    return images, torch.tensor([label for _, label in listing], dtype=torch.int64)
