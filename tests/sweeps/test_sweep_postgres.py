"""A sweep's study in a real PostgreSQL database: two worker processes on one machine, and a worker
"on another machine" (its own runs folder, reaching the sweep through the database alone).

The server is the test's own (tests.sweeps.pg_server)."""

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState

from engine.cli import main
from engine.sweeps import study as st
from engine.sweeps.folder import Sweep
from engine.sweeps.plan import Workers
from engine.sweeps.runner import STORAGE_ENV, create_sweep, run_sweep
from tests.sweeps.pg_server import postgres_server
from tests.tiny import tiny_experiment

SMALL = {
    "data.train_subset": 256,
    "data.test_split": 0.25,
    "train.epochs": 1,
    "train.batch_size": 64,
    "train.precision": "fp32",
}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.mark.slow
def test_two_workers_share_a_study_in_postgresql(tmp_path, postgres_url):
    result = run_sweep(
        tiny_experiment(**SMALL),
        runs_dir=tmp_path / "runs",
        grid={"optim.lr": [0.05, 0.02], "optim.momentum": [0.9, 0.5]},
        workers=Workers(count=2, storage_url=postgres_url),
    )
    assert result.state == "finished", result.message
    assert not (result.path / st.JOURNAL_FILE).exists()  # the study is in the database
    sweep = Sweep.load(result.path)
    assert sweep.spec["storage_url"] == postgres_url  # no password in it to hide
    ss = st.load_study(sweep, st.open_storage(url=postgres_url))
    trials = ss.trials()
    assert sorted(st.slot_of(t) for t in trials) == [1, 2, 3, 4]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len(Counter(t.user_attrs[st.WORKER] for t in trials)) == 2
    assert {r["state"] for r in result.rows} == {"finished"}


@pytest.mark.slow
def test_a_worker_on_another_machine_joins_through_the_database(tmp_path, postgres_url, capsys):
    """Machine A makes the sweep and trains; machine B (another runs folder, no access to A's)
    joins with --storage and --study and trains slots into its own folder; A's table has them all."""
    sweep, ss = create_sweep(
        tiny_experiment(**SMALL),
        runs_dir=tmp_path / "a",
        grid={"optim.lr": [0.05, 0.02, 0.01, 0.005]},
        storage_url=postgres_url,
    )
    st.set_sweep_state(ss, "paused")  # until B is there
    b_runs = tmp_path / "b"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop(STORAGE_ENV, None)
    b = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "sweep",
            "--join",
            "--storage",
            postgres_url,
            "--study",
            ss.name,
            "--runs-dir",
            str(b_runs),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    end = time.monotonic() + 120
    while not st.workers_of(ss):  # waiting for B to say it has joined (a state, not a time)
        assert b.poll() is None, b.stdout.read()
        assert time.monotonic() < end, "machine B's worker never joined"
        time.sleep(0.05)
    st.set_sweep_state(ss, "running")
    # A's worker starts once B holds a trial, so that each machine has work to do.
    while not any(t.state == TrialState.RUNNING for t in ss.trials()):
        assert b.poll() is None, b.stdout.read()
        assert time.monotonic() < end, "machine B's worker never took a trial"
        time.sleep(0.05)
    code = main(["sweep", "--resume", str(sweep.path), "--storage", postgres_url])
    out = capsys.readouterr().out
    b_out, _ = b.communicate(timeout=120)
    assert code == 0 and b.returncode == 0, b_out
    b_sweep = Sweep.load(b_runs / ss.name)  # made on B from the study's own sweep.toml
    assert b_sweep.trials == sweep.trials and b_sweep.study_name == ss.name
    b_slots = sorted(i for i in range(1, 5) if b_sweep.trial_folder(i))
    a_slots = sorted(i for i in range(1, 5) if sweep.trial_folder(i))
    assert b_slots and a_slots and sorted(a_slots + b_slots) == [1, 2, 3, 4]  # shared, each slot once
    # A's results table has B's trials too, from the study, with their figures
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()[:1].isdigit()}
    assert len(rows) == 4 and all("finished" in line for line in rows.values()), out
