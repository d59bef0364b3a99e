"""One run as the run screen shows it, kept once and without Textual.

`RunState` is fed through one door, `apply`, by either of two sources:

- the run this console trains: the engine's events, from the training thread (tui/training.py);
- a run folder (a run another process writes, or one that has ended): `FolderFeed` reads it and
  turns what is new there into the same events, plus a `StatusRead` for the states the engine
  has no event for (running in another process, crashed).

The run screen renders `view()`, a snapshot, a few times a second. A lock makes `apply` (training
thread) and `view` (UI thread) safe together; `version` counts changes, so nothing unchanged is
drawn again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text

from engine.events import (
    END_EVENTS,
    BatchProgress,
    ControlApplied,
    EpochFinished,
    LogMessage,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    end_state,
)
from engine.experiment.config import PER_BATCH_SCHEDULES, Experiment
from engine.runfolder.folder import RunFolder
from tui.run_view import best_epoch, end_lines, epoch_line, started_lines

# States after which nothing more happens to a run (until it is resumed): those the engine's end
# events leave, and a folder's whose process is gone.
END_STATES = (*(event.state for event in END_EVENTS), "crashed")


@dataclass(frozen=True)
class StatusRead:
    """What a run folder's status.json says, for the states no engine event reports: running in
    another process (with its live progress), created, crashed."""

    state: str
    message: str = ""
    progress: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunView:
    """A snapshot of a RunState for drawing: copies, safe to read while the run goes on."""

    version: int
    epoch_version: int  # changes when an epoch ends or the run starts or ends
    state: str
    message: str
    run_id: str
    device: str
    epochs: int
    epoch_done: float  # the epoch bar: epochs done, with the fraction of the one in progress
    batch_done: int  # the batch bar
    batches: int | None  # batches an epoch; None until the trainer says (the bar pulses meanwhile)
    rows: list[dict[str, Any]]
    summary: dict[str, Any] | None
    progress: BatchProgress | None  # the latest batch of the epoch in progress, None between epochs
    images_per_sec: float | None
    live_loss: tuple[list[float], list[float]]
    batch_lr: tuple[list[float], list[float]]


class RunState:
    """A run's state, epochs, live curves and log; see the module's docstring."""

    def __init__(self, epochs: int, *, per_batch_lr: bool = False, run_id: str = "") -> None:
        self._lock = threading.Lock()
        self.epochs = epochs
        self.per_batch_lr = per_batch_lr  # keep per-batch lr points: the schedule moves it within an epoch
        self.state = "starting"
        self.message = ""
        self.run_id = run_id
        self.run_dir: Path | None = None
        self.device = ""
        self.started = False
        self.epoch_done = 0.0
        self.batch_done = 0
        self.batches: int | None = None
        self.rows: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        self.progress: BatchProgress | None = None
        self.images_per_sec: float | None = None
        # Points of the epoch in progress (running mean of the loss), and per-batch lr points.
        self.live_loss: tuple[list[float], list[float]] = ([], [])
        self.batch_lr: tuple[list[float], list[float]] = ([], [])
        self.version = 0
        self.epoch_version = 0
        self._log: list[Text] = []

    @classmethod
    def for_experiment(cls, exp: Experiment, *, run_id: str = "") -> RunState:
        schedule = exp.schedule
        per_batch = schedule.name in PER_BATCH_SCHEDULES or schedule.warmup_epochs > 0
        return cls(exp.train.epochs, per_batch_lr=per_batch, run_id=run_id)

    @property
    def ended(self) -> bool:
        return self.state in END_STATES

    # --- the one door ---------------------------------------------------------------------------

    def apply(self, event: Any) -> None:
        """Take in an engine event (or a StatusRead from a folder)."""
        with self._lock:
            self.version += 1
            if isinstance(event, BatchProgress):
                self._batch(event)
                return
            self.epoch_version += 1
            if isinstance(event, EpochFinished):
                self._epoch(event.metrics)
            elif isinstance(event, RunStarted):
                self._started(event)
            elif isinstance(event, ControlApplied):  # a log line too, and a state
                self._controlled(event)
            elif isinstance(event, LogMessage):
                self._log.append(Text(event.text, style="yellow" if event.level == "warning" else ""))
            elif isinstance(event, StatusRead):
                self._status(event)
            elif end_state(event) is not None:
                summary = event.summary if isinstance(event, RunFinished) else None
                self._end(end_state(event), getattr(event, "message", ""), summary)
            else:
                raise TypeError(f"not a run event: {event!r}")

    def _started(self, ev: RunStarted) -> None:
        self.started = True
        self.run_id, self.run_dir = ev.run_id, Path(ev.run_dir)
        self.device = f"{ev.device} · {ev.precision}"
        self.epochs = ev.epochs
        self.batches = ev.batches_per_epoch
        self.rows = list(ev.history)
        # Resumed inside an epoch: the bars start where it stopped.
        self.epoch_done = len(self.rows) + ev.start_batch / max(ev.batches_per_epoch, 1)
        self.batch_done = ev.start_batch
        if self.state not in ("stopping", "paused"):
            self._set("running", "")
        self._log.extend(started_lines(ev))

    def _batch(self, ev: BatchProgress) -> None:
        x = ev.epoch - 1 + ev.batch / max(ev.batches, 1)
        self.progress = ev
        self.images_per_sec = ev.images_per_sec
        self.epoch_done, self.batch_done, self.batches = x, ev.batch, ev.batches
        self.live_loss[0].append(x)
        self.live_loss[1].append(ev.loss)
        if self.per_batch_lr:
            self.batch_lr[0].append(x)
            self.batch_lr[1].append(ev.lr)

    def _epoch(self, row: dict[str, Any]) -> None:
        self.rows = [r for r in self.rows if r.get("epoch") != row.get("epoch")] + [row]
        self.live_loss = ([], [])  # the epoch's point replaces its per-batch curve
        self.progress = None
        self.epoch_done = max(self.epoch_done, len(self.rows))
        best = best_epoch(self.rows)
        self._log.append(epoch_line(row, self.epochs, best is not None and best[1] == row.get("epoch")))

    def _controlled(self, ev: ControlApplied) -> None:
        """The trainer obeyed a pause, continue or stop, whoever asked (this console, another, the CLI)."""
        self._log.append(Text(ev.text, style="yellow" if ev.command in ("pause", "stop") else ""))
        state = {"pause": "paused", "continue": "running", "stop": "stopping"}.get(ev.command)
        if state is not None and not self.ended:
            self._set(state, ev.text if state == "stopping" else "")

    def _status(self, st: StatusRead) -> None:
        if st.state in END_STATES:
            self._end(st.state, st.message, None)
            return
        self._set(st.state, st.message)
        p = st.progress
        if st.state in ("running", "paused") and p:
            self.batches, self.batch_done = p.get("batches"), p.get("batch", 0)
            self.images_per_sec = p.get("images_per_sec")

    def _end(self, state: str, message: str, summary: dict[str, Any] | None) -> None:
        if self.state == state and self.ended:
            return  # a folder read again says the same
        self._set(state, message)
        self.progress = None
        # What was drawn stays drawn: the per-batch curve of an epoch cut short is kept, the bars too.
        if state == "finished":
            self.summary = summary or {}
            self.epoch_done = self.epochs
            self.batch_done = self.batches or 0
        self._log.extend(end_lines(state, message, self.summary if state == "finished" else None))

    def _set(self, state: str, message: str) -> None:
        self.state, self.message = state, message

    # --- what the user does (UI thread) ---------------------------------------------------------

    def pause_asked(self) -> None:
        self._user("paused", "", Text("paused: p resumes, s stops", style="yellow"))

    def resume_asked(self) -> None:
        # A followed folder's run has started without a RunStarted event here: its progress says so.
        begun = self.started or self.batches is not None or bool(self.rows)
        self._user("running" if begun else "starting", "", Text("resumed"))

    def stop_asked(self) -> None:
        line = Text("stopping at the next batch (a checkpoint is written)…", style="yellow")
        self._user("stopping", "stopping at the next batch…", line)

    def note(self, text: str, style: str = "") -> None:
        """A line of the console's own in the run's log."""
        with self._lock:
            self.version += 1
            self._log.append(Text(text, style=style))

    def _user(self, state: str, message: str, line: Text) -> None:
        with self._lock:
            self.version += 1
            self._set(state, message)
            self._log.append(line)

    # --- what the screen reads ------------------------------------------------------------------

    def view(self) -> RunView:
        with self._lock:
            return RunView(
                version=self.version,
                epoch_version=self.epoch_version,
                state=self.state,
                message=self.message,
                run_id=self.run_id,
                device=self.device,
                epochs=self.epochs,
                epoch_done=self.epoch_done,
                batch_done=self.batch_done,
                batches=self.batches,
                rows=list(self.rows),
                summary=dict(self.summary) if self.summary is not None else None,
                progress=self.progress,
                images_per_sec=self.images_per_sec,
                live_loss=(list(self.live_loss[0]), list(self.live_loss[1])),
                batch_lr=(list(self.batch_lr[0]), list(self.batch_lr[1])),
            )

    def take_log(self) -> list[Text]:
        """The log lines not yet shown, oldest first."""
        with self._lock:
            lines, self._log = self._log, []
            return lines


class FolderFeed:
    """Reads a run folder into a RunState: what is new since the last read becomes events."""

    def __init__(self, path: Path) -> None:
        self.folder = RunFolder(Path(path))
        self._signature: tuple | None = None

    def experiment(self) -> Experiment:
        """The run's experiment (raises ValueError/OSError when its config does not read)."""
        return self.folder.experiment()

    def new_state(self) -> RunState:
        """A RunState of this folder's run, filled with what the folder holds now."""
        run = RunState.for_experiment(self.experiment(), run_id=self.folder.id)
        st = self.folder.status()
        run.device = " · ".join(str(st[k]) for k in ("device", "precision") if st.get(k))
        self.read(run)
        return run

    def read(self, run: RunState) -> bool:
        """Apply what changed in the folder since the last read; False when nothing did."""
        st = self.folder.status()
        rows = self.folder.metrics()
        signature = (st.get("state"), st.get("updated"), len(rows))
        if signature == self._signature:
            return False
        self._signature = signature
        known = {r.get("epoch"): r for r in run.rows}
        for row in rows:
            if known.get(row.get("epoch")) != row:  # new, or re-written by a resume
                run.apply(EpochFinished(row))
        state, message = st.get("state", "crashed"), st.get("message", "")
        run.apply(self._event(state, message, st, len(rows)))
        return True

    def _event(self, state: str, message: str, st: dict[str, Any], epochs_done: int) -> Any:
        if state == "finished":
            return RunFinished(self.folder.summary())
        if state == "stopped":
            return RunStopped(epochs_done, message)
        if state == "failed":
            return RunFailed(message)
        if state == "diverged":
            return RunDiverged(epochs_done, message)
        if state == "running" and st.get("paused"):
            state = "paused"  # still running (it holds its lock), held between two batches
        return StatusRead(state, message, st.get("progress") or {})
