"""A sweep as a view reads it, live: each trial's state, varied values, epoch, metric so far, time
and curve; the best trial; which parameters matter (Optuna's importance evaluator); the sweep's own
state. Read from its study and its trials' run folders, by whichever process looks (the console's
sweep screen), while workers anywhere train it. No Textual.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.runfolder.folder import RunFolder
from engine.runfolder.table import read_run
from engine.sweeps import study as st
from engine.sweeps.folder import Sweep


@dataclass
class TrialView:
    slot: int
    state: str  # pending (waiting), running, finished, pruned, stopped, failed, diverged, …
    values: dict[str, Any]  # the varied fields
    epochs_done: int
    epochs: int
    metric: float | None  # the sweep's metric, best so far (highest accuracy, lowest loss)
    seconds: float | None  # training time so far
    run: Path | None  # its run folder, where this machine has it
    worker: str = ""
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, the metric that epoch)
    message: str = ""


@dataclass
class SweepView:
    sweep: Sweep
    state: str  # running, paused, stopped, finished
    trials: list[TrialView]
    best: int | None  # the slot of the best finished trial
    importance: dict[str, float]
    importance_note: str  # why there is none yet
    workers: int  # workers that said they joined and have not said they left
    read_s: float = 0.0  # what reading it cost

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out


class SweepReader:
    """Reads a sweep again and again, keeping its study open (a journal is replayed from where it
    was) and the importance computed once per set of finished trials."""

    def __init__(self, sweep_dir: Path, storage_url: str | None = None):
        self.sweep = Sweep.load(Path(sweep_dir))
        storage = st.storage_of(self.sweep, storage_url)
        self.ss = st.load_study(self.sweep, storage)
        self._importance: tuple[tuple[int, ...], dict[str, float], str] = ((), {}, "")

    def read(self) -> SweepView:
        from optuna.trial import TrialState

        t0 = time.perf_counter()
        sweep, metric = self.sweep, self.sweep.metric
        latest = st.latest_by_slot(self.ss.trials())
        trials = []
        for slot in range(1, len(sweep.trials) + 1):
            trials.append(self._trial(slot, latest.get(slot)))
        finished = [t for t in trials if t.state == "finished" and t.metric is not None]
        sign = 1 if metric.endswith("_loss") else -1
        best = min(finished, key=lambda t: (sign * t.metric, t.slot)).slot if finished else None
        complete = tuple(sorted(t.number for t in latest.values() if t.state == TrialState.COMPLETE))
        importance, note = self._importance_of(complete)
        state = st.sweep_state(self.ss)
        waiting, running = st.open_slots(self.ss)
        if not waiting and not running and state == "running":
            state = "finished"
        alive = sum(w.get("state") == "working" for w in st.workers_of(self.ss).values())
        return SweepView(sweep, state, trials, best, importance, note, alive, time.perf_counter() - t0)

    def _trial(self, slot: int, trial) -> TrialView:
        from optuna.trial import TrialState

        sweep, metric = self.sweep, self.sweep.metric
        folder = sweep.trial_folder(slot)
        values = dict(sweep.trials[slot - 1])
        if trial is not None:
            for key in sweep.varied:
                if key not in values and key in trial.params:
                    values[key] = trial.params[key]
        view = TrialView(slot, "pending", values, 0, sweep.base.train.epochs, None, None, folder)
        if trial is not None:
            view.worker = str(trial.user_attrs.get(st.WORKER, ""))
            if trial.state == TrialState.RUNNING:
                view.state = "running"
            elif trial.state != TrialState.WAITING:
                view.state = str(trial.user_attrs.get("state") or trial.state.name.lower())
        if folder is None:
            if trial is not None and trial.state != TrialState.WAITING:  # trained on another machine
                view.epochs_done = int(trial.user_attrs.get("epochs", len(trial.intermediate_values)))
                view.curve = sorted((int(k), float(v)) for k, v in trial.intermediate_values.items())
                view.metric = _best(metric, [v for _, v in view.curve])
            return view
        info = read_run(folder)
        rows = RunFolder(folder).metrics()
        # The folder says where the trial stands (a stopped trial queued again included), once it has begun.
        if info is not None and (view.state != "pending" or info.state != "created"):
            view.state = "paused" if info.state == "running" and _paused(folder) else info.state
            view.message = info.message
        view.epochs_done = len(rows)
        view.epochs = info.epochs if info is not None and info.epochs else view.epochs
        view.curve = [(int(r["epoch"]), float(r[metric])) for r in rows if isinstance(r.get(metric), (int, float))]
        view.metric = _best(metric, [v for _, v in view.curve])
        view.seconds = sum(float(r.get("seconds") or 0) for r in rows) if rows else None
        return view

    def _importance_of(self, complete: tuple[int, ...]) -> tuple[dict[str, float], str]:
        if complete == self._importance[0]:
            return self._importance[1], self._importance[2]
        importance, note = {}, ""
        if len(complete) < 2:
            note = "parameter importance needs two finished trials"
        else:
            import optuna

            try:
                importance = dict(optuna.importance.get_param_importances(self.ss.study))
            except (RuntimeError, ValueError) as err:  # e.g. every trial had the same values
                note = f"no importance yet: {err}"
        self._importance = (complete, importance, note)
        return importance, note


def _best(metric: str, values: list[float]) -> float | None:
    if not values:
        return None
    return min(values) if metric.endswith("_loss") else max(values)


def _paused(folder: Path) -> bool:
    return bool(RunFolder(folder).status().get("paused"))
