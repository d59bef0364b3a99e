"""Files that every part of cnnlab writes: replaced whole or not at all, named safely, their
failures worded for the user, their times stamped one way.

No torch, no pydantic: the console's first screen and `cnnlab runs` read through here.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from pathlib import Path
from typing import Any

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def safe_name(name: str) -> str:
    """A name that becomes a file name: letters, digits, '.', '_', '-'; nothing that escapes a folder."""
    if not SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"{name!r} is not a safe name: use letters, digits, '.', '_' and '-' (at most 100)")
    return name


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, flushed, then rename it over `path`; if anything
    fails on the way (a full disk) the temporary file is removed and `path` is as it was."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def overwrite_in_place(path: Path, text: str) -> None:
    """Rewrite a small file in the blocks it already has: how a status is still marked on a full disk."""
    data = text.encode("utf-8")
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate(len(data))
        f.flush()
        os.fsync(f.fileno())


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def os_error_text(err: OSError) -> str:
    """A failed file operation in words a user acts on: "no space left on /data/runs/x/checkpoints"."""
    where = str(err.filename) if err.filename else ""
    folder = str(Path(where).parent) if where else "the device"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on" if err.errno == errno.ENOSPC else "disk quota exceeded on"
        return f"{what} {folder}: free some space, then resume the run"
    if err.errno == errno.EROFS:
        return f"{where or 'the path'} is on a read-only file system"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: {where or 'the path'}"
    if err.errno == errno.ENOTDIR:
        if where and os.path.isfile(where):
            return f"{where} is a file, not a folder"
        return f"{where}: part of this path is a file, not a folder"
    if err.errno == errno.EEXIST:
        return f"{where} already exists and is not a folder"
    if err.errno == errno.EISDIR:
        return f"{where} is a folder, not a file"
    if err.errno == errno.ELOOP:
        return f"{where}: a symbolic link loop"
    return f"{where + ': ' if where else ''}{err.strerror or err}"


def timestamp(when: float | None = None) -> str:
    """Local time as every file of a run or sweep folder writes it: 2026-12-07T22:37:15."""
    return time.strftime(TIME_FORMAT, time.localtime(when))


def parse_timestamp(text: Any) -> float | None:
    """The Unix time of a `timestamp()`; None for anything that is not one."""
    try:
        return time.mktime(time.strptime(text, TIME_FORMAT))
    except (TypeError, ValueError, OverflowError):
        return None


def lock_held(path: Path) -> bool | None:
    """Whether a live process holds an exclusive flock on `path` (None: the file is missing or cannot
    be opened). The kernel frees such a lock at any death, kill -9 included, so a dead process never
    keeps it: how run locks and core claims tell a live holder from a leftover file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
