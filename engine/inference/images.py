"""Image files of the user's own, read the way the run's data was: converted to its channel count
(grey to RGB, or RGB to grey), resized to its square size with Pillow's bilinear filter (as a folder
dataset's files are, engine.data.datasets.images.decode_files) and held as uint8 (C, H, W), so that
the run's eval-mode transform (engine.data.augment.BatchAugment.eval) turns them into what its
model takes.

Folders are read recursively, their files sorted; a path that cannot be read is one line in
`problems`, never the end of the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from engine.data.datasets.errors import DatasetUnusable
from engine.data.datasets.images import DECODE_THREADS, list_images
from engine.inference.preprocessing import Preprocessing


@dataclass
class Found:
    """The image files named by the user's paths, in order, and a line per path that gave none."""

    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def find_images(paths: Iterable[str | Path]) -> Found:
    """Files as given (any extension: the user named them), folders as every image file below them, sorted."""
    found = Found()
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            try:
                files = list_images(path, recursive=True)
            except DatasetUnusable as err:  # a folder below that cannot be listed
                found.problems.append(str(err))
                continue
            if not files:
                found.problems.append(f"{path}: no image files in this folder (or below it)")
            found.files += [Path(f) for f in files]
        elif path.exists():
            found.files.append(path)
        else:
            found.problems.append(f"{path}: no such file or folder")
    return found


def read_image(path: Path, prep: Preprocessing) -> torch.Tensor:
    """uint8 (C, H, W) at the run's size and channels; OSError or ValueError when it does not read."""
    with Image.open(path) as im:
        im = im.convert("L" if prep.channels == 1 else "RGB")
        if im.size != (prep.size, prep.size):
            im = im.resize((prep.size, prep.size), Image.Resampling.BILINEAR)
        pixels = np.array(im, dtype=np.uint8)  # a copy torch may own (Pillow's buffer is read-only)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(pixels))


def read_in_chunks(
    files: list[Path], prep: Preprocessing, chunk: int
) -> Iterator[tuple[list[Path], torch.Tensor, list[str]]]:
    """(the files read, their uint8 (N, C, H, W), a line per file that did not read), `chunk` files at
    a time, so a big folder is never held whole."""

    def one(path: Path) -> torch.Tensor | str:
        try:
            return read_image(path, prep)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
            return f"{path}: cannot read this image ({_reason(err)})"

    with ThreadPoolExecutor(DECODE_THREADS) as pool:  # Pillow releases the GIL while it decodes
        for lo in range(0, len(files), chunk):
            part = files[lo : lo + chunk]
            results = list(pool.map(one, part))
            kept = [(p, r) for p, r in zip(part, results, strict=True) if not isinstance(r, str)]
            problems = [r for r in results if isinstance(r, str)]
            empty = torch.empty((0, prep.channels, prep.size, prep.size), dtype=torch.uint8)
            images = torch.stack([r for _, r in kept]) if kept else empty
            yield [p for p, _ in kept], images, problems


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror
    return text[:200]
