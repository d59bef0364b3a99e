"""Sweeps on many workers, through their Optuna study: two worker processes on one grid, a worker
killed mid-trial whose trial another resumes, `--join` from a second process, TPE, the median
pruner, and a stop of the whole sweep. Real processes, tiny trials (shapes, a few hundred images)."""

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState

from engine.cli import main
from engine.events import RunStarted
from engine.runfolder.folder import RunFolder
from engine.runfolder.table import list_runs, read_run
from engine.sweeps import study as st
from engine.sweeps.folder import Sweep, results_table
from engine.sweeps.plan import Workers
from engine.sweeps.runner import create_sweep, join_sweep, resume_sweep, run_sweep, worker_command
from engine.sweeps.worker import TRIAL_LINK
from tests.tiny import tiny_experiment

# fp32: bf16 is emulated (slow) on CPUs without it; a carved test split keeps each trial's test pass short
SMALL = {
    "data.train_subset": 256,
    "data.test_split": 0.25,
    "train.epochs": 1,
    "train.batch_size": 64,
    "train.precision": "fp32",
}
GRID6 = {"optim.lr": [0.05, 0.02, 0.01], "optim.momentum": [0.9, 0.5]}
REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _study(path: Path) -> st.SweepStudy:
    return st.load_study(Sweep.load(path))


def _by_slot(ss: st.SweepStudy) -> dict[int, list]:
    out: dict[int, list] = {}
    for t in ss.trials():
        out.setdefault(st.slot_of(t), []).append(t)
    return out


