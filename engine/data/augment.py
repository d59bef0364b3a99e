"""Augmentation of whole batches on the training device, a different random draw per image.

The training images stay uint8 on the device; each batch is cropped and flipped with one gather
(still uint8), turned into float32 once, optionally rotated / shifted / zoomed with one
affine_grid + grid_sample, colour-jittered, and normalised. Random numbers come from torch's
global generator on the batch's device, so the trainer's seed makes a run reproducible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.experiment.config import AugmentConfig

# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale uses.
_LUMA = (0.299, 0.587, 0.114)


class BatchAugment:
    def __init__(self, cfg: AugmentConfig, mean, std):
        self.cfg = cfg
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._consts: dict[torch.device, tuple[torch.Tensor, ...]] = {}
        self.geometric = cfg.rotation > 0 or cfg.affine_translate > 0 or cfg.affine_scale > 0

    def _on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """(uint8 scale, float scale, shift, luma) shaped for broadcasting, made once per device.
        x_norm = x_uint8 * (1 / (255 std)) - mean / std, or x_unit * (1 / std) - mean / std."""
        if device not in self._consts:
            mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
            luma = torch.tensor(_LUMA, dtype=torch.float32, device=device).view(1, 3, 1, 1)
            self._consts[device] = (1.0 / (255.0 * std), 1.0 / std, -mean / std, luma)
        return self._consts[device]

    def _check(self, x: torch.Tensor) -> None:
        # Three figures against one grey channel would broadcast the batch to three channels, silently:
        # equal figures (a flat mean, 0 and 1 for none) fit any count; different ones only their own.
        c = x.shape[1]
        if c == len(self.mean) and c == len(self.std):
            return
        if len(set(self.mean)) > 1 or len(set(self.std)) > 1:
            raise ValueError(f"the images have {c} channels but the normalisation {len(self.mean)} figures")
        self.mean, self.std = self.mean[:1] * c, self.std[:1] * c
        self._consts.clear()

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> float32, normalised; no augmentation."""
        self._check(x)
        scale255, _, shift, _ = self._on(x.device)
        return torch.addcmul(shift, x.to(torch.float32), scale255)

    def train(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> float32, augmented and normalised."""
        self._check(x)
        c = self.cfg
        if c.crop_padding > 0 or c.hflip:
            x = crop_flip(x, c.crop_padding, c.hflip)
        if not self.geometric and c.color_jitter == 0:
            return self.eval(x)
        _, inv_std, shift, luma = self._on(x.device)
        x = x.to(torch.float32).div_(255.0)
        if self.geometric:
            x = random_affine(x, c.rotation, c.affine_translate, c.affine_scale)
        if c.color_jitter > 0:
            x = color_jitter(x, c.color_jitter, luma)
        return torch.addcmul(shift, x, inv_std)


def crop_flip(x: torch.Tensor, padding: int, hflip: bool) -> torch.Tensor:
    """Zero-pad by `padding`, crop back to (H, W) at a random offset per image, and mirror half
    of the images: one gather over the flattened padded images, no loop over images."""
    b, c, h, w = x.shape
    x = x.contiguous()
    if padding > 0:
        x = F.pad(x, (padding, padding, padding, padding))
    hp, wp = h + 2 * padding, w + 2 * padding
    dev = x.device
    rows = torch.arange(h, device=dev).expand(b, h)
    cols = torch.arange(w, device=dev).expand(b, w)
    if padding > 0:
        rows = rows + torch.randint(0, 2 * padding + 1, (b, 1), device=dev)
        cols = cols + torch.randint(0, 2 * padding + 1, (b, 1), device=dev)
    if hflip:
        flip = torch.rand(b, 1, device=dev) < 0.5
        cols = torch.where(flip, cols.flip(1), cols)
    index = (rows.unsqueeze(2) * wp + cols.unsqueeze(1)).view(b, 1, h * w).expand(b, c, h * w)
    return torch.gather(x.view(b, c, hp * wp), 2, index).view(b, c, h, w)


def random_affine(x: torch.Tensor, degrees: float, translate: float, scale: float) -> torch.Tensor:
    """Rotate by up to +-degrees, shift by up to +-translate of the size, zoom by up to +-scale,
    each drawn per image; areas from outside the image are black. float (B, C, H, W) in 0..1."""
    b, dev = x.shape[0], x.device

    def uniform(shape, bound: float) -> torch.Tensor:
        if bound == 0:
            return torch.zeros(shape, device=dev)
        return (torch.rand(shape, device=dev) * 2 - 1) * bound

    angle = uniform((b,), math.radians(degrees))
    zoom = 1 + uniform((b,), scale)
    # affine_grid maps output to input coordinates in [-1, 1]: the inverse of the wanted motion.
    shift = uniform((b, 2), 2 * translate)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def color_jitter(x: torch.Tensor, amount: float, luma: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast and saturation each scaled by a factor in [1 - amount, 1 + amount]
    per image, as torchvision's ColorJitter does them. float (B, C, H, W) in 0..1."""
    b, c, dev = x.shape[0], x.shape[1], x.device

    def factor() -> torch.Tensor:
        return 1 + (torch.rand(b, 1, 1, 1, device=dev) * 2 - 1) * amount

    def gray(img: torch.Tensor) -> torch.Tensor:
        return (img * luma).sum(1, keepdim=True) if c == 3 else img.mean(1, keepdim=True)

    x = (x * factor()).clamp_(0, 1)
    m = gray(x).mean(dim=(2, 3), keepdim=True)
    x = torch.lerp(m, x, factor()).clamp_(0, 1)
    if c == 3:
        x = torch.lerp(gray(x), x, factor()).clamp_(0, 1)
    return x


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix the batch with a shuffled copy of itself by lam ~ Beta(alpha, alpha) (one lam per batch,
    as in Zhang et al.). Returns the mixed images and soft targets (B, num_classes) whose rows sum
    to 1, which F.cross_entropy takes as class probabilities; alpha 0 gives one-hot targets."""
    target = F.one_hot(y, num_classes).to(torch.float32)
    if alpha <= 0:
        return x, target
    a = torch.tensor(float(alpha))
    lam = float(torch.distributions.Beta(a, a).sample())
    perm = torch.randperm(len(y), device=y.device)
    mixed = torch.lerp(x[perm], x, lam)
    return mixed, torch.lerp(target[perm], target, lam)
