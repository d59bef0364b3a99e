"""Running a sweep: plan it, make its folder and its Optuna study, and have workers train its slots.

What the sweep is and how its slots train come as two objects (engine.sweeps.plan: SweepPlan,
Workers). One worker trains in this process (`cnnlab sweep`'s default); `Workers(count=N)` starts N
worker processes on this machine, each pinned to its share of the cores or given its own GPUs
(engine.compute.cores), and follows the study until they are done; `join_sweep` is one more worker, from
another terminal or machine. Resuming carries a stopped sweep on: finished, pruned and diverged
slots are kept, stopped and failed ones continue from their checkpoints, the rest run. The plan's
validation is engine.experiment.sweep_plan's; the folder and the results table are engine.sweeps.folder's;
the study is engine.sweeps.study's; one worker's loop is engine.sweeps.worker's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from engine.events import RunHandle
from engine.experiment.config import Experiment
from engine.experiment.sweep_plan import SweepError
from engine.runfolder.folder import default_runs_dir
from engine.runfolder.table import read_run
from engine.sweeps import study as st
from engine.sweeps.folder import Sweep, results_table, trial_row
from engine.sweeps.plan import SweepPlan, Workers
from engine.sweeps.worker import TrialCallback, Worker

STORAGE_ENV = st.STORAGE_ENV  # a database URL handed to worker processes, password and all
FOLLOW_EVERY_S = 1.0  # how often the parent of worker processes looks at the study


@dataclass
class SweepResult:
    path: Path
    state: str  # finished (every slot has ended), stopped (resumable)
    rows: list[dict[str, Any]]
    message: str = ""


def create_sweep(
    base_exp: Experiment,
    plan: SweepPlan | None = None,
    *,
    runs_dir: Path | None = None,
    storage_url: str | None = None,
    **asked: Any,
) -> tuple[Sweep, st.SweepStudy]:
    """Plan (validating every slot), then make the sweep folder and its study, every slot queued;
    `asked`: fields of the plan as keywords (over `plan`'s). The study is kept in the database at
    `storage_url`, else in the folder. Nothing trains yet: workers (run_sweep's, `--join`'s, the
    console's) take the slots."""
    plan = replace(plan or SweepPlan(), **asked)
    if plan.pruner not in st.PRUNERS:
        raise SweepError(f"pruner {plan.pruner!r}: one of {', '.join(st.PRUNERS)}")
    slots = plan.slots(base_exp)
    spec = plan.spec()
    storage = st.open_storage(url=st.full_url(storage_url)) if storage_url else None  # a bad URL fails first
    if storage_url:
        spec["storage_url"] = st.strip_password(storage_url)  # written down: never its password
    sweep = Sweep.create(
        Path(runs_dir or default_runs_dir()),
        base_exp,
        slots,
        metric=plan.metric,
        preset=plan.preset,
        name=plan.name,
        spec=spec,
    )
    return sweep, st.create_study(sweep, storage or st.open_storage(sweep.path))


def run_sweep(
    base_exp: Experiment,
    plan: SweepPlan | None = None,
    *,
    runs_dir: Path | None = None,
    workers: Workers | None = None,
    on_created: Callable[[Sweep], None] | None = None,
    **asked: Any,
) -> SweepResult:
    """Create the sweep (create_sweep, in the workers' storage) and train its slots: in this process,
    or in `workers.count` processes. `on_created` hears of the folder before anything trains (so that
    another terminal can join it)."""
    workers = workers or Workers()
    if workers.count < 1:
        raise SweepError("--workers: at least 1")
    sweep, ss = create_sweep(base_exp, plan, runs_dir=runs_dir, storage_url=workers.storage_url, **asked)
    if on_created is not None:
        on_created(sweep)
    return _work(sweep, ss, workers)


def resume_sweep(sweep_dir: Path, workers: Workers | None = None) -> SweepResult:
    """Continue a sweep: finished, pruned and diverged slots are kept, stopped and failed ones resume
    from their checkpoints, slots never started run. A slot still running in a live worker is left
    to it; one whose worker died is taken over once its heartbeat is older than `workers.grace_s`."""
    workers = workers or Workers()
    sweep = Sweep.load(sweep_dir)
    ss = _study_for_resume(sweep, workers.storage_url)
    st.set_sweep_state(ss, "running")
    return _work(sweep, ss, workers)


def join_sweep(
    sweep_dir: Path | None = None,
    workers: Workers | None = None,
    *,
    study_name: str | None = None,
    runs_dir: Path | None = None,
) -> tuple[Sweep, str]:
    """One more worker for a running sweep, in this process: the sweep's folder, or (another
    machine) a database (`workers.storage_url`) and the study's name, from which the folder is made
    here. `workers.count` and `gpus_per_trial` are not its: `--workers N` gave it its share. Returns
    the sweep and how this worker ended (finished, stopped)."""
    from engine.compute.cores import apply_share

    workers = workers or Workers()
    storage_url = workers.storage_url
    if sweep_dir is None:
        storage_url = storage_url or os.environ.get(STORAGE_ENV) or None
        if not (storage_url and study_name):
            raise SweepError("--join needs a sweep folder, or --storage URL and --study NAME")
        sweep = _local_folder(Path(runs_dir or default_runs_dir()), st.full_url(storage_url), study_name)
    else:
        sweep = Sweep.load(sweep_dir)  # its study is where sweep.toml says (the environment gives the password)
    ss = st.load_study(sweep, st.storage_of(sweep, storage_url))
    apply_share()  # a worker process started by `--workers N`: its cores, before torch's pools start
    result = _worker(sweep, ss, workers, workers.handle).run()
    return sweep, result.state


def _local_folder(runs_dir: Path, url: str, study_name: str) -> Sweep:
    """The sweep folder on this machine for a study in a database: made from the study's sweep.toml."""
    from engine.files import atomic_write_text, safe_name
    from engine.sweeps.folder import SWEEP_FILE

    doc = st.fetch_sweep_doc(url, study_name)
    path = runs_dir / safe_name(study_name)
    if not (path / SWEEP_FILE).exists():
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path / SWEEP_FILE, doc)
    return Sweep.load(path)


def _study_for_resume(sweep: Sweep, storage_url: str | None) -> st.SweepStudy:
    """The sweep's study with every slot that must still run queued. A sweep folder from before
    studies (no study.journal) gets one, holding the slots its folders say are not done."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    url = st.storage_url_of(sweep, storage_url)
    if not url and not (sweep.path / st.JOURNAL_FILE).exists():
        undone = [i for i in range(1, len(sweep.trials) + 1) if not _slot_done(sweep, i)]
        return st.create_study(sweep, st.open_storage(sweep.path), slots=undone)
    ss = st.load_study(sweep, st.open_storage(sweep.path, url))
    latest = st.latest_by_slot(ss.trials())
    for slot in range(1, len(sweep.trials) + 1):
        t = latest.get(slot)
        if t is None:
            ss.study.enqueue_trial(st.encode_params(sweep.trials[slot - 1]), user_attrs={st.SLOT: slot})
        elif t.state == TrialState.FAIL and t.user_attrs.get("state") not in ("diverged", "invalid"):
            # a failed trial (out of memory, a dataset that was missing) runs again, from its checkpoint
            RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)(ss.study, t)
    return ss


def _slot_done(sweep: Sweep, slot: int) -> bool:
    folder = sweep.trial_folder(slot)
    info = read_run(folder) if folder else None
    return info is not None and info.state in ("finished", "diverged", "pruned")


# --- workers ---------------------------------------------------------------------------------------------


def _work(sweep: Sweep, ss: st.SweepStudy, workers: Workers) -> SweepResult:
    if workers.count < 1:
        raise SweepError("--workers: at least 1")
    handle = workers.handle or RunHandle()
    if workers.count == 1:
        _worker(sweep, ss, workers, handle).run()
    else:
        _run_processes(sweep, ss, workers, handle)
    return _result(sweep, ss)


def _worker(sweep: Sweep, ss: st.SweepStudy, workers: Workers, handle: RunHandle | None) -> Worker:
    """The worker that trains in this process."""
    return Worker(
        sweep, ss, listener=workers.listener, handle=handle, on_trial=workers.on_trial, grace_s=workers.grace_s
    )


def worker_command(sweep: Sweep, grace_s: float) -> list[str]:
    return [sys.executable, "-m", "engine", "sweep", "--join", str(sweep.path), "--grace", f"{grace_s:g}", "--quiet"]


def _run_processes(sweep: Sweep, ss: st.SweepStudy, workers: Workers, handle: RunHandle) -> None:
    """`workers.count` worker processes, each with its share of the machine; this process follows the
    study, telling `on_trial` of each slot as it ends, until every worker has exited."""
    from engine.compute.cores import plan_workers, visible_gpus, worker_env

    shares = plan_workers(workers.count, visible_gpus(), workers.gpus_per_trial)
    logs = sweep.path / "workers"
    logs.mkdir(exist_ok=True)
    procs = []
    url = st.storage_url_of(sweep, workers.storage_url)
    for i, share in enumerate(shares, 1):
        env = worker_env(share)
        env.pop(STORAGE_ENV, None)  # a journal sweep's workers read the journal, whatever the shell exports
        if url:
            env[STORAGE_ENV] = url  # password and all: in the environment, never on a command line that ps shows
        with open(logs / f"worker-{i}.log", "a") as log:
            log.write(f"worker {i}: {share.describe()}\n")
            log.flush()
            procs.append(
                subprocess.Popen(
                    worker_command(sweep, workers.grace_s),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=os.getcwd(),
                )
            )
    told: set[int] = set()
    stopped = False
    try:
        while any(p.poll() is None for p in procs):
            if handle.stop_requested and not stopped:
                st.set_sweep_state(ss, "stopped")  # every worker stops its trial at the next batch
                stopped = True
            _tell_ended(sweep, ss, told, workers.on_trial)
            time.sleep(FOLLOW_EVERY_S)
    except KeyboardInterrupt:  # a second Ctrl+C: the workers heard it too (one process group)
        for p in procs:
            p.wait()
        raise
    _tell_ended(sweep, ss, told, workers.on_trial)


def _tell_ended(sweep: Sweep, ss: st.SweepStudy, told: set[int], on_trial: TrialCallback | None) -> None:
    from optuna.trial import TrialState

    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    for slot, t in sorted(st.latest_by_slot(ss.trials()).items()):
        if t.state in ended and t.number not in told:
            told.add(t.number)
            if on_trial is not None:
                on_trial(slot, len(sweep.trials), trial_row(sweep, slot, sweep.trial_folder(slot)))


def _result(sweep: Sweep, ss: st.SweepStudy) -> SweepResult:
    waiting, running = st.open_slots(ss)
    rows = st.with_study_rows(sweep, ss, results_table(sweep.path))
    if not waiting and not running:
        return SweepResult(sweep.path, "finished", rows)
    done = len(sweep.trials) - waiting - running
    left = f"{waiting} waiting" + (f", {running} still running elsewhere" if running else "")
    msg = (
        f"sweep stopped with {done} of {len(sweep.trials)} trials ended ({left}); "
        f"continue with: cnnlab sweep --resume {sweep.path}"
    )
    return SweepResult(sweep.path, "stopped", rows, msg)
