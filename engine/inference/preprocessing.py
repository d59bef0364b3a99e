"""What a run's images went through before its model saw them: their square size, their channel
count, the per-channel mean and std they were normalised with, and the names of the classes the
model's outputs stand for.

The facts come from the run's own data loading (engine.data.splits.load_splits on the run's
config), so a prediction or an export sees exactly what the run's test set saw. When the dataset is
not on this machine, a run whose normalisation does not depend on its images (a dataset's published
constants, or data.normalize = given / none) is still described, from what the trainer recorded
(preprocessing.json) or else from its config and the class names its summary.json recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from engine.data.splits import DatasetMissing, DatasetUnusable, Split, load_splits
from engine.experiment.config import DATASETS, Experiment
from engine.inference.errors import InferenceError


@dataclass(frozen=True)
class Preprocessing:
    size: int  # images are size x size pixels
    channels: int  # 3: RGB, 1: grey
    mean: tuple[float, ...]  # on a 0..1 scale, per channel
    std: tuple[float, ...]
    class_names: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {**d, "mean": list(self.mean), "std": list(self.std), "class_names": list(self.class_names)}


def of_run(
    exp: Experiment, summary: dict[str, Any], recorded: dict[str, Any] | None = None
) -> tuple[Preprocessing, Split | None]:
    """The run's preprocessing, and its test split when its dataset is here (None otherwise). Without
    its dataset, what the trainer recorded in the run folder (`recorded`, preprocessing.json) serves."""
    try:
        splits = load_splits(exp.data)
    except DatasetUnusable as err:
        raise InferenceError(f"the run's dataset cannot be read, so neither can its preprocessing: {err}") from None
    except DatasetMissing as err:
        if recorded is not None:
            return _from_record(recorded), None
        return _recorded(exp, summary, str(err)), None
    images = splits.train.images
    prep = Preprocessing(
        size=int(images.shape[-1]),
        channels=int(images.shape[1]),
        mean=tuple(splits.mean)[: images.shape[1]],
        std=tuple(splits.std)[: images.shape[1]],
        class_names=tuple(splits.class_names),
    )
    return prep, splits.test


def _from_record(doc: dict[str, Any]) -> Preprocessing:
    return Preprocessing(
        size=doc["size"],
        channels=doc["channels"],
        mean=tuple(doc["mean"]),
        std=tuple(doc["std"]),
        class_names=tuple(doc["class_names"]),
    )


def _recorded(exp: Experiment, summary: dict[str, Any], missing: str) -> Preprocessing:
    """The preprocessing from the config and summary.json alone, when the images are not needed for it."""
    cfg = exp.data
    names = summary.get("class_names") or DATASETS.get(cfg.dataset, {}).get("class_names")
    mean_std = _fixed_normalisation(exp)
    if cfg.dataset == "folder" or mean_std is None or not names:
        why = (
            "its summary.json names no classes"
            if not names and mean_std is not None and cfg.dataset != "folder"
            else f"its normalisation (data.normalize = {cfg.normalize}) is computed from its images"
        )
        raise InferenceError(f"the run's preprocessing cannot be known without its dataset ({why}): {missing}")
    info = DATASETS[cfg.dataset]
    channels = int(info["channels"])
    mean, std = mean_std
    return Preprocessing(
        size=int(cfg.image_size or info["size"]),
        channels=channels,
        mean=tuple(float(m) for m in mean)[:channels],
        std=tuple(float(s) for s in std)[:channels],
        class_names=tuple(str(n) for n in names),
    )


def _fixed_normalisation(exp: Experiment) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The mean and std load_splits would use, where they do not depend on the images; None where they do."""
    cfg = exp.data
    if cfg.normalize == "none":
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if cfg.normalize == "given" and cfg.mean is not None and cfg.std is not None:
        return tuple(cfg.mean), tuple(cfg.std)
    known = DATASETS.get(cfg.dataset, {})
    if cfg.normalize == "dataset" and known.get("mean") and known.get("std"):
        return tuple(known["mean"]), tuple(known["std"])
    if cfg.normalize == "dataset" and cfg.dataset in ("cifar10", "cifar100"):
        from engine.data.datasets.cifar import LAYOUT

        return LAYOUT[cfg.dataset]["mean"], LAYOUT[cfg.dataset]["std"]
    if cfg.normalize == "dataset" and cfg.dataset == "tiny-imagenet":
        from engine.data.datasets.tiny_imagenet import IMAGENET_MEAN, IMAGENET_STD

        return IMAGENET_MEAN, IMAGENET_STD
    return None
