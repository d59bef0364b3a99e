"""TensorBoard event files, written with TensorBoard's own writer (torch.utils.tensorboard).

`write_events(record, out)` exports a finished (or any) run folder: `out/<run-id>/` gets every
metric of every epoch as a scalar, the test figures, and the config as hyperparameters (the HPARAMS
tab), so `tensorboard --logdir out` shows every exported run side by side.

`LiveTensorBoard` is the same while a run trains (`train.tensorboard = true`): an engine listener
that writes each epoch's scalars (and the per-batch loss and lr) into `<run>/tensorboard/`, for users
who keep TensorBoard open; `with_live_tensorboard` puts it beside the run's other listener. A
missing tensorboard package is a warning in the run's log, never a failed run.
"""

from __future__ import annotations

import shutil
import traceback
from pathlib import Path
from typing import Any

from engine.events import (
    BatchProgress,
    EpochFinished,
    Listener,
    LogMessage,
    RunFinished,
    RunStarted,
    end_state,
)
from engine.export.records import RunRecord, cell, flat_row

LIVE_FOLDER = "tensorboard"  # inside the run folder
# metrics.jsonl keys as TensorBoard tags: grouped so the loss curves share a card, as do the accuracies.
TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "lr": "lr",
    "images_per_sec": "speed/images_per_sec",
    "seconds": "speed/epoch_seconds",
    "peak_memory_mb": "device/peak_memory_mb",
}
TEST_TAGS = {"test_acc": "accuracy/test", "test_loss": "loss/test"}
HPARAM_METRICS = {"best_val_acc": "hparam/best_val_acc", "test_acc": "hparam/test_acc"}


def summary_writer():
    """torch's SummaryWriter (it needs the tensorboard package: the cnnlab[tensorboard] extra)."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def tag_of(key: str) -> str:
    if key.startswith("peak_memory_mb_rank"):
        return f"device/{key}"  # each rank's device beside the run's peak
    return TAGS.get(key, f"other/{key}")


def scalars_of(row: dict[str, Any]) -> dict[str, float]:
    """A metrics line's numbers as {tag: value} (the epoch itself is the step, not a scalar)."""
    out = {}
    for key, value in flat_row(row).items():
        if key in ("epoch", "phase") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[tag_of(key)] = float(value)
    return out


def hparams_of(config: dict[str, Any]) -> dict[str, Any]:
    """The config as TensorBoard hyperparameters: numbers, strings and booleans (lists as JSON)."""
    out = {}
    for key, value in config.items():
        value = cell(value)
        out[key] = "none" if value is None else value
    return out


def _hparam_metrics(summary: dict[str, Any]) -> dict[str, float]:
    return {tag: float(summary[k]) for k, tag in HPARAM_METRICS.items() if summary.get(k) is not None}


def write_events(record: RunRecord, out: Path) -> Path:
    """Export one run to `out/<run-id>/` (replacing an earlier export of it)."""
    writer_cls = summary_writer()
    where = Path(out) / record.id
    if where.exists():
        shutil.rmtree(where)  # a second export must not add a second copy of every point
    writer = writer_cls(log_dir=str(where))
    try:
        last = 0
        for row in record.metrics:
            step = int(row["epoch"])
            last = max(last, step)
            for tag, value in scalars_of(row).items():
                writer.add_scalar(tag, value, step)
        for key, tag in TEST_TAGS.items():
            if record.summary.get(key) is not None:
                writer.add_scalar(tag, float(record.summary[key]), last)
        metrics = _hparam_metrics(record.summary)
        writer.add_hparams(hparams_of(record.config), metrics or {"hparam/epochs_done": float(last)}, run_name=".")
    finally:
        writer.close()
    return where


class LiveTensorBoard:
    """An engine listener writing a run's events as it trains, into `<run>/tensorboard/`."""

    def __init__(self, config: dict[str, Any], downstream: Listener) -> None:
        self.config = config
        self.downstream = downstream
        self.writer = None
        self.batches = 1
        self.broken = False

    def __call__(self, event: Any) -> None:
        self.downstream(event)
        if self.broken:
            return
        try:
            self._write(event)
        except Exception as err:  # TensorBoard must never end a run: say it once, stop writing
            self.broken = True
            traceback.print_exc()
            self.downstream(LogMessage(f"TensorBoard events stopped: {type(err).__name__}: {err}", "warning"))

    def _write(self, event: Any) -> None:
        if isinstance(event, RunStarted):
            where = Path(event.run_dir) / LIVE_FOLDER
            self.writer = summary_writer()(log_dir=str(where), flush_secs=5)
            self.batches = max(event.batches_per_epoch, 1)
            self.downstream(LogMessage(f"TensorBoard events: tensorboard --logdir {where}"))
            return
        w = self.writer
        if w is None:
            return
        if isinstance(event, BatchProgress):
            step = (event.epoch - 1) * self.batches + event.batch
            w.add_scalar("batch/loss", event.loss, step)
            w.add_scalar("batch/lr", event.lr, step)
        elif isinstance(event, EpochFinished):
            for tag, value in scalars_of(event.metrics).items():
                w.add_scalar(tag, value, int(event.metrics["epoch"]))
            w.flush()
        elif end_state(event) is not None:
            summary = event.summary if isinstance(event, RunFinished) else {}
            for key, tag in TEST_TAGS.items():
                if summary.get(key) is not None:
                    w.add_scalar(tag, float(summary[key]), int(summary.get("epochs_done", 0)))
            if summary:
                w.add_hparams(hparams_of(self.config), _hparam_metrics(summary) or {}, run_name=".")
            w.close()
            self.writer = None


def with_live_tensorboard(exp: Any, listener: Listener) -> Listener:
    """`listener`, plus live TensorBoard events when the experiment asks for them (train.tensorboard)."""
    if not getattr(exp.train, "tensorboard", False):
        return listener
    from engine.export.extras import available, missing_text

    if not available("tensorboard"):

        def warn_once(event: Any) -> None:
            listener(event)
            if isinstance(event, RunStarted):
                listener(LogMessage(f"train.tensorboard is on, but {missing_text('tensorboard')}", "warning"))

        return warn_once
    from engine.experiment.overrides import flatten

    return LiveTensorBoard(flatten(exp), listener)
