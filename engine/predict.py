"""The model's predictions over a split held on the device, and the test-set figures made from them.

The trainer validates with `predict` after every epoch and tests with `score_test` at the end;
`cnnlab show --checkpoint` asks `evaluate_checkpoint` for a saved checkpoint's figures on demand.
The counting itself (per-class accuracy, confusion, examples) is engine.evaluate's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine import checkpoint as ckpt
from engine.augment import BatchAugment
from engine.data import DatasetUnusable, Splits, load_splits
from engine.device import Runtime, select_runtime
from engine.evaluate import summarise_test
from engine.models import build_model
from engine.runs import RunFolder
from engine.top_losses import image_losses, top_losses

EVAL_BATCH = 512


@torch.no_grad()
def predict(
    model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], augment: BatchAugment, rt: Runtime
) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy and the predictions over a split held on the device."""
    images, labels = data
    was_training = model.training
    model.eval()
    loss_sum, preds = 0.0, []
    for i in range(0, len(labels), EVAL_BATCH):
        x = augment.eval(images[i : i + EVAL_BATCH]).contiguous(memory_format=rt.memory_format)
        with rt.autocast():
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, labels[i : i + EVAL_BATCH], reduction="sum").item()
        preds.append(logits.argmax(1))
    model.train(was_training)
    p = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long, device=labels.device)
    n = max(len(labels), 1)
    return loss_sum / n, (p == labels).sum().item() / n, p


def score_test(model: nn.Module, splits: Splits, augment: BatchAugment, rt: Runtime) -> dict[str, Any]:
    """Test loss, accuracy, per-class accuracy, confusion and examples, for summary.json."""
    if splits.test is None:
        raise ValueError("no test split")
    passed = image_losses(model, rt.hold(splits.test), augment, rt)  # per-image losses too: one pass
    out = summarise_test(passed.preds, splits.test.labels, list(splits.class_names), splits.test.images)
    out["test_loss"] = passed.mean_loss
    out["top_losses"] = top_losses(passed, splits.test.labels, splits.test.images, list(splits.class_names))
    return out


def evaluate_checkpoint(run_dir: Path, which: str = "best") -> dict[str, Any]:
    """Test-set figures of a run's checkpoint, on demand (`cnnlab show --checkpoint`)."""
    folder = RunFolder(Path(run_dir))
    exp = folder.experiment()
    rt = select_runtime(exp.train)
    splits = load_splits(exp.data)
    if splits.test is None:
        raise DatasetUnusable(f"{exp.data.dataset} has no labelled test set here (set data.test_split to carve one)")
    images = splits.train.images
    model = build_model(exp.model, splits.num_classes, images.shape[-1], images.shape[1])
    model = model.to(rt.device, memory_format=rt.memory_format)
    path = folder.checkpoints / f"{which}.pt"
    state = ckpt.load_checkpoint(path, rt.device)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # another model's, or no model at all
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ckpt.CheckpointError(f"{path} does not hold this run's model ({first})") from None
    out = score_test(model, splits, BatchAugment(exp.augment, splits.mean, splits.std), rt)
    epoch = state.get("epoch")
    out.update(test_checkpoint=which, checkpoint_epoch=epoch if type(epoch) is int else None)
    return out
