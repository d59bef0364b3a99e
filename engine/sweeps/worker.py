"""A sweep worker: takes slots from the sweep's study one after another and trains each into its
ordinary run folder, until no slot is left, the sweep is stopped, or its own handle says stop.

While a trial trains, a watch thread beats the trial's heartbeat into the study and passes the
sweep's orders on to the run (paused, stopped, and "taken over": another worker judged this one
dead, so it must not train on). Each finished epoch is reported to Optuna; a trial the pruner
judges hopeless is stopped at its next batch and ends `pruned`, with its folder. A stopped trial is
re-queued so that a resume continues it from its checkpoint; a trial re-queued after its worker
died is resumed, by whichever worker takes it, from the slot's run folder.

Whoever runs the loop (the CLI in this process, a worker process, `--join` elsewhere) hears of
each slot as it ends through `on_trial`, with its row of the results table.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.events import EpochFinished, Event, Listener, RunHandle, RunStarted
from engine.experiment.errors import ConfigError
from engine.experiment.overrides import apply_overrides
from engine.experiment.sweep_plan import SweepError
from engine.files import FORMAT, atomic_write_text, newer_format
from engine.runfolder.folder import RunFolder
from engine.runfolder.lock import RunLocked
from engine.sweeps import study as st
from engine.sweeps.folder import Sweep, trial_row

TrialCallback = Callable[[int, int, dict[str, Any]], None]  # (slot, number of slots, its table row)
TRIAL_LINK = "trial.json"  # in a trial's run folder: its study, slot and Optuna trial numbers
POLL_S = 1.0  # how often a worker reads the sweep's state while training (a stop lands within this, at a batch)


def worker_name() -> str:
    """Who a worker is, in words for the trial table (never used to judge whether it lives)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerResult:
    state: str  # finished (nothing left to do), stopped (asked to), paused (the sweep is paused: gone idle)
    trials: int  # trials this worker ended


class _Watch(threading.Thread):
    """One trial's heartbeat and the sweep's orders to its run, from a thread beside the trainer."""

    def __init__(self, ss: st.SweepStudy, trial, run: RunHandle, outer: RunHandle, grace_s: float):
        super().__init__(name=f"sweep-watch-{trial.number}", daemon=True)
        self.ss, self.trial, self.run_handle, self.outer = ss, trial, run, outer
        self.beat_every = max(0.2, grace_s / st.HEARTBEAT_EVERY)
        self.taken_over = False
        self._done = threading.Event()

    def run(self) -> None:
        last_beat = time.monotonic()
        paused = False  # what this watch last asked: a pause sent to the run itself is not undone
        while not self._done.wait(min(POLL_S, self.beat_every)):
            try:
                if time.monotonic() - last_beat >= self.beat_every:
                    self.trial.set_user_attr(st.HEARTBEAT, time.time())
                    last_beat = time.monotonic()
                state = st.sweep_state(self.ss)
            except Exception as err:  # the trial was finished by another worker, or the storage is unreachable
                import optuna

                if isinstance(err, optuna.exceptions.UpdateFinishedTrialError):
                    self.taken_over = True
                    self.run_handle.stop()
                    return
                continue  # a database that blinks: try again at the next beat; the grace period is long
            if self.outer.stop_requested or state == "stopped":
                self.run_handle.stop()
            elif (self.outer.paused or state == "paused") != paused:
                paused = not paused
                (self.run_handle.pause if paused else self.run_handle.resume)()

    def close(self) -> None:
        self._done.set()
        self.join(timeout=5)


