"""`tiny-imagenet`: the tiny-imagenet-200 folder as distributed (200 classes, 64x64 JPEGs).

    <root>/tiny-imagenet-200/wnids.txt                      one WordNet id per line
    <root>/tiny-imagenet-200/words.txt                      "<wnid>\\t<name>, <synonym>, ..."
    <root>/tiny-imagenet-200/train/<wnid>/images/*.JPEG     500 per class
    <root>/tiny-imagenet-200/val/images/*.JPEG              50 per class, labelled by
    <root>/tiny-imagenet-200/val/val_annotations.txt        "<file>\\t<wnid>\\t<box>"

Class order is the sorted order of the wnids, the order torchvision's ImageFolder gives the train/
folders (report 002 took its "first 10 labels" from such a loader); wnids.txt itself is not sorted.
The labelled val/ images are the test set (the official test/ has no labels), unless
data.test_split carves one from the training images instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.data.datasets.decoded import Decoded, Source
from engine.data.datasets.errors import DatasetMissing, DatasetUnusable, shown
from engine.data.datasets.images import decode_files, list_images
from engine.experiment.config import DataConfig

FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
# Report 002 normalises with ImageNet's statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def missing_message(root: Path, what: str) -> str:
    base = root / FOLDER
    return (
        f"Tiny ImageNet was not found in {shown(root)} ({what}): expected {shown(base)}/ with wnids.txt, words.txt, "
        f"train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt. Download {URL} (about 240 MB), "
        f"unzip it into {shown(root)}, or point data.root (--data-dir) at the folder that holds {FOLDER}/. "
        "It does not download by itself."
    )


def source(cfg: DataConfig) -> Source:
    root = Path(cfg.root).expanduser()
    base = root / FOLDER
    for needed in ("wnids.txt", "words.txt", "train"):
        if not (base / needed).exists():
            raise DatasetMissing(missing_message(root, f"no {needed}"))
    wnids = sorted({line.strip() for line in (base / "wnids.txt").read_text().splitlines() if line.strip()})
    k = cfg.classes or len(wnids)
    if k > len(wnids):
        raise DatasetUnusable(f"data.classes is {k} but {shown(base / 'wnids.txt')} lists only {len(wnids)} classes")
    keep = wnids[:k]
    names = _names(base / "words.txt", keep)

    train: list[tuple[str, int]] = []
    for label, wnid in enumerate(keep):
        folder = base / "train" / wnid / "images"
        files = list_images(folder)
        if not files:
            raise DatasetUnusable(f"Tiny ImageNet class {wnid} has no images in {shown(folder)}")
        train += [(p, label) for p in files]

    test: list[tuple[str, int]] | None = None
    tracked = [str(base / "wnids.txt"), str(base / "words.txt")]
    if cfg.test_split == 0:
        annotations = base / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise DatasetMissing(
                missing_message(
                    root, "no val/val_annotations.txt; or set data.test_split to carve a test set from train"
                )
            )
        test = _val_annotations(annotations, {w: i for i, w in enumerate(keep)})
        tracked.append(str(annotations))

    settings = {"classes": k, "image_size": cfg.image_size, "test": test is not None}
    files = tracked + [p for p, _ in train] + [p for p, _ in test or []]

    def decode() -> Decoded:
        parts = []
        for listing in (train, test):
            if listing is None:
                parts.append(None)
                continue
            images = decode_files([p for p, _ in listing], cfg.image_size)
            parts.append((images, torch.tensor([label for _, label in listing], dtype=torch.int64)))
        if parts[1] is not None and parts[1][0].shape[1:] != parts[0][0].shape[1:]:
            raise DatasetUnusable(
                "Tiny ImageNet's val images are not the size of its train images: set data.image_size"
            )
        return Decoded(train=parts[0], val=None, test=parts[1], class_names=names, mean=IMAGENET_MEAN, std=IMAGENET_STD)

    return Source(root, files, settings, decode)


def _names(words: Path, wnids: list[str]) -> list[str]:
    """The first name words.txt gives each wnid ("n01443537\\tgoldfish, Carassius auratus" -> goldfish)."""
    wanted = set(wnids)
    found: dict[str, str] = {}
    for line in words.read_text(encoding="utf-8", errors="replace").splitlines():
        wnid, _, text = line.partition("\t")
        if wnid in wanted:
            found[wnid] = text.split(",")[0].strip() or wnid
    return [found.get(w, w) for w in wnids]


def _val_annotations(path: Path, labels: dict[str, int]) -> list[tuple[str, int]]:
    images = str(path.parent / "images")
    out = []
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[1] in labels:
            out.append((os.path.join(images, fields[0]), labels[fields[1]]))
    missing = next((p for p, _ in out if not os.path.isfile(p)), None)
    if missing is not None:
        raise DatasetUnusable(f"{shown(path)} names {os.path.basename(missing)} but {shown(missing)} is not there")
    return sorted(out)
