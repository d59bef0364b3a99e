"""What a resume continues from, checked against what the run folder says before it is trusted.

    last.pt       the end of the last finished epoch
    position.pt   the exact place inside the epoch after it (engine.training.position), if a stop, a signal or a
                  timed checkpoint wrote one
    best.pt       the epoch with the best score so far

A kill can fall between any two writes, so each is checked against the others: a position is used
only if it continues last.pt's epoch (an older one is removed), a damaged position falls back to
last.pt, best.pt must hold the epoch metrics.jsonl names as the best (when that epoch is last.pt's,
a best.pt left behind by a kill is written again from it), and the temporary files of a write cut
short are removed. Each finding is a note for the run's log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.training import checkpoint as ckpt
from engine.training.position import POSITION_FILE, Position


@dataclass
class ResumePoint:
    state: dict[str, Any] | None  # the training_state to continue from; None: start at epoch 1
    position: Position | None = None  # set when the state is a place inside an epoch
    notes: list[str] = field(default_factory=list)


def score(row: dict[str, Any]) -> float | None:
    """What `best` ranks epochs by: the validation accuracy, else the training accuracy."""
    return row.get("val_acc") if row.get("val_acc") is not None else row.get("train_acc")


def best_epoch(rows: list[dict[str, Any]]) -> int | None:
    """The epoch best.pt holds after these epochs: the first with the highest score, since the
    trainer writes best.pt only on a strict improvement."""
    best, epoch = None, None
    for row in rows:
        s = score(row)
        if s is not None and (best is None or s > best):
            best, epoch = s, int(row["epoch"])
    return epoch


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch a checkpoint file holds; None if it is missing or does not read."""
    try:
        return int(ckpt.load_checkpoint(path)["epoch"])
    except (ckpt.CheckpointError, KeyError, TypeError, ValueError):
        return None


def remove_stray_temporaries(checkpoints: Path) -> list[str]:
    """The `.NAME.tmp` files of checkpoint writes a kill cut short (only called under the run's lock)."""
    removed = []
    for tmp in sorted(checkpoints.glob(".*.tmp")):
        try:
            tmp.unlink()
            removed.append(tmp.name)
        except OSError:
            pass
    return removed


def resume_point(
    checkpoints: Path, rows: list[dict[str, Any]], device: torch.device, train_size: int, batches: int
) -> ResumePoint:
    """Where a resume continues; `rows` are the folder's metrics, `batches` an epoch's batches. Raises
    CheckpointError for a last.pt that does not read (nothing sound to continue from)."""
    notes = [f"removed {name}, left by a write that a kill cut short" for name in remove_stray_temporaries(checkpoints)]
    last_path = checkpoints / "last.pt"
    last = ckpt.load_training_state(last_path, "cpu") if last_path.exists() else None
    done = int(last["epoch"]) if last else 0
    point = ResumePoint(last, notes=notes)
    _take_position(checkpoints / POSITION_FILE, done, device, train_size, batches, point)
    if last is not None:
        _check_best(checkpoints, [r for r in rows if int(r["epoch"]) <= done], last, notes)
    return point


def restore(point: ResumePoint, model, scaler, checkpoints: Path) -> ckpt.Restored | None:
    """Load the point's model, scaler and RNG states in place; the optimizer and schedule states wait in
    the result for the phase they belong to. CheckpointError if the state does not fit this run."""
    state = point.state
    if state is None:
        return None
    try:
        model.load_state_dict(state["model"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        phase = max(int(state.get("phase", 0)), 0)
        return ckpt.Restored(int(state["epoch"]), state.get("best"), phase, state["optimizer"], state["scheduler"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        which = POSITION_FILE if point.position is not None else "last.pt"
        raise ckpt.CheckpointError(f"{checkpoints / which} is not this run's checkpoint ({err})") from None


def _take_position(
    path: Path, done: int, device: torch.device, train_size: int, batches: int, point: ResumePoint
) -> None:
    if not path.exists():
        return
    try:
        state = ckpt.load_training_state(path, "cpu")  # a foreign model or optimizer falls back as well
        position = Position.from_state(state["position"], device, train_size, batches)
        if int(state["epoch"]) != done or position.epoch != done:
            point.notes.append(f"removed {POSITION_FILE}: it is of epoch {int(state['epoch']) + 1}, before last.pt's")
            path.unlink(missing_ok=True)
            return
    except (ckpt.CheckpointError, KeyError, TypeError, ValueError, RuntimeError, AttributeError, OverflowError) as err:
        point.notes.append(f"{POSITION_FILE} does not read ({err}); continuing from the end of epoch {done}")
        path.unlink(missing_ok=True)
        return
    point.state, point.position = state, position


def _check_best(checkpoints: Path, rows: list[dict[str, Any]], last: dict[str, Any], notes: list[str]) -> None:
    expected = best_epoch(rows)
    if expected is None:
        return
    best_path = checkpoints / "best.pt"
    held = checkpoint_epoch(best_path)
    if held == expected:
        return
    if expected == int(last["epoch"]):
        ckpt.save_checkpoint(best_path, last)
        was = f"held epoch {held}" if held is not None else "was missing or unreadable"
        notes.append(f"best.pt {was}; the best epoch is {expected}, as in last.pt: best.pt written again from it")
    else:
        notes.append(
            f"best.pt holds epoch {held}, not the best epoch {expected}: the test figures will name the weights used"
        )
