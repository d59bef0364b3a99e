"""A finished run's summary.json: its best epoch, its last epoch's figures, and the test set's figures
on weights that are named, with their epoch.

The test runs on best.pt only when best.pt holds the epoch metrics.jsonl names as the best (the first
with the highest score: best.pt is written on a strict improvement); otherwise on the weights in
memory, the last epoch's, and it says so. `test_checkpoint` and `checkpoint_epoch` say which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.runfolder.folder import RunFolder
from engine.training import checkpoint as ckpt
from engine.training.predict import score_test
from engine.training.resume_point import best_epoch


def summarise(
    folder: RunFolder, splits, model, augment, rt, *, seconds: float, warn: Callable[[str], None], world=None
) -> dict:
    """Write and return summary.json; `model` holds the last epoch's weights (it may be given best.pt's).
    Over several ranks (engine.processes.world.World) every rank tests its block; rank 0's folder writes."""
    rows = folder.metrics()
    vals = [(r["val_acc"], r["epoch"]) for r in rows if r.get("val_acc") is not None]
    summary: dict[str, Any] = {
        "epochs_done": len(rows),
        "seconds": round(seconds, 1),
        "class_names": list(splits.class_names),
    }
    if vals:
        best_acc = max(v for v, _ in vals)
        summary.update(best_val_acc=best_acc, best_epoch=next(e for v, e in vals if v == best_acc))
    if rows:
        summary["final"] = {k: rows[-1].get(k) for k in ("train_loss", "train_acc", "val_loss", "val_acc")}
    if splits.test is not None:
        which, epoch = _weights(folder, model, rt, len(rows), bool(vals), warn)
        summary.update(score_test(model, splits, augment, rt, *([world] if world else [])))
        summary.update(test_checkpoint=which, checkpoint_epoch=epoch)
    folder.write_summary(summary)
    return summary


def _weights(folder: RunFolder, model, rt, epochs_done: int, validated: bool, warn) -> tuple[str, int]:
    """("best", its epoch) with best.pt loaded into `model` when it holds the best epoch; else ("last", N)."""
    best_path = folder.checkpoints / "best.pt"
    wanted = best_epoch(folder.metrics()) if validated else None
    if wanted is None or not best_path.exists():
        return "last", epochs_done
    best = ckpt.load_checkpoint(best_path, rt.device)
    if int(best.get("epoch", -1)) != wanted:
        warn(f"best.pt holds epoch {best.get('epoch')}, not the best epoch {wanted}: the test uses the last epoch's")
        return "last", epochs_done
    model.load_state_dict(best["model"])
    return "best", wanted
