"""status.json's live progress, kept by a listener of the run's events.

Views in other processes (the console following a headless run, `cnnlab runs`) read a run's place
from status.json: the epoch, the batch, images per second. Rewriting the file at every batch event
would cost a disk write several times a second, so batch progress is written every few seconds,
and each finished epoch at once.
"""

from __future__ import annotations

import time

from engine.events import BatchProgress, EpochFinished, Event, RunStarted
from engine.runs import RunFolder

STATUS_EVERY_S = 3.0


class LiveStatus:
    """Call it with every event of a run; it writes `progress` into the folder's status.json."""

    def __init__(self, folder: RunFolder, every_s: float = STATUS_EVERY_S) -> None:
        self.folder, self.every_s = folder, every_s
        self.batches = 0
        self._last = 0.0

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.batches = event.batches_per_epoch
        elif isinstance(event, BatchProgress):
            now = time.perf_counter()
            if now - self._last >= self.every_s:
                self._last = now
                self._write(event.epoch, event.batch, event.batches, round(event.images_per_sec, 1))
        elif isinstance(event, EpochFinished):
            m = event.metrics
            self._write(m["epoch"], self.batches, self.batches, m["images_per_sec"])

    def _write(self, epoch: int, batch: int, batches: int, images_per_sec: float) -> None:
        progress = {"epoch": epoch, "batch": batch, "batches": batches, "images_per_sec": images_per_sec}
        self.folder.write_status("running", progress=progress)
