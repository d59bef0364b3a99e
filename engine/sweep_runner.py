"""Running a sweep: its trials one after another, each an ordinary run through engine.trainer, and
resuming one that was stopped (finished and diverged trials are kept, a stopped or crashed trial
continues from its checkpoint, the rest run). The plan, the folder and the results are engine.sweep's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.config import Experiment
from engine.events import Listener, RunHandle
from engine.runs import default_runs_dir, read_run
from engine.sweep import Sweep, SweepError, plan_trials, results_table, trial_row

# A diverged trial is an outcome of its hyperparameters (say, too high an lr), not something to retry.
DONE_STATES = ("finished", "diverged")


@dataclass
class SweepResult:
    path: Path
    state: str  # finished (every trial has ended), stopped (resumable)
    rows: list[dict[str, Any]]
    message: str = ""


TrialCallback = Callable[[int, int, dict[str, Any]], None]  # (trial index, number of trials, its table row)


def run_sweep(
    base_exp: Experiment,
    *,
    runs_dir: Path | None = None,
    grid: dict[str, list[Any]] | None = None,
    random: dict[str, dict[str, Any]] | None = None,
    trials: int | None = None,
    seed: int = 0,
    metric: str = "val_acc",
    preset: str | None = None,
    name: str | None = None,
    listener: Listener | None = None,
    handle: RunHandle | None = None,
    on_trial: TrialCallback | None = None,
) -> SweepResult:
    """Plan (validating every trial), create the sweep folder, and run the trials one after another."""
    plan = plan_trials(base_exp, grid=grid, random=random, trials=trials, seed=seed)
    spec: dict[str, Any] = {}
    if grid:
        spec["grid"] = grid
    if random:
        spec.update(random=random, trials=trials, seed=seed)
    sweep = Sweep.create(
        Path(runs_dir or default_runs_dir()), base_exp, plan, metric=metric, preset=preset, name=name, spec=spec
    )
    return _run_trials(sweep, listener, handle, on_trial)


def resume_sweep(
    sweep_dir: Path,
    *,
    listener: Listener | None = None,
    handle: RunHandle | None = None,
    on_trial: TrialCallback | None = None,
) -> SweepResult:
    """Continue a sweep: finished (and diverged) trials are kept, a stopped, crashed or failed trial
    resumes from its checkpoint, trials never started run."""
    return _run_trials(Sweep.load(sweep_dir), listener, handle, on_trial)


def _run_trials(
    sweep: Sweep, listener: Listener | None, handle: RunHandle | None, on_trial: TrialCallback | None
) -> SweepResult:
    from engine.trainer import resume_run, run_experiment  # torch, only when something trains

    handle = handle or RunHandle()
    total = len(sweep.trials)
    for i in range(1, total + 1):
        if handle.stop_requested:
            return _stopped(sweep, i)
        folder = sweep.trial_folder(i)
        if folder is not None:
            info = read_run(folder)
            if info is not None and info.state in DONE_STATES:
                continue
            if info is not None and info.state == "running":
                raise SweepError(f"trial {i} ({folder}) is still running in another process; stop it first")
            result = resume_run(folder, listener=listener, handle=handle)
        else:
            result = run_experiment(
                sweep.trial_experiment(i),
                runs_dir=sweep.path,
                preset=sweep.preset or None,
                name=f"trial-{i:03d}",
                listener=listener,
                handle=handle,
            )
        if on_trial is not None:
            on_trial(i, total, trial_row(sweep, i, result.folder.path))
        if result.state == "stopped":
            return _stopped(sweep, i)
    return SweepResult(sweep.path, "finished", results_table(sweep.path))


def _stopped(sweep: Sweep, index: int) -> SweepResult:
    msg = f"sweep stopped at trial {index} of {len(sweep.trials)}; continue with: cnnlab sweep --resume {sweep.path}"
    return SweepResult(sweep.path, "stopped", results_table(sweep.path), msg)
