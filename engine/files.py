"""Files that every part of cnnlab writes: replaced whole or not at all, named safely, their
failures worded for the user, their times stamped one way.

No torch, no pydantic: the console's first screen and `cnnlab runs` read through here.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
# cnnlab's file format, written into status.json, a trial's trial.json and sweep.toml. Raised when
# a file changes so that an older cnnlab would misread it; an older cnnlab then refuses the folder
# (newer_format) instead of guessing. Files without it are of format 1.
FORMAT = 1
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def safe_name(name: str) -> str:
    """A name that becomes a file name: letters, digits, '.', '_', '-'; nothing that escapes a folder."""
    if not SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"{name!r} is not a safe name: use letters, digits, '.', '_' and '-' (at most 100)")
    return name


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, flushed, then rename it over `path`; if anything
    fails on the way (a full disk) the temporary file is removed and `path` is as it was."""
    # Unique to the process and thread: two writers at once each rename a whole file of their own.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def overwrite_in_place(path: Path, text: str) -> None:
    """Rewrite a small file in the blocks it already has: how a status is still marked on a full disk."""
    data = text.encode("utf-8")
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate(len(data))
        f.flush()
        os.fsync(f.fileno())


def remove_quietly(path: Path) -> None:
    """Unlink a leftover (a temporary file) if it is there; a failure to do so is not the error to report."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


# Files that are commands to a run or a claim on the machine (a run's control folder, its lock, a core
# claim): never writable by another user, whatever the umask (a stricter umask narrows them further).
# Every other file cnnlab writes takes the modes the umask gives.
COMMAND_FILE_MODE = 0o644
COMMAND_DIR_MODE = 0o755


def make_command_dir(path: Path) -> None:
    """A folder of command or claim files, made (with its parents) never writable by others; one made
    so by an older cnnlab, or by hand, loses others' write permission if it is this user's."""
    path.mkdir(parents=True, exist_ok=True, mode=COMMAND_DIR_MODE)
    st = path.stat()
    if st.st_mode & 0o002 and st.st_uid == os.geteuid():
        os.chmod(path, st.st_mode & 0o7755)


def user_name(uid: int) -> str:
    """A uid's user name (the number where it has none)."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def owner_of(path: str | Path) -> str:
    """The user name owning `path` ("?" where it cannot be looked at)."""
    try:
        return user_name(os.stat(path).st_uid)
    except OSError:
        return "?"


def _denied(where: str) -> str:
    """Permission denied, with the folder that refused it and whose it is: most often another user's."""
    if not where:
        return "permission denied: the path"
    folder = Path(where)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.is_file():
        folder = folder.parent
    me, owner = user_name(os.geteuid()), owner_of(folder)
    if owner == me:
        return f"permission denied: {where}"
    return f"permission denied: {where} ({folder} belongs to {owner}; this is {me}: give a folder of your own)"


def os_error_cause(err: BaseException | None) -> OSError | None:
    """The OSError an exception was raised from, if any (torch chains it as the context of its own)."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, OSError):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


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
        return _denied(where)
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


def newer_format(doc_format: Any, name: str) -> str | None:
    """The one line for a file of a newer format than this cnnlab reads; None for this format, an
    older one or none (read as today)."""
    if isinstance(doc_format, int) and not isinstance(doc_format, bool) and doc_format > FORMAT:
        return (
            f"{name} was written by a newer cnnlab (format {doc_format}, this one reads up to {FORMAT}): upgrade cnnlab"
        )
    return None


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
