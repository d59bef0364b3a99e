"""The control channel and the run lock, without training: commands arrive once and in order,
garbage is harmless, and a lock is refused while held and freed by a kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from engine.runfolder import control
from engine.runfolder.lock import RunLock, RunLocked, holder, is_held


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_commands_arrive_once_in_the_order_sent(tmp_path):
    clock = FakeClock()
    reader = control.ControlReader(tmp_path, clock=clock)
    [control.send(tmp_path, c) for c in ("pause", "continue", "checkpoint", "stop")]
    assert [c.command for c in reader.read()] == ["pause", "continue", "checkpoint", "stop"]
    assert [c.id for c in reader.read(force=True)] == []
    assert list((tmp_path / control.CONTROL_DIR).iterdir()) == []


def test_the_folder_is_read_at_most_every_half_second(tmp_path):
    clock = FakeClock()
    reader = control.ControlReader(tmp_path, clock=clock)
    assert reader.read() == []
    control.send(tmp_path, "stop")
    clock.now += 0.2
    assert reader.read() == []  # too soon: the trainer's batches pay nothing between polls
    clock.now += 0.4
    assert [c.command for c in reader.read()] == ["stop"]


def test_garbage_in_the_control_folder_is_removed_and_ignored(tmp_path):
    folder = tmp_path / control.CONTROL_DIR
    folder.mkdir()
    (folder / "00000000000000000001-a.json").write_bytes(b"\x80\x81 not json")
    (folder / "00000000000000000002-b.json").write_text('{"command": "rm -rf /", "id": "x"}')
    (folder / "00000000000000000003-c.json").write_text('["stop"]')
    (folder / "00000000000000000004-d.json").write_text('{"command": "stop", "id": 7}')
    (folder / "notes.txt").write_text("stop")
    (folder / "00000000000000000005-e.json").write_text("{" * 100_000)
    (folder / ".00000000000000000006-f.json.tmp").write_text('{"command": "stop", "id": "half"}')
    reader = control.ControlReader(tmp_path)
    assert reader.read() == []
    assert [p.name for p in folder.iterdir()] == [".00000000000000000006-f.json.tmp"]  # still being written


def test_an_unknown_command_is_refused_by_the_sender(tmp_path):
    with pytest.raises(ValueError, match="unknown command"):
        control.send(tmp_path, "explode")


def test_commands_from_before_a_resume_are_dropped(tmp_path):
    control.send(tmp_path, "pause")
    import time

    start = time.time_ns()
    fresh = control.send(tmp_path, "stop")
    reader = control.ControlReader(tmp_path)
    assert reader.drop_older_than(start) == 1
    assert [c.id for c in reader.read()] == [fresh.id]


HOLD = """
import sys, time
from engine.runfolder.lock import RunLock
lock = RunLock(sys.argv[1]); lock.acquire()
print("held", flush=True)
sys.stdin.readline()
"""


def test_a_second_trainer_is_refused_and_a_kill_frees_the_lock(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        assert is_held(tmp_path) is True
        with pytest.raises(RunLocked, match=f"pid {proc.pid} on "):
            RunLock(tmp_path).acquire(attempts=2)
        assert f"pid {proc.pid}" in holder(tmp_path)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert is_held(tmp_path) is False
        with RunLock(tmp_path):
            assert is_held(tmp_path) is True
        assert is_held(tmp_path) is False
    finally:
        proc.kill()
        proc.wait()


def test_two_locks_in_one_process_conflict(tmp_path):
    """The console trains on a thread: a second resume from the same process is refused too."""
    with RunLock(tmp_path):
        with pytest.raises(RunLocked):
            RunLock(tmp_path).acquire(attempts=1)


def test_a_run_without_a_lock_file_is_not_judged_by_it(tmp_path):
    assert is_held(tmp_path) is None
