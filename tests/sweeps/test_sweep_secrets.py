"""A database URL's password is never written into a sweep folder, printed, nor put on a command line
(`ps` shows every user's argv): it is stored without its password, handed to the processes cnnlab
starts in their environment (CNNLAB_SWEEP_STORAGE), and otherwise found where psql finds it
(PGPASSWORD, ~/.pgpass), libpq being psycopg's."""

import os
import subprocess
from pathlib import Path

import pytest

from engine.cli import main
from engine.sweeps import launch
from engine.sweeps import runner as sweep_runner
from engine.sweeps import study as st
from engine.sweeps.folder import Sweep
from tests.sweeps.pg_server import postgres_server
from tests.tiny import tiny_experiment, tiny_sets

SECRET = "s3cret"
POPEN = subprocess.Popen  # the real one: the tests put a recorder in its place
SMALL = {"data.train_subset": 256, "data.test_split": 0.25, "train.epochs": 1, "train.precision": "fp32"}


def _with_password(url: str) -> str:
    return url.replace("cnnlab@", f"cnnlab:{SECRET}@")


def _files_holding(folder: Path, text: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


class _Recorder:
    """subprocess.Popen as the sweep code calls it, each call's argv and environment kept."""

    def __init__(self, real: bool):
        self.real, self.calls = real, []

    def __call__(self, argv, **kwargs):
        self.calls.append((list(argv), dict(kwargs.get("env") or os.environ)))
        return POPEN(argv, **kwargs) if self.real else POPEN(["true"])


def test_a_url_is_written_down_without_its_password(monkeypatch):
    monkeypatch.delenv(st.STORAGE_ENV, raising=False)
    url = f"postgresql+psycopg://cnnlab:{SECRET}@db.lab:5432/sweeps?sslmode=require"
    assert st.strip_password(url) == "postgresql+psycopg://cnnlab@db.lab:5432/sweeps?sslmode=require"
    assert SECRET not in st.hide_password(url) and "***" in st.hide_password(url)
    assert st.full_url(url) == url  # a URL with its password is used as given
    bare = st.strip_password(url)
    assert st.full_url(bare) == bare  # nothing in the environment: libpq's PGPASSWORD, ~/.pgpass apply
    monkeypatch.setenv(st.STORAGE_ENV, url)
    assert st.full_url(bare) == url  # the environment's URL of the same database brings the password
    assert st.full_url("postgresql+psycopg://cnnlab:***@db.lab:5432/sweeps?sslmode=require") == url  # older cnnlab
    other = "postgresql+psycopg://cnnlab@db.lab:5433/sweeps"
    assert st.full_url(other) == other  # another database is never given this one's password


def test_a_url_that_does_not_parse_is_not_echoed(tmp_path, capsys):
    code = main(
        [
            "sweep",
            "shapes-demo",
            "--grid",
            "optim.lr=0.1",
            "--storage",
            f"pg://u:{SECRET}@h:port",
            "--runs-dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "not a database URL" in err and len(err.strip().splitlines()) == 1, err
    assert SECRET not in err and "Traceback" not in err


def test_a_detached_sweep_gets_the_url_in_its_environment_not_its_argv(tmp_path, monkeypatch):
    full = f"postgresql+psycopg://cnnlab:{SECRET}@db.lab/sweeps"
    db_sweep = Sweep.create(tmp_path, tiny_experiment(), [{}], spec={"storage_url": st.strip_password(full)})
    journal_sweep = Sweep.create(tmp_path, tiny_experiment(), [{}])
    rec = _Recorder(real=False)
    monkeypatch.setattr(launch.subprocess, "Popen", rec)
    monkeypatch.setenv(st.STORAGE_ENV, full)  # the shell that started the console exports it
    launch.resume_detached(db_sweep.path, 2).wait()
    launch.resume_detached(journal_sweep.path, 2).wait()
    (db_argv, db_env), (journal_argv, journal_env) = rec.calls
    assert SECRET not in " ".join(db_argv + journal_argv)
    assert db_env[st.STORAGE_ENV] == full  # the child reaches the database
    assert st.STORAGE_ENV not in journal_env  # a journal sweep's child is not sent to a database
    assert not _files_holding(tmp_path, SECRET)


@pytest.fixture(scope="module")
def locked_db():
    """A server that wants the password SECRET."""
    with postgres_server(password=SECRET) as url:
        yield url


@pytest.mark.slow
def test_a_sweep_on_a_database_with_a_password_leaves_it_nowhere(tmp_path, monkeypatch, capsys, locked_db):
    """Two worker processes through the CLI, the URL in CNNLAB_SWEEP_STORAGE: no file of the sweep
    folder (sweep.toml, study's copy, trial.json, status.json, worker logs), no line printed and no
    child's argv holds the password, and the children reached the database (the trials finished)."""
    rec = _Recorder(real=True)
    monkeypatch.setattr(sweep_runner.subprocess, "Popen", rec)
    monkeypatch.setenv(st.STORAGE_ENV, _with_password(locked_db))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    runs = tmp_path / "runs"
    argv = ["sweep", "shapes-demo", *tiny_sets(**SMALL), "--grid", "optim.lr=0.05,0.02", "--workers", "2"]
    code = main([*argv, "--runs-dir", str(runs)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    (sweep_dir,) = [p for p in runs.iterdir() if (p / "sweep.toml").exists()]
    sweep = Sweep.load(sweep_dir)
    assert sweep.spec["storage_url"] == locked_db
    assert out.count("finished") >= 2 and f"--storage {locked_db} --study" in out
    assert len(rec.calls) == 2 and all(env[st.STORAGE_ENV] == _with_password(locked_db) for _, env in rec.calls)
    assert not [argv for argv, _ in rec.calls if SECRET in " ".join(argv)]
    assert (sweep_dir / "workers").is_dir() and list(sweep_dir.rglob("trial.json"))
    assert not _files_holding(sweep_dir, SECRET)
    assert SECRET not in out + err
    ss = st.load_study(sweep, st.open_storage(url=_with_password(locked_db)))
    assert SECRET not in ss.study.user_attrs[st.DOC_ATTR]  # the study's copy of sweep.toml, for other machines


@pytest.mark.slow
def test_a_stored_url_takes_the_password_where_psql_does(tmp_path, monkeypatch, capsys, locked_db):
    """A sweep folder whose sweep.toml names the database without its password: PGPASSWORD, then
    ~/.pgpass, then CNNLAB_SWEEP_STORAGE open it; with none, one line says the database refused."""
    sweep = Sweep.create(tmp_path, tiny_experiment(), [{}], spec={"storage_url": locked_db})
    for var in (st.STORAGE_ENV, "PGPASSWORD", "PGPASSFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code = main(["stop", str(sweep.path)])
    err = capsys.readouterr().err
    assert code != 0 and "cannot open the database" in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and SECRET not in err
    st.create_study(sweep, st.open_storage(url=_with_password(locked_db)))

    monkeypatch.setenv("PGPASSWORD", SECRET)
    assert st.load_study(sweep).trials()  # the stored URL, libpq's PGPASSWORD
    monkeypatch.delenv("PGPASSWORD")
    (tmp_path / "home").mkdir()
    pgpass = tmp_path / "home" / ".pgpass"
    pgpass.write_text(f"127.0.0.1:*:sweeps:cnnlab:{SECRET}\n")
    pgpass.chmod(0o600)  # libpq ignores a .pgpass others can read
    assert st.load_study(sweep).trials()  # ~/.pgpass, as psql reads it
    pgpass.unlink()
    monkeypatch.setenv(st.STORAGE_ENV, _with_password(locked_db))
    assert st.load_study(sweep).trials()
    assert not _files_holding(sweep.path, SECRET)
