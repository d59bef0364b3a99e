"""Grey (one-channel) data from end to end: every built-in model takes it, the augmentation keeps it
one channel, a 28x28 set meets the fixed-size models with the message to resize, and a tiny MNIST
run trains into a run folder that reads."""

import json

import pytest
import torch
from pydantic import ValidationError

from engine.data.augment import BatchAugment
from engine.data.splits import load_splits
from engine.experiment.config import ARCHS, AugmentConfig, DataConfig, ModelConfig, validate_experiment
from engine.models import build_model
from engine.runfolder.table import read_run
from engine.training.trainer import run_experiment
from tests.dataset_files import write_mnist
from tests.tiny import tiny_experiment

GREY_MEAN, GREY_STD = (0.1307,), (0.3081,)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_built_in_model_takes_one_channel(arch):
    size = ARCHS[arch]["input"] or 28
    extra = {"backbone_channels": [[1, 8, 16]], "backbone_k": [2]} if arch == "backbone" else {}
    model = build_model(ModelConfig(arch=arch, **extra), 10, size, 1).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 1, size, size))
    assert out.shape == (2, 10)


def test_a_backbone_left_at_three_input_channels_says_so():
    from engine.experiment.errors import ConfigError

    with pytest.raises(ConfigError, match="must start with 1"):
        build_model(ModelConfig(arch="backbone"), 10, 32, 1)


def test_28x28_meets_the_fixed_size_models_with_the_resize_hint():
    base = {"data": {"dataset": "mnist"}, "model": {"arch": "simplecnn"}}
    with pytest.raises(Exception) as err:
        validate_experiment(base)
    assert "data.image_size = 32" in str(err.value) and "28x28" in str(err.value)
    assert validate_experiment({**base, "data": {"dataset": "mnist", "image_size": 32}}).input_size() == 32
    assert validate_experiment({**base, "model": {"arch": "resnet34"}}).input_size() == 28


def test_grey_given_normalisation_takes_one_figure_three_times(tmp_path):
    with pytest.raises(ValidationError, match="data.mean: mnist has one .grey. channel"):
        DataConfig(dataset="mnist", normalize="given", mean=(0.1, 0.2, 0.3), std=(0.3, 0.3, 0.3))
    write_mnist(tmp_path)
    common = dict(dataset="mnist", root=str(tmp_path), cache=False, val_split=0)
    s = load_splits(DataConfig(**common, normalize="given", mean=(0.2, 0.2, 0.2), std=(0.4, 0.4, 0.4)))
    assert (s.mean, s.std) == ((0.2,), (0.4,))
    s = load_splits(DataConfig(**common, normalize="none"))
    assert (s.mean, s.std) == ((0.0,), (1.0,))
    s = load_splits(DataConfig(**common, normalize="compute"))
    assert len(s.mean) == len(s.std) == 1


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"crop_padding": 4, "hflip": True},
        {"rotation": 15, "affine_translate": 0.1, "affine_scale": 0.1},
        {"color_jitter": 0.4},
        {"crop_padding": 2, "hflip": True, "rotation": 10, "color_jitter": 0.3},
    ],
)
def test_augmentation_keeps_grey_images_one_channel(settings):
    x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    aug = BatchAugment(AugmentConfig(**settings), GREY_MEAN, GREY_STD)
    out = aug.train(x)
    assert out.shape == (8, 1, 28, 28) and out.dtype == torch.float32 and torch.isfinite(out).all()
    expected = (x.double() / 255 - GREY_MEAN[0]) / GREY_STD[0]
    assert torch.allclose(aug.eval(x).double(), expected, atol=1e-5)


def test_three_equal_figures_fit_one_channel_and_different_ones_do_not():
    x = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert BatchAugment(AugmentConfig(), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).eval(x).shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match="1 channels but the normalisation 3 figures"):
        BatchAugment(AugmentConfig(), (0.1, 0.2, 0.3), (1.0, 1.0, 1.0)).eval(x)


def grey_run(tmp_path, **overrides):
    write_mnist(tmp_path / "data", folder=overrides.pop("folder", "MNIST"), n_train=60, n_test=20)
    exp = tiny_experiment(
        **{
            "data.root": str(tmp_path / "data"),
            "data.train_subset": 60,
            "data.val_split": 0.25,
            "train.epochs": 1,
            "train.batch_size": 16,
            **overrides,
        }
    )
    return run_experiment(exp, runs_dir=tmp_path / "runs", listener=lambda e: None)


def test_a_grey_set_trains_one_epoch_into_a_run_folder_that_reads(tmp_path):
    result = grey_run(tmp_path, **{"data.dataset": "mnist", "data.image_size": 32})
    assert result.state == "finished", result.message
    info = read_run(result.folder.path)
    assert info is not None and info.state == "finished"
    rows = result.folder.metrics()
    assert [r["epoch"] for r in rows] == [1]
    summary = json.loads((result.folder.path / "summary.json").read_text())
    assert len(summary["per_class_acc"]) == 10 and sum(map(sum, summary["confusion"])) == 20
    assert result.folder.read_config_doc()["data"]["dataset"] == "mnist"


@pytest.mark.slow
def test_fashion_mnist_at_its_native_28_with_every_augmentation_on_a_resnet(tmp_path):
    result = grey_run(
        tmp_path,
        folder="FashionMNIST",
        **{
            "data.dataset": "fashion-mnist",
            "model.arch": "resnet34",
            "augment.crop_padding": 2,
            "augment.hflip": True,
            "augment.rotation": 10,
            "augment.color_jitter": 0.2,
            "augment.mixup_alpha": 0.2,
        },
    )
    assert result.state == "finished", result.message
    assert read_run(result.folder.path).state == "finished"
