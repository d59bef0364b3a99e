"""What a model gets most wrong: the test images with the highest loss (fastai's `top_losses`), each
with its true class, the predicted one and the probability the model gave it.

The test pass here is the one the trainer scores the test set with (engine.training.predict.score_test): one
pass gives the mean loss, the predictions and every image's own loss, so nothing is predicted twice.
The ranking is plain numbers and goes into summary.json with a thumbnail per image, as the examples do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.compute.device import Runtime
from engine.data.augment import BatchAugment
from engine.evaluation.evaluate import thumbnail_png

EVAL_BATCH = 512
TOP = 16  # images kept in summary.json


@dataclass
class ImageLosses:
    """Per test image, on the CPU: its loss, the predicted class, that class's probability and the
    true class's."""

    losses: torch.Tensor
    preds: torch.Tensor
    probs: torch.Tensor
    true_probs: torch.Tensor

    @property
    def mean_loss(self) -> float:
        return float(self.losses.mean()) if len(self.losses) else 0.0


@torch.no_grad()
def image_losses(
    model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], augment: BatchAugment, rt: Runtime
) -> ImageLosses:
    images, labels = data
    was_training = model.training
    model.eval()
    parts: list[tuple[torch.Tensor, ...]] = []
    for i in range(0, len(labels), EVAL_BATCH):
        x = augment.eval(images[i : i + EVAL_BATCH]).contiguous(memory_format=rt.memory_format)
        y = labels[i : i + EVAL_BATCH]
        with rt.autocast():
            logits = model(x).float()
        loss = F.cross_entropy(logits, y, reduction="none")
        p = logits.softmax(1)
        prob, pred = p.max(1)
        parts.append((loss, pred, prob, p.gather(1, y[:, None]).squeeze(1)))
    model.train(was_training)
    if not parts:
        empty = torch.empty(0)
        return ImageLosses(empty, empty.long(), empty, empty)
    cols = [torch.cat(c).cpu() for c in zip(*parts, strict=True)]
    return ImageLosses(*cols)


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def top_losses(
    passed: ImageLosses, labels: Any, images: Any, class_names: list[str], n: int = TOP
) -> list[dict[str, Any]]:
    """The n test images with the highest loss, highest first: {index, true, pred, true_index,
    pred_index, loss, prob (of the predicted class), true_prob, png, width, height}."""
    losses = _np(passed.losses).astype(np.float64)
    order = np.argsort(-losses, kind="stable")[:n]
    y, p = _np(labels).ravel(), _np(passed.preds).ravel()
    prob, true_prob = _np(passed.probs), _np(passed.true_probs)

    def name(i: int) -> str:
        return class_names[i] if 0 <= i < len(class_names) else str(i)

    out = []
    for i in order:
        i = int(i)
        png, w, h = thumbnail_png(images[i])
        out.append(
            {
                "index": i,
                "true": name(int(y[i])),
                "pred": name(int(p[i])),
                "true_index": int(y[i]),
                "pred_index": int(p[i]),
                "correct": int(y[i]) == int(p[i]),
                "loss": round(float(losses[i]), 4),
                "prob": round(float(prob[i]), 6),
                "true_prob": round(float(true_prob[i]), 6),
                "png": png,
                "width": w,
                "height": h,
            }
        )
    return out
