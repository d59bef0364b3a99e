"""`shapes`: ten classes of coloured shapes on noisy backgrounds, 32x32, generated in code so that
cnnlab works with no download. The same images every time (a fixed generation seed); the split
seed only decides which of them train and which validate."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from engine.data.datasets.decoded import Decoded, channel_stats, keep_first_classes
from engine.data.datasets.images import resize_images
from engine.experiment.config import DataConfig

CLASS_NAMES = ["circle", "square", "triangle", "cross", "ring", "diamond", "star", "bars", "frame", "crescent"]
SIZE = 32
TRAIN, TEST = 6000, 1000
GENERATION_SEED = 20240917
_CHUNK = 1000  # images rendered at once: bounds the float scratch memory


def _inside(label: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mask of shape `label` in coordinates scaled so the shape spans about [-1, 1]."""
    au, av = np.abs(u), np.abs(v)
    rho = np.hypot(u, v)
    if label == 0:  # circle
        return rho <= 1.0
    if label == 1:  # square
        return np.maximum(au, av) <= 0.8
    if label == 2:  # triangle, apex up
        return (v <= 0.75) & (au <= (v + 1.0) * 0.55)
    if label == 3:  # cross
        return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    if label == 4:  # ring
        return (rho <= 1.0) & (rho >= 0.6)
    if label == 5:  # diamond
        return au + av <= 1.05
    if label == 6:  # five-pointed star
        theta = np.arctan2(v, u)
        return rho <= 0.4 + 0.65 * np.abs(np.cos(2.5 * theta)) ** 3
    if label == 7:  # three vertical bars
        return (au <= 1.0) & (av <= 1.0) & (np.floor((u + 1.0) * 2.5) % 2 == 0)
    if label == 8:  # hollow square
        m = np.maximum(au, av)
        return (m <= 0.9) & (m >= 0.55)
    # crescent: a disc with an offset disc taken out
    return (rho <= 1.0) & (np.hypot(u - 0.45, v) > 0.75)


@lru_cache(maxsize=1)
def _generate(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES))
    radius = rng.uniform(6.5, 11.0, n).astype(np.float32)
    cx = rng.uniform(radius * 0.8, SIZE - 1 - radius * 0.8).astype(np.float32)
    cy = rng.uniform(radius * 0.8, SIZE - 1 - radius * 0.8).astype(np.float32)
    angle = rng.uniform(-0.2, 0.2, n).astype(np.float32)  # about +-11 degrees: a square never turns into a diamond
    background = rng.uniform(0.0, 1.0, (n, 3)).astype(np.float32)
    # Every channel of the shape differs from the background by 0.3-0.6: visible, yet any colour.
    step = rng.uniform(0.3, 0.6, (n, 3))
    foreground = np.where(background < 0.5, background + step, background - step).astype(np.float32)
    # Background texture: a random linear gradient plus pixel noise.
    gradient = rng.uniform(-0.15, 0.15, (n, 2)).astype(np.float32)
    noise_seed = rng.integers(2**63)

    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    grid = np.arange(SIZE, dtype=np.float32)
    noise_rng = np.random.default_rng(noise_seed)
    for lo in range(0, n, _CHUNK):
        sl = slice(lo, min(lo + _CHUNK, n))
        m = sl.stop - sl.start
        dx = (grid[None, None, :] - cx[sl, None, None]) / radius[sl, None, None]
        dy = (grid[None, :, None] - cy[sl, None, None]) / radius[sl, None, None]
        cos, sin = np.cos(angle[sl])[:, None, None], np.sin(angle[sl])[:, None, None]
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy
        mask = np.zeros((m, SIZE, SIZE), dtype=bool)
        lab = labels[sl]
        for k in range(len(CLASS_NAMES)):
            idx = np.flatnonzero(lab == k)
            if idx.size:
                mask[idx] = _inside(k, u[idx], v[idx])
        ramp = gradient[sl, 0, None, None] * (grid[None, None, :] / SIZE - 0.5) + gradient[sl, 1, None, None] * (
            grid[None, :, None] / SIZE - 0.5
        )
        bg = background[sl, None, None, :] + ramp[..., None]
        img = np.where(mask[..., None], foreground[sl, None, None, :], bg).astype(np.float32)
        img += noise_rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.07)
        img *= np.float32(255.0)
        img += np.float32(0.5)
        images[sl] = np.clip(img, 0, 255).astype(np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(labels.astype(np.int64))


@lru_cache(maxsize=1)
def _train_stats(seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return channel_stats(_generate(seed, TRAIN + TEST)[0][:TRAIN])


def decode(cfg: DataConfig) -> Decoded:
    """The generated set, its first data.classes classes, resized to data.image_size if given.
    Always copies: a split may be handed out as is, and the generated set must stay untouched."""
    images, labels = _generate(GENERATION_SEED, TRAIN + TEST)
    k = cfg.classes or len(CLASS_NAMES)
    parts = []
    for part in ((images[:TRAIN], labels[:TRAIN]), (images[TRAIN:], labels[TRAIN:])):
        x, y = keep_first_classes(part, k)
        x = resize_images(x, cfg.image_size) if cfg.image_size is not None else x
        parts.append((x.clone() if x is part[0] else x, y.clone() if y is part[1] else y))
    if (k, cfg.image_size) == (len(CLASS_NAMES), None):
        mean, std = _train_stats(GENERATION_SEED)
    else:
        mean, std = channel_stats(parts[0][0])
    return Decoded(train=parts[0], val=None, test=parts[1], class_names=CLASS_NAMES[:k], mean=mean, std=std)
