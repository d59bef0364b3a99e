"""Decoding image files into one uint8 tensor, and resizing decoded tensors: the two ways an
image reaches its load-time size (data.image_size), both antialiased."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from engine.data.datasets.errors import DatasetUnusable, shown

# Pillow releases the GIL while it decodes, so a few threads use every core.
DECODE_THREADS = min(4, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """Every extension Pillow can open (.png, .jpeg, .webp, .bmp, ...), lower case."""
    return frozenset(ext.lower() for ext in Image.registered_extensions())


def list_images(folder: str | Path, recursive: bool = False) -> list[str]:
    """The image files in `folder` (and below it when recursive), sorted; hidden files and
    anything Pillow cannot open by its extension are left out. Plain strings and os.scandir:
    a big dataset lists in a fraction of what pathlib takes. Linked folders are followed once
    each (a link back to a folder above is a loop, not more images); a folder that cannot be
    read is a DatasetUnusable naming it."""
    extensions = image_extensions()
    out: list[str] = []
    pending = [str(folder)]
    seen: set[tuple[int, int]] = set()
    while pending:
        path = pending.pop()
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:  # permission denied, a link loop (ELOOP), an I/O error
            raise DatasetUnusable(f"cannot read the folder {shown(path)}: {err.strerror or err}") from None
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir()
            except OSError:  # a link whose target cannot be reached: not an image either
                continue
            if is_dir:
                if recursive:
                    pending.append(e.path)
            elif os.path.splitext(e.name)[1].lower() in extensions:
                out.append(e.path)
    out.sort()
    return out


def check_images(paths: list[str]) -> None:
    """Every file opens as an image and its data checks out (Pillow's verify: a PNG's chunks and their
    checksums, without decoding the pixels); DatasetUnusable naming the first that does not, and how
    many more. What a dry run does so that a corrupt file is found before the run, not an hour in."""

    def bad(path: str) -> str | None:
        try:
            with Image.open(path) as im:
                im.verify()
        except Exception as err:  # Pillow raises a dozen kinds for damaged bytes
            return f"{shown(path)}: {err}"
        return None

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        problems = [p for p in pool.map(bad, paths) if p]
    if problems:
        more = f" (and {len(problems) - 1} more files that do not read)" if len(problems) > 1 else ""
        raise DatasetUnusable(f"cannot read the image {problems[0]}{more}: remove or replace it")


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header alone."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetUnusable(f"cannot read the image {shown(path)}: {err}") from None


def decode_files(paths: list[str], size: int | None) -> torch.Tensor:
    """uint8 (N, 3, H, W): every file as RGB, resized to size x size when size is given; otherwise
    all files must share the first one's size (the error names the first that does not)."""
    if not paths:
        side = size or 1
        return torch.empty((0, 3, side, side), dtype=torch.uint8)
    if size is None:
        w, h = image_size(paths[0])
    else:
        w = h = size
    # Filled in (N, C, H, W) order directly: the dataset is never held twice.
    out = np.empty((len(paths), 3, h, w), dtype=np.uint8)

    def load(i: int) -> None:
        path = paths[i]
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BILINEAR)
                if im.size != (w, h):
                    raise DatasetUnusable(
                        f"{shown(path)} is {im.size[0]}x{im.size[1]} but {shown(paths[0])} is {w}x{h}: "
                        "images of different sizes need data.image_size to resize them all to one square size"
                    )
                out[i] = np.asarray(im).transpose(2, 0, 1)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise DatasetUnusable(f"cannot read the image {shown(path)}: {err}") from None

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        # list() re-raises the first failure here, in the caller's thread.
        list(pool.map(load, range(len(paths))))
    return torch.from_numpy(out)


def resize_images(images: torch.Tensor, size: int, chunk: int = 1024) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size), bilinear with antialiasing, in chunks."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, images.shape[0], chunk):
        x = images[i : i + chunk].float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i : i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out
