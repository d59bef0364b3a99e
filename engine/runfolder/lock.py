"""One trainer per run folder: an advisory lock that a dead process cannot keep.

    <run>/.lock    held with flock(LOCK_EX) by the process that trains the run; it names the holder

The kernel drops an flock when its process ends, however it ends (kill -9 included), so a crashed
run never stays locked. On a filesystem shared between machines flock may not reach the other
host; there the run's heartbeat in status.json (host and `updated`) is the judge (engine.runfolder.folder).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from engine.files import COMMAND_FILE_MODE, lock_held, timestamp

LOCK_FILE = ".lock"


class RunLocked(Exception):
    """The run is being trained by another process; the message names it."""


def _holder(path: Path) -> str:
    try:
        doc = json.loads(path.read_text())
        return f"pid {doc['pid']} on {doc['host']} (since {doc['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class RunLock:
    """`with RunLock(run_dir):` trains the run; a second holder gets RunLocked at once."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, attempts: int = 10) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, COMMAND_FILE_MODE)
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A reader's probe (is_held) holds a shared lock for an instant: try again briefly.
                if attempt == attempts - 1:
                    os.close(fd)
                    raise RunLocked(f"{self.path.parent} is being trained by {_holder(self.path)}") from None
                time.sleep(0.05)
        doc = {"pid": os.getpid(), "host": socket.gethostname(), "since": timestamp()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(doc).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def is_held(run_dir: Path) -> bool | None:
    """Whether a live process on this machine holds the run's lock (None: the run has no lock file)."""
    return lock_held(Path(run_dir) / LOCK_FILE)


def holder(run_dir: Path) -> str:
    """Who holds (or last held) the run's lock, in words."""
    return _holder(Path(run_dir) / LOCK_FILE)
