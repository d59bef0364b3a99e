"""`mnist`, `fashion-mnist` and `kmnist`: the idx files as torchvision's MNIST, FashionMNIST and
KMNIST download them, each one grey channel of 28x28, ten classes:

    <root>/MNIST/raw/train-images-idx3-ubyte     60,000 training images (or the same name + .gz)
    <root>/MNIST/raw/train-labels-idx1-ubyte     their labels, 0..9
    <root>/MNIST/raw/t10k-images-idx3-ubyte      10,000 test images
    <root>/MNIST/raw/t10k-labels-idx1-ubyte
    (FashionMNIST/raw/ and KMNIST/raw/ alike)

An idx file is a big-endian header (two zero bytes, a type byte, 0x08 for unsigned bytes, the number
of dimensions, then each dimension as a 32-bit integer) and the raw bytes, row-major: it is read
with one numpy frombuffer and held to its header, so a truncated file is named, never misshaped.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from engine.data.datasets import download
from engine.data.datasets.decoded import Decoded, Source, channel_stats, keep_first_classes
from engine.data.datasets.errors import DatasetMissing, DatasetUnusable, damaged, shown
from engine.data.datasets.images import resize_images
from engine.experiment.config import DATASETS, DataConfig

LAYOUT = {
    "mnist": {
        "title": "MNIST",
        "folder": "MNIST",  # torchvision's class name: its download goes to <root>/<class>/raw/
        "by_hand": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "download_mb": 12,
    },
    "fashion-mnist": {
        "title": "Fashion-MNIST",
        "folder": "FashionMNIST",
        "by_hand": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "download_mb": 31,
    },
    "kmnist": {
        "title": "Kuzushiji-MNIST",
        "folder": "KMNIST",
        "by_hand": "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        "download_mb": 21,
    },
}
# (images, labels) of each part, as named in every one of the three sets.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
UNSIGNED_BYTE = 0x08


def raw_folder(cfg: DataConfig) -> Path:
    return Path(cfg.root).expanduser() / LAYOUT[cfg.dataset]["folder"] / "raw"


def find(raw: Path) -> tuple[dict[str, str], str | None]:
    """Each file's path (the plain one if both are there: torchvision keeps both), and the first missing name."""
    found: dict[str, str] = {}
    for names in FILES.values():
        for name in names:
            for candidate in (raw / name, raw / f"{name}.gz"):
                if candidate.is_file():
                    found[name] = str(candidate)
                    break
            else:
                return found, name
    return found, None


def source(cfg: DataConfig) -> Source:
    root = Path(cfg.root).expanduser()
    layout = LAYOUT[cfg.dataset]
    raw = raw_folder(cfg)
    found, missing = find(raw)
    if missing is not None and cfg.download:
        from torchvision import datasets  # seconds to import: only to download

        cls = getattr(datasets, layout["folder"])
        download.with_torchvision(
            layout["title"], root, layout["by_hand"], lambda: cls(str(root), train=True, download=True)
        )
        found, missing = find(raw)
    if missing is not None:
        raise DatasetMissing(missing_message(cfg, missing))
    settings = {"classes": cfg.classes, "image_size": cfg.image_size}
    files = [found[name] for names in FILES.values() for name in names]
    return Source(root, files, settings, lambda: decode(cfg, found))


def decode(cfg: DataConfig, found: dict[str, str]) -> Decoded:
    facts = DATASETS[cfg.dataset]
    fetch_again = LAYOUT[cfg.dataset]["by_hand"]
    parts = {}
    for part, (images_name, labels_name) in FILES.items():
        images = read_idx(found[images_name], 3, fetch_again)
        labels = read_idx(found[labels_name], 1, fetch_again)
        if len(images) != len(labels):
            raise DatasetUnusable(
                f"{shown(found[images_name])} holds {len(images)} images but {shown(found[labels_name])} "
                f"{len(labels)} labels: one of them is from another download; fetch both again from {fetch_again}"
            )
        if len(labels) and int(labels.max()) >= facts["classes"]:
            raise damaged(found[labels_name], f"a label of {int(labels.max())}, above 9", fetch_again)
        parts[part] = (torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))

    if facts["mean"] is not None:
        mean, std = facts["mean"], facts["std"]
    else:  # no published figures: measured over every training image, once (the cache keeps them)
        mean, std = channel_stats(parts["train"][0])
    k = cfg.classes or facts["classes"]
    out = []
    for part in ("train", "test"):
        images, labels = keep_first_classes(parts[part], k)
        if cfg.image_size is not None:
            images = resize_images(images, cfg.image_size)
        out.append((images, labels))
    return Decoded(train=out[0], val=None, test=out[1], class_names=list(facts["class_names"][:k]), mean=mean, std=std)


def read_idx(path: str, ndim: int, fetch_again: str) -> np.ndarray:
    """The array an idx file of unsigned bytes holds, of `ndim` dimensions (plain or gzipped)."""
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise damaged(path, f"not a whole gzip file: {err}", fetch_again) from None
    except OSError as err:
        raise DatasetUnusable(f"cannot read {shown(path)}: {err.strerror or err}") from None

    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != UNSIGNED_BYTE:
        raise damaged(path, "it does not start as an idx file of unsigned bytes", fetch_again)
    if data[3] != ndim:
        raise damaged(path, f"its header gives {data[3]} dimensions, not {ndim}", fetch_again)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise damaged(path, "its header is cut short", fetch_again)
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        shape = " x ".join(map(str, dims))
        raise damaged(
            path, f"its header promises {shape} = {expected} bytes but it holds {len(data) - header}", fetch_again
        )
    # A copy: frombuffer over bytes is read-only, and torch wants to own writable memory.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def missing_message(cfg: DataConfig, missing: str) -> str:
    root = Path(cfg.root).expanduser()
    layout = LAYOUT[cfg.dataset]
    raw = raw_folder(cfg)
    names = [name for names in FILES.values() for name in names]
    expected = f"{shown(raw)}/ holding {', '.join(names)} (each plain or .gz, as torchvision downloads them)"
    if os.path.isdir(raw):
        return (
            f"{layout['title']} in {shown(raw)} is incomplete (no {missing} or {missing}.gz): expected {expected}. "
            f"Run again with --set data.download=true to download the missing files, or fetch them from "
            f"{layout['by_hand']} into that folder."
        )
    return (
        f"{layout['title']} was not found in {shown(root)}: expected {expected}. Run again with "
        f"--set data.download=true to download it (about {layout['download_mb']} MB) into that folder, fetch the "
        f"files from {layout['by_hand']} into {shown(raw)}/ yourself, or point data.root (--data-dir) at the "
        f"folder that holds {layout['folder']}/."
    )