class Worker:
    def __init__(
        self,
        sweep: Sweep,
        ss: st.SweepStudy,
        *,
        listener: Listener | None = None,
        handle: RunHandle | None = None,
        on_trial: TrialCallback | None = None,
        grace_s: float = st.GRACE_S,
        wait_for_others: bool = True,
    ):
        self.sweep, self.ss = sweep, ss
        self.listener, self.handle, self.on_trial = listener, handle or RunHandle(), on_trial
        self.grace_s = grace_s
        # An idle worker stays while others train, to take over a slot whose worker dies.
        self.wait_for_others = wait_for_others
        self.done = 0

    def _idle(self, seconds: float) -> None:
        """Wait without training; a stop of this worker's handle cuts it short."""
        end = time.monotonic() + seconds
        while not self.handle.stop_requested and time.monotonic() < end:
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))

    def run(self) -> WorkerResult:
        st.register_worker(self.ss, worker_name(), "working")
        try:
            result = self._loop()
        except BaseException:
            st.register_worker(self.ss, worker_name(), "gone")
            raise
        st.register_worker(self.ss, worker_name(), result.state)
        return result

    def _loop(self) -> WorkerResult:
        while True:
            if self.handle.stop_requested:
                return WorkerResult("stopped", self.done)
            state = st.sweep_state(self.ss)
            if state == "stopped":
                return WorkerResult("stopped", self.done)
            if state == "paused":
                self._idle(POLL_S)
                continue
            st.take_over_stale(self.ss, self.grace_s)
            trial = st.pop_trial(self.ss, sampler=lambda slot: st.sampler_for(self.sweep, slot))
            if trial is None:
                waiting, running = st.open_slots(self.ss)
                if waiting:
                    continue  # another worker was first to the one we saw: look again
                if not running or not self.wait_for_others:
                    return WorkerResult("finished", self.done)
                self._idle(min(POLL_S, self.grace_s / st.HEARTBEAT_EVERY))
                continue
            ended = self._train(trial)
            if ended == "stopped":
                return WorkerResult("stopped", self.done)

    # --- one trial -----------------------------------------------------------------------------

    def _train(self, trial) -> str:
        """Train the slot `trial` holds; returns how the slot ended for this worker."""
        slot = st.slot_of(trial)
        trial.set_user_attr(st.WORKER, worker_name())
        exp = self._experiment(trial, slot)
        if exp is None:
            return "failed"
        run_handle = RunHandle()  # this trial's: a prune or a takeover stops it, not the worker
        watch = _Watch(self.ss, trial, run_handle, self.handle, self.grace_s)
        pruned: list[str] = []
        listener = self._listener(trial, slot, run_handle, pruned)
        watch.start()
        try:
            result = self._run(exp, slot, listener, run_handle)
            if result is None:
                # Its old worker was judged dead but still trains it (silent past the grace period):
                # it learns it was taken over at its next heartbeat and lets go. Queue the slot again.
                st.requeue(self.ss, trial.number)
                self._idle(watch.beat_every)
                return "locked"
        finally:
            watch.close()
        if watch.taken_over:
            return "taken over"  # the worker that took the slot over owns it now; its run folder too
        return self._settle(trial, slot, result.folder.path, result.state, pruned)

    def _experiment(self, trial, slot: int):
        """The slot's experiment; None for a TPE draw that breaks a rule tying two fields together,
        told to the study as failed."""
        from optuna.trial import TrialState

        try:
            return apply_overrides(self.sweep.base, st.suggest_overrides(self.sweep, trial, slot))
        except ConfigError as err:
            trial.set_user_attr("state", "invalid")
            trial.set_user_attr("message", str(err))
            self.ss.study.tell(trial, state=TrialState.FAIL)
            return None

    def _listener(self, trial, slot: int, run_handle: RunHandle, pruned: list[str]) -> Listener:
        """The trial's run's listener: it passes events on, brings the worker's stop to the run, links
        the run folder to the trial and reports each epoch to the pruner (which may fill `pruned`)."""
        # the epochs reported already: a re-queued copy inherits its original's
        reported = set(self.ss.storage.get_trial(self.ss.trial_id(trial.number)).intermediate_values)

        def listener(event: Event) -> None:
            if self.listener is not None:
                self.listener(event)
            if self.handle.stop_requested:  # the worker's stop (Ctrl+C, the console) reaches the trial at once
                run_handle.stop()
            if isinstance(event, RunStarted):
                self._link(trial, slot, Path(event.run_dir))
            elif isinstance(event, EpochFinished) and not pruned:
                self._report(trial, event.metrics, reported, run_handle, pruned)

        return listener

    def _run(self, exp, slot: int, listener: Listener, run_handle: RunHandle):
        """The slot's run to its end: continued from its run folder when it was started before (stopped,
        or its worker died), else a new one. None: that folder is locked by a worker still training it."""
        from engine.training.trainer import resume_run, run_experiment  # torch, only when something trains

        folder = self.sweep.trial_folder(slot)
        if folder is not None:
            try:
                return resume_run(folder, listener=listener, handle=run_handle)
            except RunLocked:
                return None
        return run_experiment(
            exp,
            runs_dir=self.sweep.path,
            preset=self.sweep.preset or None,
            name=f"trial-{slot:03d}",
            listener=listener,
            handle=run_handle,
        )

    def _settle(self, trial, slot: int, folder_path: Path, state: str, pruned: list[str]) -> str:
        """The ended run told to the study (and its row to `on_trial`); returns how the slot ended."""
        import optuna
        from optuna.trial import TrialState

        if state == "stopped" and pruned:
            state = "pruned"
            RunFolder(folder_path).write_status("pruned", message=pruned[0])
        row = trial_row(self.sweep, slot, folder_path)
        try:
            self._record(trial, row, state)
            if state == "finished" and row.get(self.sweep.metric) is not None:
                self.ss.study.tell(trial, float(row[self.sweep.metric]))
            elif state == "pruned":
                self.ss.study.tell(trial, state=TrialState.PRUNED)
            elif state == "stopped":
                st.requeue(self.ss, trial.number)  # continued, from its checkpoint, by a resume
            else:  # failed, diverged, or finished without the metric (no validation split)
                self.ss.study.tell(trial, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            return "taken over"  # judged dead while it trained (a grace period too short for its epochs)
        self.done += 1
        if self.on_trial is not None:
            self.on_trial(slot, len(self.sweep.trials), row)
        return state

    def _link(self, trial, slot: int, run_dir: Path) -> None:
        """The slot's run folder and its Optuna trials, each naming the other."""
        trial.set_user_attr(st.RUN, run_dir.name)
        link_trial(run_dir, self.ss.name, slot, trial.number)

    def _report(self, trial, metrics: dict[str, Any], reported: set[int], run_handle: RunHandle, pruned: list) -> None:
        epoch, value = int(metrics["epoch"]), metrics.get(self.sweep.metric)
        if value is None or epoch in reported:
            return  # a resume re-trains an epoch whose line a kill left without its checkpoint
        reported.add(epoch)
        trial.report(float(value), epoch)
        if epoch < self.sweep.base.train.epochs and trial.should_prune():
            name = self.sweep.spec.get("pruner", "")
            pruned.append(f"pruned by the {name} pruner after epoch {epoch} ({self.sweep.metric} {value:.4f})")
            run_handle.stop()

    def _record(self, trial, row: dict[str, Any], state: str) -> None:
        """The slot's figures in the study too, for views that cannot read its folder (another machine)."""
        keep = ("epochs", "train_acc", "val_acc", "test_acc", "train_loss", "val_loss", "test_loss", "minutes")
        for key in keep:
            if row.get(key) is not None:
                trial.set_user_attr(key, row[key])
        trial.set_user_attr("state", state)


def read_trial_link(run_dir: Path) -> dict[str, Any]:
    """A trial's trial.json: {} when missing or damaged (it is rewritten whole); a SweepError when a
    newer cnnlab wrote it (its numbers may mean what this one does not know)."""
    try:
        doc = json.loads((run_dir / TRIAL_LINK).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    newer = newer_format(doc.get("format"), str(run_dir / TRIAL_LINK))
    if newer:
        raise SweepError(newer)
    return doc


def link_trial(run_dir: Path, study: str, slot: int, number: int) -> None:
    """trial.json names the study, the slot and every Optuna trial that trained the folder (a resumed
    slot adds its new trial's number)."""
    trials = read_trial_link(run_dir).get("trials", [])
    numbers = [n for n in trials if isinstance(n, int)] if isinstance(trials, list) else []
    doc = {"format": FORMAT, "study": study, "slot": slot, "trials": [*numbers, number]}
    atomic_write_text(run_dir / TRIAL_LINK, json.dumps(doc))
