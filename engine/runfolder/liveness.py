"""Whether the trainer of a run that says `running` still lives.

A run is judged by its lock (engine/runfolder/lock.py: held while a trainer lives, freed by any
death, kill -9 included); without a lock file by its pid on this machine, or, written by another
machine, by the age of its heartbeat in status.json.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from engine.files import parse_timestamp
from engine.runfolder import lock as run_lock
from engine.runfolder.json_files import is_count

# A trainer refreshes status.json's heartbeat at least this often; a run of another machine whose
# heartbeat is STALE_AFTER_S old has stopped without a word.
HEARTBEAT_S = 60.0
STALE_AFTER_S = 5 * HEARTBEAT_S


def pid_alive(pid: Any) -> bool:
    if not is_count(pid, 1):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, OSError):
        return False
    return True


def _process_started(pid: int) -> float | None:
    """When process `pid` started (Unix time; Linux's /proc), None where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
        return int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def still_running(path: Path, st: dict[str, Any]) -> tuple[bool, str]:
    """Whether the trainer of a run whose status says `running` is alive, and if not, why not."""
    held = run_lock.is_held(path)
    if held is not None:
        return held, "" if held else "the process that ran it is gone (its run lock is free)"
    beat = st.get("beat") if isinstance(st.get("beat"), (int, float)) else parse_timestamp(st.get("updated"))
    host = st.get("host")
    if host and host != socket.gethostname():
        if beat is None:
            return False, f"it ran on {host} and left no heartbeat"
        age = time.time() - beat
        if age < STALE_AFTER_S:
            return True, ""
        return False, f"no heartbeat from {host} for {age / 60:.0f} minutes"
    pid = st.get("pid")
    if not pid_alive(pid):
        return False, "the process that ran it is gone"
    # A pid the system has handed to a new process: it started after the run's last heartbeat.
    started = _process_started(pid) if isinstance(st.get("beat"), (int, float)) else None
    if started is not None and started > st["beat"] + 2:  # the boot time is in whole seconds
        return False, f"the process that ran it is gone (pid {pid} is now another process)"
    return True, ""
