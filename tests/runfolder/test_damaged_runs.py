"""A damaged run folder is one row marked damaged, saying what is wrong; every view still lists,
shows and compares the good runs beside it, and a running run is judged by its lock, pid and heartbeat."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.runfolder.folder import RunFolder
from engine.runfolder.lock import RunLock
from engine.runfolder.table import list_runs, read_run
from tests.fake_runs import make_run, summary_of

GOOD = "20250122-072031-shapes-demo-ab12"

# Each failure the reliability test found, and what the row must say about it.
DAMAGE = {
    "status-bytes": ("status.json", bytes(range(256)) * 2, "status.json is not text"),
    "status-list": ("status.json", b"[1, 2, 3]", "status.json holds a list"),
    "status-pid-text": ("status.json", b'{"state": "running", "pid": "1234"}', 'pid is "1234"'),
    "status-folder": ("status.json", None, "status.json is a folder"),
    "status-state": ("status.json", b'{"state": 7}', "state is 7"),
    "metrics-1e999": ("metrics.jsonl", b'{"epoch": 1e999}\n', "epoch is inf"),
    "metrics-text": ("metrics.jsonl", b'{"epoch": 1, "val_acc": "high"}\n', 'val_acc is "high"'),
    "metrics-middle": ("metrics.jsonl", b'{"epoch": 1}\n{"epo\n{"epoch": 2}\n', "line 2 is not valid JSON"),
    "config-toml": ("config.toml", b"[train\nepochs = 3\n", "config.toml: not valid TOML"),
    "config-binary": ("config.toml", b"\xff\xfe\x00garbage", "config.toml: is not UTF-8"),
    "config-shape": ("config.toml", b"train = 3\n", "[train] is not a table"),
    "summary-list": ("summary.json", b"[]", "summary.json holds a list"),
    "summary-types": ("summary.json", b'{"test_acc": "x", "confusion": [[1, 2]]}', 'test_acc is "x"'),
}


def damaged_runs(runs: Path) -> None:
    make_run(runs, GOOD, summary=summary_of(3))
    make_run(runs, "20250122-081500-shapes-demo-cd34", state="stopped", epochs=5, done=2, lr=0.1)
    for name, (file, content, _) in DAMAGE.items():
        target = make_run(runs, name, summary=summary_of(3)) / file
        if content is None:
            target.unlink()
            target.mkdir()
        else:
            target.write_bytes(content)


def test_every_damaged_folder_is_one_row_saying_what_is_wrong(tmp_path):
    runs = tmp_path / "runs"
    damaged_runs(runs)
    found = {r.id: r for r in list_runs(runs)}
    assert len(found) == 2 + len(DAMAGE)
    assert found[GOOD].state == "finished" and found[GOOD].problems == [] and found[GOOD].test_acc == 1.0
    assert found["20250122-081500-shapes-demo-cd34"].state == "stopped"
    for name, (_, _, words) in DAMAGE.items():
        assert found[name].state == "damaged", name
        assert words in found[name].message, (name, found[name].message)


def test_cnnlab_runs_lists_the_good_runs_and_says_what_is_damaged(tmp_path, capsys):
    runs = tmp_path / "runs"
    damaged_runs(runs)
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert GOOD in out and "finished" in out and "stopped" in out
    for name, (_, _, words) in DAMAGE.items():
        assert name in out
        line = next(line for line in err.splitlines() if line.startswith(f"{name}:"))
        assert "damaged" in line and words in line, line
    assert "Traceback" not in err


@pytest.mark.parametrize("name", list(DAMAGE))
def test_show_of_a_damaged_run_shows_what_reads_and_exits_2(tmp_path, capsys, name):
    runs = tmp_path / "runs"
    damaged_runs(runs)
    assert main(["show", str(runs / name)]) == 2
    out, err = capsys.readouterr()
    assert "damaged: " in out and "is damaged" in err and DAMAGE[name][2] in err
    assert "Traceback" not in err
    assert main(["show", str(runs / GOOD)]) == 0


def test_an_invalid_config_is_named_not_read_as_no_run_folder(tmp_path, capsys):
    runs = tmp_path / "runs"
    path = make_run(runs, "r", state="stopped", epochs=5, done=2)
    (path / "config.toml").write_text("[optim]\nlr = -1\n")
    assert main(["resume", str(path)]) == 2
    said = "".join(capsys.readouterr())
    assert "config.toml" in said and "optim.lr" in said and "no config.toml" not in said
    (path / "config.toml").write_text("[optim\n")
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not valid TOML" in err and "no config.toml" not in err


def test_a_folder_that_is_no_run_is_passed_over_and_named_when_asked_for(tmp_path, capsys):
    runs = tmp_path / "runs"
    make_run(runs, GOOD, summary=summary_of(3))
    (runs / "presets").mkdir()
    (runs / "presets" / "mine.toml").write_text("name = 'mine'\n")
    (runs / "notes").mkdir()
    assert [r.id for r in list_runs(runs)] == [GOOD]
    assert main(["show", str(runs / "notes")]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_a_runs_folder_that_is_a_file_is_bad_input(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.write_text("not a folder")
    assert main(["runs", "--runs-dir", str(runs)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["run", "shapes-demo", "--runs-dir", str(runs / "below")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["run", "shapes-demo", "--runs-dir", str(runs)]) == 2
    assert "is a file" in capsys.readouterr().err


# --- is it still running? ---------------------------------------------------------------------------


def _running(runs: Path, name: str, **status) -> Path:
    path = make_run(runs, name, state="running", epochs=4, done=1)
    doc = {"state": "running", "message": "", "pid": os.getpid(), "host": socket.gethostname(), **status}
    (path / "status.json").write_text(json.dumps(doc))
    return path


def test_the_run_lock_decides_whatever_the_pid_says(tmp_path):
    path = _running(tmp_path, "r", beat=time.time())
    with RunLock(path):
        assert read_run(path).state == "running"
    # The lock is free: the trainer is gone, though the pid in status.json (ours) is alive.
    info = read_run(path)
    assert info.state == "crashed" and "run lock is free" in info.message and info.resumable


def test_a_reused_pid_does_not_make_a_dead_run_read_as_running(tmp_path):
    # No lock file (a run of an older cnnlab): the pid is alive, but its process started after the
    # run's last heartbeat, so it is another process that was handed the same pid.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = _running(tmp_path, "r", pid=child.pid, beat=time.time() - 3600)
        info = read_run(path)
        assert info.state == "crashed" and f"pid {child.pid} is now another process" in info.message
        fresh = _running(tmp_path, "s", pid=child.pid, beat=time.time() + 5)
        assert read_run(fresh).state == "running"
    finally:
        child.kill()
        child.wait()
    assert read_run(fresh).state == "crashed"  # its process has ended


def test_a_run_of_another_machine_is_judged_by_its_heartbeat(tmp_path):
    live = _running(tmp_path, "live", host="gpu-box-7", pid=1, beat=time.time() - 30)
    dead = _running(tmp_path, "dead", host="gpu-box-7", pid=1, beat=time.time() - 3600)
    assert read_run(live).state == "running"
    info = read_run(dead)
    assert info.state == "crashed" and "no heartbeat from gpu-box-7 for 60 minutes" in info.message


def test_a_live_trainer_whose_status_does_not_read_is_running_not_damaged(tmp_path):
    path = _running(tmp_path, "r")
    (path / "status.json").write_bytes(b"\x00\x01")
    with RunLock(path):
        assert read_run(path).state == "running"
    assert read_run(path).state == "damaged"


# --- epochs a resume keeps --------------------------------------------------------------------------


def test_a_metrics_line_without_its_checkpoint_is_not_counted_done(tmp_path):
    # Killed between epoch 3's metrics line and its checkpoint: the resume restarts epoch 3.
    path = make_run(tmp_path, "r", state="running", epochs=5, done=2, pid=2**22 + 1)
    (path / "checkpoints" / "last.pt").write_bytes(b"epoch 2's weights")
    folder = RunFolder(path)
    folder.record_checkpoint(2, "last")
    doc = json.loads((path / "status.json").read_text())
    (path / "status.json").write_text(json.dumps({**doc, "pid": 2**22 + 1}))
    folder.append_metrics({"epoch": 3, "train_loss": 0.5, "val_acc": 0.5})
    info = read_run(path)
    assert info.state == "crashed" and info.epochs_done == 2 and info.resumable
    assert folder.checkpoint_epoch("last") == 2
    # The checkpoint written again after the record (a kill between the two): the file is newer.
    os.utime(path / "checkpoints" / "last.pt", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert folder.checkpoint_epoch("last") is None and read_run(path).epochs_done == 3


# --- the console ------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_runs_screen_lists_damaged_runs_beside_good_ones_and_never_crashes(tmp_path):
    from textual.widgets import DataTable

    from tests.console import Harness, screen_text, wait_until
    from tui.screens.run import RunScreen
    from tui.screens.runs import RunsScreen

    runs = tmp_path / "runs"
    damaged_runs(runs)
    # A preset name and a start time that read as markup if taken for it.
    markup = make_run(runs, "markup", preset="[/bold]x", started="[/red]", summary=summary_of(3))
    app = Harness(runs, RunsScreen(runs))
    async with app.run_test(size=(100, 40)) as pilot:
        table = app.screen.query_one(DataTable)
        total = 2 + len(DAMAGE) + 1
        await wait_until(pilot, lambda: table.row_count == total, what="every run in the table")
        shown = screen_text(app)
        assert "damaged" in shown and "finished" in shown and "stopped" in shown
        assert markup.exists()
        for row in range(total):  # open each run, damaged or not; the app stays up
            table.move_cursor(row=row)
            await pilot.pause()
            info = app.screen.current()
            assert info is not None
            detail = str(app.screen.query_one("#run-detail").render())
            if info.problems:
                assert "damaged" in detail
            await pilot.press("enter")
            await pilot.pause()
            if isinstance(app.screen, RunScreen):
                await pilot.press("b")
            await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back on the runs table")
        await pilot.press("space", "down", "space", "c")  # compare two runs, one of them damaged
        await pilot.pause()
        assert app.is_running
