"""Batch augmentation: shapes and dtypes, a different draw per image, exact eval normalisation,
reproducibility under the seed, channels_last input, and mixup's soft targets."""

import pytest
import torch
import torch.nn.functional as F

from engine.data.augment import BatchAugment, crop_flip, mixup
from engine.experiment.config import AugmentConfig

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def batch(n=16, size=8, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def normalised(x: torch.Tensor) -> torch.Tensor:
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (x.double() / 255 - m) / s


def test_eval_normalisation_is_exact():
    x = batch()
    out = BatchAugment(AugmentConfig(crop_padding=4, hflip=True, color_jitter=0.5), MEAN, STD).eval(x)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.allclose(out.double(), normalised(x), atol=1e-5)


def test_no_augmentation_trains_on_the_eval_images():
    x = batch()
    aug = BatchAugment(AugmentConfig(), MEAN, STD)
    assert torch.equal(aug.train(x), aug.eval(x))


@pytest.mark.parametrize(
    "settings",
    [
        dict(crop_padding=4, hflip=True),
        dict(rotation=30),
        dict(affine_translate=0.2, affine_scale=0.2),
        dict(color_jitter=0.4),
        dict(crop_padding=2, hflip=True, rotation=10, affine_translate=0.1, affine_scale=0.1, color_jitter=0.2),
    ],
)
def test_every_augmentation_draws_per_image_and_keeps_shape_and_dtype(settings):
    # One image repeated: any difference between outputs comes from per-image draws.
    x = batch(1, size=16).expand(32, 3, 16, 16).contiguous()
    torch.manual_seed(0)
    out = BatchAugment(AugmentConfig(**settings), MEAN, STD).train(x)
    assert out.dtype == torch.float32 and out.shape == x.shape and torch.isfinite(out).all()
    distinct = torch.unique(out.flatten(1), dim=0)
    assert len(distinct) > 8
    # Still on the normalised scale of 0..255 pixels.
    lo, hi = normalised(torch.tensor([[0], [255]], dtype=torch.uint8).expand(2, 3).reshape(2, 3, 1, 1)).float()
    assert (out >= lo - 1e-4).all() and (out <= hi + 1e-4).all()


def test_crop_flip_is_a_shifted_window_of_the_zero_padded_image_or_its_mirror():
    x = batch(64, size=6)
    p = 2
    torch.manual_seed(1)
    out = crop_flip(x, p, hflip=True)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    padded = F.pad(x, (p, p, p, p))
    offsets, flips = set(), set()
    for i in range(len(x)):
        matches = [
            (dy, dx, f)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            for f in (False, True)
            if torch.equal(out[i], (padded[i].flip(2) if f else padded[i])[:, dy : dy + 6, dx : dx + 6])
        ]
        assert matches, f"image {i} is not a crop of its padded original"
        offsets.add(matches[0][:2])
        flips.add(matches[0][2])
    assert len(offsets) > 10 and flips == {False, True}


def test_flip_alone_mirrors_about_half_the_images():
    x = batch(200, size=5)
    torch.manual_seed(2)
    out = crop_flip(x, 0, hflip=True)
    same = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    mirrored = [torch.equal(o, i.flip(2)) for o, i in zip(out, x, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 60 < sum(mirrored) < 140


def test_the_seed_makes_augmentation_reproducible():
    x = batch(32, size=16)
    aug = BatchAugment(AugmentConfig(crop_padding=4, hflip=True, rotation=15, color_jitter=0.3), MEAN, STD)
    torch.manual_seed(7)
    a = aug.train(x)
    torch.manual_seed(7)
    b = aug.train(x)
    c = aug.train(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_channels_last_input_gives_the_same_result():
    x = batch(16, size=16)
    aug = BatchAugment(AugmentConfig(crop_padding=3, hflip=True, rotation=10, color_jitter=0.2), MEAN, STD)
    torch.manual_seed(3)
    a = aug.train(x)
    torch.manual_seed(3)
    b = aug.train(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(aug.eval(x), aug.eval(x.contiguous(memory_format=torch.channels_last)))


def test_rotation_turns_the_picture_about_its_centre():
    # A bright dot right of the centre lands left of it after a half turn.
    x = torch.zeros(64, 3, 15, 15, dtype=torch.uint8)
    x[:, :, 7, 12] = 255
    torch.manual_seed(0)
    aug = BatchAugment(AugmentConfig(rotation=180), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    out = aug.train(x)[:, 0]
    cols = (out.sum(1) * torch.arange(15)).sum(1) / out.sum(dim=(1, 2)).clamp_min(1e-6)
    assert (cols < 6).any() and (cols > 8).any()


def test_mixup_targets_are_soft_and_sum_to_one():
    x = torch.randn(16, 3, 4, 4)
    y = torch.arange(16)  # one class per image, so a target row says which images were mixed
    torch.manual_seed(0)
    mixed, target = mixup(x, y, 0.4, 16)
    assert target.shape == (16, 16) and target.dtype == torch.float32
    assert torch.allclose(target.sum(1), torch.ones(16))
    assert (target.max(1).values < 1).any()
    # Each image is the same mix of images as its target is of their labels.
    assert torch.allclose(mixed.flatten(1), target @ x.flatten(1), atol=1e-5)


def test_mixup_alpha_zero_is_one_hot_and_leaves_images_alone():
    x = torch.randn(8, 3, 4, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    mixed, target = mixup(x, y, 0.0, 4)
    assert mixed is x and torch.equal(target, F.one_hot(y, 4).float())


def test_cross_entropy_takes_mixup_targets_with_label_smoothing():
    logits = torch.randn(8, 5)
    y = torch.arange(8) % 5
    _, target = mixup(torch.randn(8, 3, 2, 2), y, 1.0, 5)
    loss = F.cross_entropy(logits, target, label_smoothing=0.1)
    assert loss.ndim == 0 and torch.isfinite(loss)
