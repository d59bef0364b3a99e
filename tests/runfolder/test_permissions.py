"""Permissions on a shared machine: what cnnlab creates takes the umask's modes, except the files that
are commands to a run or claims on the machine (a run's control folder and its commands, its lock,
the core claims), which no other user may write whatever the umask; a runs folder this user may not
write is one line naming it and its owner.

Tests run as root in CI, where permissions do not bind: those that need them to bind are skipped
there, the umask ones work as any user."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from engine.cli import main
from engine.compute.threads import CoreShare
from engine.files import os_error_text, user_name
from engine.runfolder import control
from engine.runfolder.folder import RunFolder, ensure_runs_dir
from engine.runfolder.lock import RunLock
from engine.sweeps.folder import SWEEP_FILE, Sweep
from engine.training import autotune
from tests.tiny import tiny_experiment

AS_ROOT = os.geteuid() == 0


@pytest.fixture
def umask():
    """Set the process's umask for the test; the one before is put back after."""
    before = os.umask(0o022)

    def set_to(mask: int) -> None:
        os.umask(mask)

    yield set_to
    os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _made_by_cnnlab(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """A run folder with its files, a command sent to it, its lock taken, a core claim, a sweep folder
    and the autotune cache: one of each kind of thing cnnlab writes."""
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNLAB_CLAIMS", str(tmp_path / "claims"))
    run = RunFolder.create(tmp_path / "runs", tiny_experiment())
    control.send(run.path, "stop")
    lock = RunLock(run.path)
    lock.acquire()
    lock.release()
    share = CoreShare(folder=tmp_path / "claims")
    share.start()
    (claim,) = (tmp_path / "claims").glob("*.claim")
    claim_mode = _mode(claim)
    share.close()
    sweep = Sweep.create(tmp_path / "runs", tiny_experiment(), [{}])
    autotune.keep("k", {"precision": "fp32", "channels_last": False})
    (command,) = (run.path / control.CONTROL_DIR).glob("*.json")
    return {
        "run folder": run.path,
        "config.toml": run.path / "config.toml",
        "status.json": run.path / "status.json",
        "sweep folder": sweep.path,
        "sweep.toml": sweep.path / SWEEP_FILE,
        "autotune cache": autotune.cache_path(),
        "control folder": run.path / control.CONTROL_DIR,
        "command": command,
        "lock": run.path / ".lock",
        "claims folder": tmp_path / "claims",
        "claim": claim_mode,
    }


COMMANDS = ("control folder", "command", "lock", "claims folder", "claim")


def _modes(made: dict) -> dict[str, int]:
    return {k: v if isinstance(v, int) else _mode(v) for k, v in made.items()}


def test_with_umask_000_nothing_that_commands_a_run_is_world_writable(tmp_path, monkeypatch, umask):
    umask(0o000)
    modes = _modes(_made_by_cnnlab(tmp_path, monkeypatch))
    writable = {k for k in COMMANDS if modes[k] & 0o022}
    assert not writable, {k: oct(modes[k]) for k in writable}
    assert modes["status.json"] == 0o666 and modes["run folder"] == 0o777  # the rest is as the umask asks


def test_a_private_umask_keeps_everything_private(tmp_path, monkeypatch, umask):
    umask(0o077)
    modes = _modes(_made_by_cnnlab(tmp_path, monkeypatch))
    folders = {k for k in modes if "folder" in k}
    assert {k: oct(m) for k, m in modes.items() if k in folders and m != 0o700} == {}
    assert {k: oct(m) for k, m in modes.items() if k not in folders and m != 0o600} == {}


def test_a_world_writable_control_folder_of_before_is_closed(tmp_path, umask):
    run = RunFolder.create(tmp_path / "runs", tiny_experiment())
    folder = run.path / control.CONTROL_DIR
    folder.mkdir()
    folder.chmod(0o777)
    control.send(run.path, "pause")
    assert _mode(folder) == 0o755


@pytest.mark.skipif(not AS_ROOT, reason="only root can give a file to another user")
def test_a_command_another_user_put_in_the_control_folder_is_not_obeyed(tmp_path):
    run = RunFolder.create(tmp_path / "runs", tiny_experiment())
    control.send(run.path, "pause")
    (planted,) = (run.path / control.CONTROL_DIR).glob("*.json")
    os.chown(planted, 65534, 65534)  # as if another user had written it into a folder open to all
    control.send(run.path, "checkpoint")
    assert [c.command for c in control.ControlReader(run.path).read(force=True)] == ["checkpoint"]


def _other_users_folder(tmp_path: Path) -> Path:
    if AS_ROOT:
        folder = tmp_path / "theirs"
        folder.mkdir()
        os.chown(folder, 65534, 65534)
        return folder
    return Path("/")  # root's


def test_permission_denied_names_the_folder_and_its_owner(tmp_path):
    folder = _other_users_folder(tmp_path)
    owner, me = user_name(folder.stat().st_uid), user_name(os.geteuid())
    text = os_error_text(PermissionError(errno.EACCES, "Permission denied", str(folder / "missing" / "run-1")))
    assert text == (
        f"permission denied: {folder / 'missing' / 'run-1'} "
        f"({folder} belongs to {owner}; this is {me}: give a folder of your own)"
    )
    mine = tmp_path / "mine"
    mine.mkdir()
    assert os_error_text(PermissionError(errno.EACCES, "x", str(mine / "a"))) == f"permission denied: {mine / 'a'}"


@pytest.mark.skipif(AS_ROOT, reason="root writes in any folder: permissions do not bind")
@pytest.mark.parametrize("where", ["/", "/cnnlab-runs-of-a-test"])
def test_a_runs_folder_this_user_cannot_write_is_one_line(tmp_path, capsys, where):
    with pytest.raises(PermissionError):
        ensure_runs_dir(Path(where))
    code = main(["run", "shapes-demo", "--set", "train.epochs=1", "--runs-dir", where])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "permission denied" in err and "belongs to root" in err, err


@pytest.mark.skipif(AS_ROOT, reason="root writes in any folder: permissions do not bind")
def test_a_read_only_runs_folder_of_ones_own_is_one_line(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    try:
        code = main(["run", "shapes-demo", "--set", "train.epochs=1", "--runs-dir", str(runs)])
    finally:
        runs.chmod(0o755)
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and f"permission denied: {runs}" in err, err
