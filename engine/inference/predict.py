"""Class probabilities of image files: each file read at the run's size and channels
(engine.inference.images), passed in batches through the run's eval-mode transform and its model
(engine.inference.trained), and its top K classes kept with their probabilities.

`predict_paths` is the one door the CLI (`cnnlab predict`) and the console's predict screen use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.inference.errors import InferenceError
from engine.inference.images import find_images, read_in_chunks
from engine.inference.trained import TrainedModel, load_trained

BATCH = 512  # images per forward pass, as the run's own evaluation passes its test set (training.predict)


@dataclass(frozen=True)
class Guess:
    name: str  # the class's name
    index: int  # its index in the model's output
    probability: float


@dataclass(frozen=True)
class Prediction:
    path: Path
    top: tuple[Guess, ...]  # most probable first

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "top": [{"class": g.name, "index": g.index, "probability": g.probability} for g in self.top],
        }


@dataclass
class Predictions:
    """What a predict gave: the images predicted in the order found, and a line per path or file that was not."""

    predictions: list[Prediction] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    run_id: str = ""
    checkpoint: str = ""  # best.pt or last.pt
    epoch: int | None = None
    device: str = ""


def top_k(probs: torch.Tensor, k: int, class_names: tuple[str, ...]) -> list[tuple[Guess, ...]]:
    """Per row of probabilities (N, classes), its k most probable classes, most probable first
    (ties: the lower index first, as argmax takes)."""
    k = max(1, min(k, probs.shape[1]))
    # A stable descending sort keeps equal probabilities in index order; topk does not promise to.
    order = torch.sort(probs, dim=1, descending=True, stable=True).indices[:, :k]
    rows = []
    for p, idx in zip(probs.tolist(), order.tolist(), strict=True):
        rows.append(tuple(Guess(_name(class_names, i), i, float(p[i])) for i in idx))
    return rows


def _name(class_names: tuple[str, ...], i: int) -> str:
    return class_names[i] if 0 <= i < len(class_names) else str(i)


def probabilities(trained: TrainedModel, images: torch.Tensor) -> torch.Tensor:
    """Softmax of the model's logits over uint8 images (N, C, H, W), BATCH images a pass; on the CPU."""
    parts = [trained.logits(images[i : i + BATCH]).softmax(1) for i in range(0, len(images), BATCH)]
    return torch.cat(parts) if parts else torch.empty((0, len(trained.prep.class_names)))


def predict_files(trained: TrainedModel, paths: list[str | Path], top: int = 3) -> Predictions:
    """Top-`top` classes of every image in `paths` (files, and folders read recursively)."""
    found = find_images(paths)
    out = Predictions(
        problems=list(found.problems),
        run_id=trained.folder.id,
        checkpoint=trained.checkpoint.name,
        epoch=trained.epoch,
        device=str(trained.rt.device),
    )
    for files, images, problems in read_in_chunks(found.files, trained.prep, BATCH):
        out.problems += problems
        if not files:
            continue
        for path, guesses in zip(
            files, top_k(probabilities(trained, images), top, trained.prep.class_names), strict=True
        ):
            out.predictions.append(Prediction(path, guesses))
    return out


def predict_paths(run_dir: Path, paths: list[str | Path], *, which: str = "best", top: int = 3) -> Predictions:
    """The run's model (checkpoints/<which>.pt) on the images in `paths`; InferenceError when the run,
    its checkpoint or its preprocessing cannot be had. Files that do not read are `problems`; when
    no image at all could be read, `predictions` is empty and the caller says so."""
    if top < 1:
        raise InferenceError(f"--top {top}: give 1 or more classes per image")
    if not paths:
        raise InferenceError("no image or folder to predict on")
    return predict_files(load_trained(Path(run_dir), which), paths, top)
