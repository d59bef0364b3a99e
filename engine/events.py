"""The typed events a training run reports, and the handle that steers it.

The trainer calls a listener with these and knows nothing of who listens: the CLI draws a rich
progress bar from them, the console turns them into Textual messages. Every event is a plain,
frozen dataclass of numbers, strings, lists and dicts, so it can cross threads and be logged.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Union


@dataclass(frozen=True)
class RunStarted:
    run_dir: str
    run_id: str
    device: str  # e.g. "cuda:0", "cpu"
    precision: str  # what actually runs: "fp32", "bf16", "fp16"
    channels_last: bool
    params: int
    train_size: int
    val_size: int
    test_size: int
    class_names: list[str]
    epochs: int
    start_epoch: int  # 0 for a new run; the next epoch to train on a resume
    batches_per_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics of epochs already done (resume)
    start_batch: int = 0  # a resume inside an epoch: the batches of epoch start_epoch + 1 already done


@dataclass(frozen=True)
class BatchProgress:
    epoch: int  # 1-based
    batch: int  # batches done in this epoch
    batches: int
    loss: float  # running mean of this epoch's training loss
    lr: float
    images_per_sec: float
    eta_seconds: float  # to the end of the run


@dataclass(frozen=True)
class EpochFinished:
    metrics: dict[
        str, Any
    ]  # one line of metrics.jsonl: epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds, images_per_sec


@dataclass(frozen=True)
class LogMessage:
    text: str
    level: str = "info"  # info, warning


@dataclass(frozen=True)
class ControlApplied(LogMessage):
    """The trainer obeyed a pause, continue, stop or checkpoint (from the console, the control channel,
    Ctrl+C or a signal). A log line too, so every listener that prints log lines says it."""

    command: str = ""  # pause, continue, stop, checkpoint
    by: str = ""  # who asked, in words: "the console", "cnnlab stop on host-a", "SIGTERM"
    epoch: int = 0  # 1-based, the epoch in progress
    batch: int = 0  # batches done in it


@dataclass(frozen=True)
class RunFinished:
    state: ClassVar[str] = "finished"  # the run's state in status.json once this event ends it
    summary: dict[str, Any]


@dataclass(frozen=True)
class RunStopped:
    state: ClassVar[str] = "stopped"  # the run's state in status.json once this event ends it
    epoch: int  # epochs completed and checkpointed
    message: str = "stopped by the user"


@dataclass(frozen=True)
class RunFailed:
    state: ClassVar[str] = "failed"  # the run's state in status.json once this event ends it
    message: str


@dataclass(frozen=True)
class RunDiverged:
    state: ClassVar[str] = "diverged"  # the run's state in status.json once this event ends it
    epoch: int
    message: str


Event = Union[
    RunStarted,
    BatchProgress,
    EpochFinished,
    LogMessage,
    ControlApplied,
    RunFinished,
    RunStopped,
    RunFailed,
    RunDiverged,
]
Listener = Callable[[Event], None]
END_EVENTS = (RunFinished, RunStopped, RunFailed, RunDiverged)
EndEvent = Union[RunFinished, RunStopped, RunFailed, RunDiverged]


def end_state(event: Event) -> str | None:
    """The state an end event leaves the run in ("finished", "stopped", ...), None for other events."""
    return getattr(type(event), "state", None)


class RunHandle:
    """Stop / pause / continue / checkpoint a run from another thread; the trainer checks it every batch.
    Each request may say who made it (`by`), which the trainer repeats in its log and status."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._checkpoint = threading.Event()
        self.stop_by = self.pause_by = self.continue_by = self.checkpoint_by = ""

    def stop(self, by: str = "") -> None:
        if not self._stop.is_set():
            self.stop_by = by
        self._stop.set()
        self._running.set()  # a paused run must wake up to stop

    def pause(self, by: str = "") -> None:
        self.pause_by = by
        self._running.clear()

    def resume(self, by: str = "") -> None:
        self.continue_by = by
        self._running.set()

    def checkpoint(self, by: str = "") -> None:
        """Ask for a checkpoint of the exact position at the next batch; the run goes on."""
        self.checkpoint_by = by
        self._checkpoint.set()

    def take_checkpoint_request(self) -> bool:
        if not self._checkpoint.is_set():
            return False
        self._checkpoint.clear()
        return True

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_running(self, timeout: float) -> bool:
        """Wait until the run is not paused (or `timeout` passes); True if it is not paused."""
        return self._running.wait(timeout)

    def wait_if_paused(self) -> None:
        while not self._running.wait(timeout=0.2):
            pass
