"""The model's predictions over a split held on the device, and the test-set figures made from them.

The trainer validates with `predict` after every epoch and tests with `score_test` at the end;
`cnnlab show --checkpoint` asks `evaluate_checkpoint` for a saved checkpoint's figures on demand.
The counting itself (per-class accuracy, confusion, examples) is engine.evaluation.evaluate's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.compute.device import Runtime, select_runtime
from engine.data.augment import BatchAugment
from engine.data.splits import DatasetUnusable, Split, Splits, load_splits
from engine.evaluation.evaluate import summarise_test
from engine.evaluation.top_losses import ImageLosses, image_losses, top_losses
from engine.models import build_model
from engine.processes.world import SINGLE, World
from engine.runfolder.folder import RunFolder
from engine.training import checkpoint as ckpt

EVAL_BATCH = 512


@torch.no_grad()
def predict(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    augment: BatchAugment,
    rt: Runtime,
    world: World = SINGLE,
) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy and the predictions over a split held on the device; over several ranks,
    each predicts its block of the split and the figures are of the whole."""
    part = world.slice_of(len(data[1]))
    images, labels = data[0][part], data[1][part]
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
    loss_sum, correct, n = world.all_sum(loss_sum, (p == labels).sum(), len(labels))
    if world.distributed:
        p = world.gather(p.cpu()).to(labels.device)
    return loss_sum / max(n, 1), correct / max(n, 1), p


def score_test(
    model: nn.Module, splits: Splits, augment: BatchAugment, rt: Runtime, world: World = SINGLE
) -> dict[str, Any]:
    """Test loss, accuracy, per-class accuracy, confusion and examples, for summary.json. Over several
    ranks each passes its block of the test set and every rank gathers the whole, in order."""
    if splits.test is None:
        raise ValueError("no test split")
    part = world.slice_of(len(splits.test))
    mine = Split(splits.test.images[part], splits.test.labels[part])
    passed = image_losses(model, rt.hold(mine), augment, rt)  # per-image losses too: one pass
    if world.distributed:
        passed = ImageLosses(*(world.gather(c) for c in (passed.losses, passed.preds, passed.probs, passed.true_probs)))
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
