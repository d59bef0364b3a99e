"""`svhn`: the Street View House Numbers in their cropped-digit form, the MATLAB files torchvision's
SVHN downloads, straight into the data folder (no sub-folder):

    <root>/train_32x32.mat      X: uint8 (32, 32, 3, 73257), y: (73257, 1), the digit 0 labelled 10
    <root>/test_32x32.mat       26,032 test images alike

Read with scipy.io.loadmat (MATLAB 5 files, as torchvision reads them too); X becomes (N, 3, 32, 32)
and the label 10 becomes 0, so labels are the digits themselves. The extra_32x32.mat set (531,131
easier images) is not used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.data.datasets import download
from engine.data.datasets.decoded import Decoded, Source, keep_first_classes
from engine.data.datasets.errors import DatasetMissing, DatasetUnusable, damaged, shown
from engine.data.datasets.images import resize_images
from engine.experiment.config import DATASETS, DataConfig

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
BY_HAND = "http://ufldl.stanford.edu/housenumbers/ (train_32x32.mat and test_32x32.mat)"
DOWNLOAD_MB = 246


def source(cfg: DataConfig) -> Source:
    root = Path(cfg.root).expanduser()
    paths = {part: root / name for part, name in FILES.items()}
    missing = [p for p in paths.values() if not p.is_file()]
    if missing and cfg.download:
        from torchvision.datasets import SVHN  # seconds to import: only to download

        def fetch() -> None:
            for part, path in paths.items():
                if not path.is_file():
                    SVHN(str(root), split=part, download=True)

        download.with_torchvision("SVHN", root, BY_HAND, fetch)
        missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        raise DatasetMissing(missing_message(root, missing[0]))
    settings = {"classes": cfg.classes, "image_size": cfg.image_size}
    return Source(root, [str(p) for p in paths.values()], settings, lambda: decode(cfg, paths))


def decode(cfg: DataConfig, paths: dict[str, Path]) -> Decoded:
    facts = DATASETS["svhn"]
    k = cfg.classes or facts["classes"]
    out = []
    for part in ("train", "test"):
        images, labels = keep_first_classes(read_mat(paths[part]), k)
        if cfg.image_size is not None:
            images = resize_images(images, cfg.image_size)
        out.append((images, labels))
    return Decoded(
        train=out[0],
        val=None,
        test=out[1],
        class_names=list(facts["class_names"][:k]),
        mean=facts["mean"],
        std=facts["std"],
    )


def read_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, 32, 32) and int64 labels 0..9 from one of SVHN's .mat files."""
    try:
        import scipy.io
    except ImportError:
        raise DatasetUnusable(
            f"reading SVHN's {shown(path)} needs scipy (MATLAB files), which is not installed: "
            "pip install 'cnnlab[svhn]' (or scipy)"
        ) from None
    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except Exception as err:  # scipy raises a handful of kinds (MatReadError, ValueError, OSError) for bad bytes
        raise damaged(path, f"it does not read as a MATLAB file: {err}", BY_HAND) from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise damaged(path, "it holds no X and y arrays", BY_HAND)
    if x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8:
        raise damaged(path, f"X is {x.dtype} {x.shape}, not uint8 (32, 32, 3, N)", BY_HAND)
    labels = y.astype(np.int64).reshape(-1)
    if len(labels) != x.shape[3]:
        raise damaged(path, f"X holds {x.shape[3]} images but y {len(labels)} labels", BY_HAND)
    if len(labels) and (labels.min() < 1 or labels.max() > 10):
        raise damaged(path, f"labels run {labels.min()}..{labels.max()}, not 1..10", BY_HAND)
    labels[labels == 10] = 0
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    return torch.from_numpy(images), torch.from_numpy(labels)


def missing_message(root: Path, missing: Path) -> str:
    return (
        f"SVHN was not found in {shown(root)} (no {missing.name}): expected {', '.join(FILES.values())} directly in "
        f"that folder, the MATLAB files of the cropped digits. Run again with --set data.download=true to download "
        f"them (about {DOWNLOAD_MB} MB) into that folder, fetch them yourself from {BY_HAND}, or point data.root "
        "(--data-dir) at the folder that holds them."
    )