def _until(check, what: str, timeout: float = 120.0, proc: subprocess.Popen | None = None):
    """Wait for a state (never for a time): `check()` true, or fail saying what never happened."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the worker exited ({proc.returncode}) before {what}: {proc.stdout and proc.stdout.read()}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_two_worker_processes_run_a_six_point_grid_each_trial_once(tmp_path):
    lines = []
    result = run_sweep(
        tiny_experiment(**SMALL),
        runs_dir=tmp_path / "runs",
        grid=GRID6,
        preset="shapes-demo",
        workers=Workers(count=2, on_trial=lambda i, n, row: lines.append((i, n, row["state"]))),
    )
    assert result.state == "finished", result.message
    assert sorted(lines) == [(i, 6, "finished") for i in range(1, 7)]  # each slot told once, as it ended
    rows = results_table(result.path)
    assert sorted(r["trial"] for r in rows) == [1, 2, 3, 4, 5, 6] and {r["state"] for r in rows} == {"finished"}

    ss = _study(result.path)
    trials = ss.trials()
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)  # no slot ran twice
    assert sorted(st.slot_of(t) for t in trials) == [1, 2, 3, 4, 5, 6]
    workers = Counter(t.user_attrs[st.WORKER] for t in trials)
    assert len(workers) == 2, workers  # both processes trained
    sweep = Sweep.load(result.path)
    folders = [p for p in result.path.iterdir() if (p / "config.toml").exists()]
    assert len(folders) == 6
    for t in trials:
        folder = sweep.trial_folder(st.slot_of(t))
        assert t.user_attrs[st.RUN] == folder.name
        assert json.loads((folder / TRIAL_LINK).read_text())["trials"] == [t.number]  # the folder names its trial
        exp = RunFolder(folder).experiment()
        assert {"optim.lr": exp.optim.lr, "optim.momentum": exp.optim.momentum} == sweep.trials[st.slot_of(t) - 1]
        assert t.value == pytest.approx(read_run(folder).best_val_acc)
    # the cores were split: each worker pinned to its own core
    logs = sorted((result.path / "workers").glob("worker-*.log"))
    shares = [log.read_text().splitlines()[0] for log in logs]
    assert len(shares) == 2 and len(set(shares)) == 2 and all("1 core" in s for s in shares), shares


@pytest.mark.slow
def test_a_worker_killed_mid_trial_has_its_trial_resumed_by_another(tmp_path):
    exp = tiny_experiment(**{**SMALL, "data.train_subset": 1024, "train.epochs": 3})
    sweep, ss = create_sweep(exp, runs_dir=tmp_path / "runs", grid={"optim.lr": [0.05]})
    doomed = subprocess.Popen(
        worker_command(sweep, grace_s=3), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )

    def checkpointed():
        folder = sweep.trial_folder(1)
        return folder if folder and (folder / "checkpoints" / "last.pt").exists() else None

    folder = _until(checkpointed, "the first epoch's checkpoint", proc=doomed)
    first_line = (folder / "metrics.jsonl").read_text().splitlines()[0]
    doomed.kill()  # SIGKILL: no handler runs, nothing is told
    doomed.wait()
    (dead,) = _by_slot(ss)[1]
    assert dead.state == TrialState.RUNNING  # as the dead worker left it

    started = []
    joined, state = join_sweep(
        sweep.path, Workers(grace_s=3, listener=lambda ev: started.append(ev) if isinstance(ev, RunStarted) else None)
    )
    assert state == "finished"
    assert len(started) == 1 and started[0].start_epoch >= 1  # resumed from the checkpoint, not from scratch
    assert started[0].run_dir == str(folder)
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert lines[0] == first_line  # the epoch the dead worker trained is kept as it was
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    assert read_run(folder).state == "finished"
    slot = sorted(_by_slot(ss)[1], key=lambda t: t.number)
    assert [t.state for t in slot] == [TrialState.FAIL, TrialState.COMPLETE]  # run once to its end
    assert slot[1].system_attrs["failed_trial"] == dead.number
    assert json.loads((folder / TRIAL_LINK).read_text())["trials"] == [dead.number, slot[1].number]
    assert len([p for p in sweep.path.iterdir() if (p / "config.toml").exists()]) == 1


@pytest.mark.slow
def test_join_from_a_second_process_shares_the_work(tmp_path, capsys):
    sweep, ss = create_sweep(
        tiny_experiment(**SMALL), runs_dir=tmp_path / "runs", grid={"optim.lr": [0.05, 0.02, 0.01, 0.005]}
    )
    st.set_sweep_state(ss, "paused")  # held until the second terminal's worker is there
    other = subprocess.Popen(
        [sys.executable, "-m", "engine", "sweep", "--join", str(sweep.path)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _until(lambda: st.workers_of(ss), "the joined worker to register", proc=other)
    st.set_sweep_state(ss, "running")
    # This terminal's worker starts once the joined one holds a trial, so that each has work to do.
    _until(lambda: any(t.state == TrialState.RUNNING for t in ss.trials()), "the joined worker's trial", proc=other)
    code = main(["sweep", "--resume", str(sweep.path)])  # this terminal: resume (running already) works too
    out = capsys.readouterr().out
    joined_out, _ = other.communicate(timeout=120)
    assert code == 0 and other.returncode == 0, joined_out
    trials = ss.trials()
    assert sorted(st.slot_of(t) for t in trials) == [1, 2, 3, 4]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    by_worker = Counter(t.user_attrs[st.WORKER] for t in trials)
    assert len(by_worker) == 2, by_worker
    ours = sum(f"trial {i}/4 finished" in out for i in range(1, 5))
    theirs = sum(f"trial {i}/4 finished" in joined_out for i in range(1, 5))
    assert ours >= 1 and theirs >= 1 and ours + theirs == 4, (out, joined_out)
    assert "sweep results" in out


@pytest.mark.slow
def test_tpe_searches_a_random_range(tmp_path, capsys):
    lr = {"low": 0.001, "high": 0.1, "log": True}
    code = main(
        ["sweep", "shapes-demo", "--random", "optim.lr=0.001:0.1:log", "--trials", "5", "--sampler", "tpe", "--plan"]
    )
    assert code == 0 and "trial 5: drawn by TPE when it starts" in " ".join(capsys.readouterr().out.split())
    result = run_sweep(
        tiny_experiment(**SMALL), runs_dir=tmp_path / "runs", random={"optim.lr": lr}, trials=5, sampler="tpe"
    )
    assert result.state == "finished"
    ss = _study(result.path)
    trials = ss.trials()
    assert len(trials) == 5 and all(t.state == TrialState.COMPLETE for t in trials)
    lrs = [t.params["optim.lr"] for t in trials]
    assert len(set(lrs)) == 5 and all(0.001 <= v <= 0.1 for v in lrs)
    sweep = Sweep.load(result.path)
    assert sweep.varied == ["optim.lr"] and sweep.spec["sampler"] == "tpe"
    for t in trials:  # what TPE drew is what the run folder trained
        assert RunFolder(sweep.trial_folder(st.slot_of(t))).experiment().optim.lr == t.params["optim.lr"]
    rows = results_table(result.path)
    assert sorted(r["optim.lr"] for r in rows) == sorted(lrs)


@pytest.mark.slow
def test_the_median_pruner_prunes_a_hopeless_trial(tmp_path, capsys):
    # two trials that learn, then one whose lr is far too low to move in its first epoch
    exp = tiny_experiment(**{**SMALL, "data.train_subset": 640, "data.test_split": 0.1, "train.epochs": 3})
    result = run_sweep(exp, runs_dir=tmp_path / "runs", grid={"optim.lr": [0.05, 0.03, 1e-7]}, pruner="median")
    assert result.state == "finished"
    sweep = Sweep.load(result.path)
    states = {r["trial"]: r["state"] for r in results_table(result.path)}
    assert states == {1: "finished", 2: "finished", 3: "pruned"}
    hopeless = sweep.trial_folder(3)
    info = read_run(hopeless)
    assert info.state == "pruned" and info.epochs_done < 3 and "median pruner" in info.message
    assert (hopeless / "checkpoints" / "last.pt").exists()  # its folder is kept
    ss = _study(result.path)
    assert [t.state for t in sorted(ss.trials(), key=st.slot_of)] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    assert {r.state for r in list_runs(tmp_path / "runs")} == {"finished", "pruned"}  # the runs table says so
    assert main(["show", str(result.path)]) == 0 and "pruned" in capsys.readouterr().out


@pytest.mark.slow
def test_stopping_the_sweep_stops_every_worker_and_resume_carries_on(tmp_path, capsys):
    exp = tiny_experiment(**{**SMALL, "data.train_subset": 2048, "train.epochs": 2})
    sweep, ss = create_sweep(exp, runs_dir=tmp_path / "runs", grid={"optim.lr": [0.05, 0.02, 0.01]})
    workers = [
        subprocess.Popen(worker_command(sweep, grace_s=30), env=_env(), stdout=subprocess.DEVNULL) for _ in range(2)
    ]

    def training(slot):
        folder = sweep.trial_folder(slot)
        return folder is not None and read_run(folder).state == "running"

    _until(lambda: training(1) and training(2), "two trials training")
    assert main(["stop", str(sweep.path)]) == 0  # returns once no trial of the sweep trains
    said = " ".join(capsys.readouterr().out.split())
    assert "stopped (2 running trials here told)" in said and "cnnlab sweep --resume" in said
    assert st.sweep_state(ss) == "stopped" and st.open_slots(ss)[1] == 0
    for w in workers:
        assert w.wait(timeout=60) == 130  # each stopped its trial (exit code: stopped) and took no new one
    stopped = [r for r in results_table(sweep.path) if r["state"] == "stopped"]
    assert len(stopped) == 2 and all(r["epochs"] < 2 for r in stopped)
    assert st.open_slots(ss) == (3, 0)  # the stopped trials queued again, beside the one never started
    result = resume_sweep(sweep.path)
    assert result.state == "finished"
    assert {r["state"] for r in result.rows} == {"finished"} and len(result.rows) == 3, [
        (t.number, t.state, t.user_attrs, t.system_attrs) for t in ss.trials()
    ]
    for r in stopped:  # continued in their own folders
        assert sweep.trial_folder(r["trial"]).name == r["run"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["shapes-demo", "--grid", "optim.lr=0.1", "--workers", "0"], ["--workers", "at least 1"]),
        (["shapes-demo", "--grid", "optim.lr=0.1", "--workers", "many"], ["--workers", "many"]),
        (["shapes-demo", "--grid", "optim.lr=0.1", "--sampler", "tpe"], ["tpe", "--random"]),
        (
            ["shapes-demo", "--grid", "optim.lr=0.1", "--storage", "postgresql+psycopg://nobody@127.0.0.1:1/none"],
            ["cannot open the database", "127.0.0.1:1"],
        ),
        (["shapes-demo", "--grid", "optim.lr=0.1", "--storage", "nosuchdb://x"], ["--storage", "nosuchdb"]),
        (["--join", "no-such-folder"], ["not a sweep folder"]),
        (["--join"], ["--storage", "--study"]),
        (["--join", "--storage", "sqlite:///{tmp}/x.db", "--study", "nope"], ["no such study", "nope"]),
    ],
)
def test_sweep_cli_errors_name_what_is_wrong(tmp_path, capsys, argv, words):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = main(["sweep", *argv, "--runs-dir", str(tmp_path / "runs")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    for w in words:
        assert w in err, err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()
