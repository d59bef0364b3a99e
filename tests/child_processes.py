"""Real cnnlab processes for the tests that steer, signal and kill them: started with one thread each,
waited on through their run folder's status.json (states and acknowledgements), never for a time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from engine.runfolder.folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 120.0  # bounds a test that would hang; the loops below wait for states


def env(runs: Path) -> dict[str, str]:
    return {**os.environ, "CNNLAB_RUNS": str(runs), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def cnnlab(*args: str, runs: Path, timeout: float = DEADLINE_S) -> subprocess.CompletedProcess:
    """`cnnlab ARGS` (as python -m engine) to its end."""
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=ROOT,
        env=env(runs),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*args: str, runs: Path) -> subprocess.Popen:
    """`cnnlab ARGS` in the background, its output kept for a failure's message."""
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        cwd=ROOT,
        env=env(runs),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate, what: str, proc: subprocess.Popen | None = None, timeout: float = DEADLINE_S):
    """Poll until `predicate()` returns something true (returned); fails if `proc` ends first."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}:\n{output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # a poll interval, not a synchronisation: the loop waits for the state


def the_run(runs: Path, proc: subprocess.Popen | None = None) -> Path:
    """The one run folder under `runs`, once its trainer has written its first batch's place."""

    def found():
        folders = [p for p in runs.glob("*") if (p / "config.toml").exists()] if runs.is_dir() else []
        return folders[0] if folders and progress(folders[0]) else None

    return wait_for(found, "the run to train its first batches", proc)


def status(path: Path) -> dict:
    return RunFolder(path).status()


def progress(path: Path) -> dict:
    return status(path).get("progress") or {}


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
