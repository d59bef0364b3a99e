"""The control channel: commands to a training run, through its run folder.

    <run>/control/<time_ns>-<id>.json    {"command": "pause", "id": "...", "sent": "...", "host": "..."}

Any process may send (`cnnlab pause RUN_DIR`, the console, a sweep); the one process that trains
the run reads the folder at most every half second, applies each command once, in the order sent,
and deletes it. A file that is not a command (garbage, a foreign name, half written) is removed
and ignored: it can never stop a run by accident. The trainer acknowledges what it applied in
status.json (`control`), which is how the sender knows it arrived.

No torch, no Textual: the CLI and the console both send through this module.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.files import COMMAND_FILE_MODE, make_command_dir, timestamp

COMMANDS = ("pause", "continue", "stop", "checkpoint")
CONTROL_DIR = "control"
POLL_EVERY_S = 0.5
_MAX_COMMAND_BYTES = 4096


@dataclass(frozen=True)
class Command:
    command: str  # one of COMMANDS
    id: str
    sent: str = ""
    host: str = ""
    reason: str = ""


def send(run_dir: Path, command: str, reason: str = "") -> Command:
    """Write a command into the run's control folder (atomically); returns it, with its id."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; one of {', '.join(COMMANDS)}")
    folder = Path(run_dir) / CONTROL_DIR
    make_command_dir(folder)
    cmd = Command(command, secrets.token_hex(6), timestamp(), socket.gethostname(), reason)
    name = f"{time.time_ns():020d}-{cmd.id}.json"
    tmp = folder / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, COMMAND_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(cmd.__dict__))
    os.replace(tmp, folder / name)
    return cmd


def _parse(path: Path) -> Command | None:
    try:
        st = path.stat()
        if st.st_size > _MAX_COMMAND_BYTES or st.st_uid not in (os.geteuid(), 0):
            return None  # too big to be a command, or put there by another user: not a command to this run
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("command") not in COMMANDS or not isinstance(doc.get("id"), str):
        return None
    return Command(
        doc["command"],
        doc["id"][:32],
        str(doc.get("sent", ""))[:32],
        str(doc.get("host", ""))[:255],
        str(doc.get("reason", ""))[:200],
    )


class ControlReader:
    """Reads a run's control folder for the process that trains it, at most every POLL_EVERY_S."""

    def __init__(self, run_dir: Path, every_s: float = POLL_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.folder = Path(run_dir) / CONTROL_DIR
        self.every_s = every_s
        self.clock = clock
        self._next = 0.0
        self._applied: set[str] = set()  # ids already applied, in case a file could not be deleted

    def drop_older_than(self, time_ns: int) -> int:
        """Remove commands sent before `time_ns` (say, a pause sent to a run that died before reading
        it): a resume must not obey them. Returns how many were dropped."""
        dropped = 0
        try:
            names = [p.name for p in self.folder.iterdir()]
        except OSError:
            return 0
        for name in names:
            stamp = name.partition("-")[0]
            if not name.startswith(".") and (not stamp.isdigit() or int(stamp) < time_ns):
                try:
                    (self.folder / name).unlink()
                    dropped += 1
                except OSError:
                    pass
        return dropped

    def read(self, force: bool = False) -> list[Command]:
        """The new commands in the order sent; an empty list between polls."""
        now = self.clock()
        if not force and now < self._next:
            return []
        self._next = now + self.every_s
        try:
            names = sorted(p.name for p in self.folder.iterdir())
        except OSError:
            return []
        out = []
        for name in names:
            if name.startswith("."):
                continue  # a command still being written
            path = self.folder / name
            cmd = _parse(path) if name.endswith(".json") else None
            try:
                path.unlink()
            except OSError:
                pass
            if cmd is not None and cmd.id not in self._applied:
                self._applied.add(cmd.id)
                out.append(cmd)
        return out
