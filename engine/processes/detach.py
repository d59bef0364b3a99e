"""A run in a process of its own, which outlives the terminal, the SSH session or the console that
started it (`cnnlab run … --detach`, the console's "start detached" and its hand-over on quitting).

The process is `python -m engine resume RUN_DIR` in a new session (start_new_session): no controlling
terminal, so a closed terminal's SIGHUP and the console's Ctrl+C never reach it. Its output goes to
<run>/output.log. Whoever started it follows it through the run folder and steers it through the
control channel, like any other run. A run with train.devices above 1 is torchrun in that session
(engine.processes.torchrun), whose rank 0 takes the run and names torchrun's pid as its launcher.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.runfolder.folder import RunFolder

OUTPUT_LOG = "output.log"
START_TIMEOUT_S = 120.0  # until the process holds the run (python, torch and the data loading before it)


class DetachFailed(Exception):
    """The detached process did not take the run; the message says what it left behind."""


def start_detached(run_dir: Path, epochs: int | None = None) -> subprocess.Popen:
    """Start training (or resuming, or extending to `epochs`) the run in `run_dir` in its own process."""
    run_dir = Path(run_dir).resolve()
    argv = [sys.executable, "-m", "engine", "resume", str(run_dir)]
    if epochs is not None:
        argv += ["--epochs", str(epochs)]
    # The engine package wherever this one is, whatever the current folder.
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    train = _train_config(run_dir)
    if train is not None and train.devices > 1:
        from engine.processes.torchrun import torchrun_argv, torchrun_env

        argv, env = torchrun_argv(run_dir, train.devices, epochs), torchrun_env(train.devices, train.threads)
    env["PYTHONUNBUFFERED"] = "1"  # output.log line by line, as it happens: users tail -f it
    with open(run_dir / OUTPUT_LOG, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
    # Reaped when it ends while this process lives (else a zombie would keep its pid looking alive).
    threading.Thread(target=proc.wait, name="cnnlab-detached-reaper", daemon=True).start()
    return proc


def _train_config(run_dir: Path):
    try:
        return RunFolder(run_dir).experiment().train
    except (OSError, ValueError):
        return None  # the detached process says what is wrong with it


def _taken_by(st: dict, proc: subprocess.Popen) -> bool:
    return proc.pid in (st.get("pid"), st.get("launcher_pid"))


def wait_taken(run_dir: Path, proc: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> dict:
    """Until the detached process has taken the run (its status names its pid), or has ended; the
    run's status. DetachFailed if it ended without taking it, or took longer than `timeout`."""
    folder = RunFolder(Path(run_dir))
    deadline = time.monotonic() + timeout
    while True:
        st = folder.status()
        if _taken_by(st, proc) and st.get("state") != "created":
            return st
        if proc.poll() is not None:
            st = folder.status()
            if _taken_by(st, proc):
                return st
            tail = _tail(Path(run_dir) / OUTPUT_LOG)
            raise DetachFailed(f"the detached process ended (exit {proc.returncode}) before it took the run: {tail}")
        if time.monotonic() > deadline:
            raise DetachFailed(f"the detached process (pid {proc.pid}) has not taken the run after {timeout:.0f} s")
        time.sleep(0.1)  # a poll interval: the loop waits for the run's status


def _tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1][:300] if lines else "no output"
