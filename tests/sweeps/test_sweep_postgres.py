"""A sweep's study in a real PostgreSQL database: two worker processes on one machine, and a worker
"on another machine" (its own runs folder, reaching the sweep through the database alone).

The server is started here, in a temporary folder on a free local port, with Debian's `postgresql`
binaries (.ci/run installs them); as root, it runs as the `postgres` user (it refuses root)."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
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
from tests.tiny import tiny_experiment

SMALL = {
    "data.train_subset": 256,
    "data.test_split": 0.25,
    "train.epochs": 1,
    "train.batch_size": 64,
    "train.precision": "fp32",
}
REPO = Path(__file__).resolve().parents[2]


def _server_bin() -> Path | None:
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(initdb).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    bindir = _server_bin()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    as_user: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="cnnlab-pg-"))
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        os.chown(data, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else []
        if not as_user:
            pytest.skip("running as root without runuser: cannot start the server as the postgres user")
    port = _free_port()
    pg = data / "db"
    run = dict(check=True, capture_output=True, text=True)
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(pg), "-U", "cnnlab", "--auth=trust"], **run)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(pg), "-o", options, "-l", str(data / "log"), "-w", "start"], **run
    )
    try:
        subprocess.run(
            [*as_user, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "cnnlab", "sweeps"], **run
        )
        yield f"postgresql+psycopg://cnnlab@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(pg), "-m", "fast", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(data, ignore_errors=True)


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
