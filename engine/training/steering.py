"""What may interrupt a run between two batches, from wherever it comes, through one door.

    the handle     the console's keys (its own thread run), Ctrl+C and signals (the CLI)
    the channel    <run>/control/: `cnnlab pause|continue|stop|checkpoint RUN_DIR`, another console
    the clock      train.checkpoint_minutes: a checkpoint of the exact position every so often

Channel commands become handle requests, so the console that trains a run on its thread sees a pause
sent from another terminal as its own. Each command applied is acknowledged in status.json at once
(`control`: the id, the command, who sent it; `recent`: the ids applied lately), which is what
`cnnlab pause` and friends wait for. Between polls a batch pays a clock read and three flag tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.events import ControlApplied, Event, RunHandle
from engine.files import timestamp
from engine.runfolder.control import ControlReader
from engine.runfolder.folder import RunFolder
from engine.training.live_status import LiveStatus

STOP, CHECKPOINT, TIMED = "stop", "checkpoint", "timed"
_RECENT = 16  # acknowledged ids kept in status.json, for senders whose command shared a poll with others


class Steering:
    def __init__(
        self,
        folder: RunFolder,
        handle: RunHandle,
        status: LiveStatus,
        emit: Callable[[Event], None],
        checkpoint_minutes: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handle, self.status, self.emit, self.clock = handle, status, emit, clock
        self.reader = ControlReader(folder.path, clock=clock)
        self.every_s = checkpoint_minutes * 60.0
        self.saved_at = clock()
        self.paused = False
        self.paused_s = 0.0  # time spent paused, left out of images per second and the ETA
        self.stop_by = ""
        self._recent: list[str] = []
        self._checkpoint_ids: list[str] = []

    def begin(self, started_ns: int) -> None:
        """Commands sent before this run began (to a run that died before reading them) are not obeyed."""
        self.reader.drop_older_than(started_ns)

    def between_batches(
        self, epoch: int, batch: int, batches: int, waiting: Callable[[], object] | None = None
    ) -> str | None:
        """Called before each batch (0-based `batch` of `epoch`): STOP, CHECKPOINT (asked for), TIMED
        (due by the clock) or None to train on. Blocks while the run is paused, calling `waiting`
        every quarter second (rank 0 of several tells the others to go on waiting)."""
        h = self.handle
        while True:
            self._read_channel(epoch, batch, batches)
            if h.stop_requested:
                self.stop_by = h.stop_by or "a stop request"
                self._tell("stop", self.stop_by, epoch, batch, batches)
                return STOP
            if h.take_checkpoint_request():
                return CHECKPOINT
            if not h.paused:
                break
            if not self.paused:
                self._set_paused(True, h.pause_by or "a pause request", epoch, batch, batches)
                return CHECKPOINT  # a paused run that is then killed loses nothing either
            t0 = self.clock()
            h.wait_running(0.25)
            if waiting is not None:
                waiting()
            self.paused_s += self.clock() - t0
        if self.paused:
            self._set_paused(False, h.continue_by or "a continue request", epoch, batch, batches)
        if self.every_s > 0 and self.clock() - self.saved_at >= self.every_s:
            return TIMED
        return None

    def saved(self, epoch: int, batch: int, batches: int) -> None:
        """The trainer has written a checkpoint: the clock starts again, and asked-for ones are acknowledged."""
        self.saved_at = self.clock()
        if self._checkpoint_ids:
            by = self.handle.checkpoint_by or "a checkpoint request"
            self._tell("checkpoint", by, epoch, batch, batches)
            for cmd_id in self._checkpoint_ids:
                self._ack(cmd_id, "checkpoint", by)
            self._checkpoint_ids = []

    # --- the channel ------------------------------------------------------------------------------

    def _read_channel(self, epoch: int, batch: int, batches: int) -> None:
        for cmd in self.reader.read():
            by = cmd.reason or f"`cnnlab {cmd.command}` on {cmd.host or 'an unknown host'}"
            if cmd.command == "pause":
                self.handle.pause(by)
            elif cmd.command == "continue":
                self.handle.resume(by)
            elif cmd.command == "stop":
                self.handle.stop(by)
            elif cmd.command == "checkpoint":
                self.handle.checkpoint(by)
                self._checkpoint_ids.append(cmd.id)
                continue  # acknowledged once written
            self._ack(cmd.id, cmd.command, by)

    def _ack(self, cmd_id: str, command: str, by: str) -> None:
        self._recent = [*self._recent, cmd_id][-_RECENT:]
        applied = timestamp()
        ack = {"id": cmd_id, "command": command, "by": by, "applied": applied, "recent": self._recent}
        self.status.update(control=ack)

    # --- pausing ----------------------------------------------------------------------------------

    def _set_paused(self, paused: bool, by: str, epoch: int, batch: int, batches: int) -> None:
        self.paused = paused
        self.status.progress(epoch + 1, batch, batches, paused=paused)
        self._tell("pause" if paused else "continue", by, epoch, batch, batches)

    def _tell(self, command: str, by: str, epoch: int, batch: int, batches: int) -> None:
        where = f"epoch {epoch + 1}, batch {batch} of {batches}"
        text = {
            "pause": f"paused by {by} at {where}",
            "continue": f"continued by {by} at {where}",
            "stop": f"stop asked by {by} at {where}: saving the exact position",
            "checkpoint": f"checkpoint of the exact position written at {where} (asked by {by})",
        }[command]
        self.emit(ControlApplied(text, command=command, by=by, epoch=epoch + 1, batch=batch))
