"""status.json while a run trains: its state, live progress and heartbeat, written by one door.

Views in other processes (the console following a headless run, `cnnlab runs`, `cnnlab stop` waiting
for its acknowledgement) read a run's place from status.json: the epoch, the batch, images per
second, whether it is paused, the last control command applied, where its checkpoints are. Batch
progress is written every few seconds, each finished epoch, pause and command at once.

The heartbeat: a thread rewrites the file every few seconds whatever the trainer is doing (a long
batch, a validation, a pause), so `updated` stays fresh and a run on another machine of a shared
filesystem is judged alive by it. Every write of the training process goes through this object
(`write`, `update`, `progress`, `record_checkpoint`), each under its one lock, so two threads never
interleave a read-modify-write of the file and no caller holds the lock itself.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from engine.events import BatchProgress, EpochFinished, Event, RunStarted
from engine.runfolder.folder import RunFolder

STATUS_EVERY_S = 3.0
ENDED = ("finished", "stopped", "failed", "diverged")


class LiveStatus:
    """Call it with every event of a run; `write` for everything else the trainer records."""

    def __init__(self, folder: RunFolder, every_s: float = STATUS_EVERY_S) -> None:
        self.folder, self.every_s = folder, every_s
        self._lock = threading.RLock()
        self.state, self.message = "running", ""
        self.batches = 0
        self._ips = 0.0
        self._last = 0.0  # when batch progress was last written
        self._written = 0.0  # when anything was last written
        self._beat: threading.Thread | None = None
        self._quit = threading.Event()

    def write(self, state: str, message: str | None = None, **extra: Any) -> None:
        """status.json with this state (and message; None keeps the current one) and fields."""
        with self._lock:
            if message is not None:
                self.message = message
            self.state = state
            self.folder.write_status(state, message=self.message, **extra)
            self._written = time.monotonic()

    def update(self, **fields: Any) -> None:
        """status.json with these fields, its state and message as they are."""
        with self._lock:
            self.write(self.state, **fields)

    def record_checkpoint(self, epoch: int, kind: str) -> None:
        """status.json says checkpoints/<kind>.pt holds `epoch` finished epochs (RunFolder.record_checkpoint)."""
        with self._lock:
            self.folder.record_checkpoint(epoch, kind)

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.batches = event.batches_per_epoch
        elif isinstance(event, BatchProgress):
            now = time.monotonic()
            if now - self._last >= self.every_s:
                self._last = now
                self.progress(event.epoch, event.batch, event.batches, event.images_per_sec)
        elif isinstance(event, EpochFinished):
            m = event.metrics
            self.progress(m["epoch"], self.batches, self.batches, m["images_per_sec"])

    def progress(self, epoch: int, batch: int, batches: int, images_per_sec: float | None = None, **extra: Any) -> None:
        """The place of the run (epoch 1-based, batches done in it); images/s None keeps the last figure."""
        if images_per_sec is not None:
            self._ips = round(images_per_sec, 1)
        progress = {"epoch": epoch, "batch": batch, "batches": batches, "images_per_sec": self._ips}
        with self._lock:
            if self.state not in ENDED:
                self.write(self.state, progress=progress, **extra)

    # --- the heartbeat ----------------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        self._beat = threading.Thread(target=self._beating, name="cnnlab-heartbeat", daemon=True)
        self._beat.start()

    def stop_heartbeat(self) -> None:
        self._quit.set()
        if self._beat is not None:
            self._beat.join(timeout=5)

    def _beating(self) -> None:
        while not self._quit.wait(min(1.0, self.every_s)):
            with self._lock:
                if self.state in ENDED or time.monotonic() - self._written < self.every_s:
                    continue
                try:
                    self.write(self.state)
                except OSError:
                    pass  # a full disk or a vanished folder: the trainer's own writes will say so
