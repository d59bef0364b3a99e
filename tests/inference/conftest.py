"""One tiny shapes run, trained once for the inference tests, and its test images as PNG files."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.data.splits import Split, load_splits
from engine.training.trainer import run_experiment
from tests.tiny import tiny_experiment


@dataclass
class TrainedRun:
    path: Path  # the run folder (shared: a test that changes it works on a copy, `copy_run`)
    test: Split  # the run's own test split, as its evaluation read it
    images: Path  # every test image as a PNG file, test-0000.png … in the split's order


def save_png(image: torch.Tensor, path: Path) -> None:
    """uint8 (C, H, W) as a lossless PNG."""
    array = image.permute(1, 2, 0).numpy()
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(path)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> TrainedRun:
    exp = tiny_experiment()  # three epochs: a model that has learnt something, so its answers are not near-ties
    result = run_experiment(exp, runs_dir=tmp_path_factory.mktemp("runs"))
    assert result.state == "finished", result.message
    test = load_splits(exp.data).test
    assert test is not None
    images = tmp_path_factory.mktemp("images")
    for i in range(len(test)):
        save_png(test.images[i], images / f"test-{i:04d}.png")
    return TrainedRun(result.folder.path, test, images)


@pytest.fixture
def copy_run(trained_run, tmp_path) -> Path:
    """A copy of the trained run that a test may damage."""
    return Path(shutil.copytree(trained_run.path, tmp_path / trained_run.path.name))
