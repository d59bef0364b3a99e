"""A sweep's study.journal (Optuna's JournalFileBackend) read and written so that damage is one line.

The journal is one JSON record per line, appended whole under its lock. A disk that fills, a copy
cut short or an editor can leave it damaged: a line that is not JSON, JSON that is not one of
Optuna's records, nothing at all. Optuna then raises from deep in its replay (JSONDecodeError,
KeyError 'op_code'); here every such read is a SweepError naming the file and the line, which the
CLI and the sweep screen say in one line, the file and the run folders left as they are.

A last line cut short is what Optuna itself reads past (a record still being written, for a reader
without the lock). Appended to, it would fuse with the next record into a line that never reads:
so a writer, holding the lock (no record can be half-written then), first drops such a tail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from engine.experiment.sweep_plan import SweepError


def _damaged(path: str, what: str) -> SweepError:
    return SweepError(f"{path} is damaged ({what}): the sweep's study does not read; its run folders are as they were")


class CheckedJournal(JournalFileBackend):
    """Optuna's file backend with its damage said in one line, and a cut-short tail dropped before a write."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path), lock_obj=JournalFileOpenLock(str(path)))

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        logs = super().read_logs(log_number_from)
        while True:
            try:
                log = next(logs)
            except StopIteration:
                return
            except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError; Optuna's "Invalid log format."
                raise _damaged(self._file_path, f"a line is not a record Optuna wrote: {err}") from None
            except OSError as err:
                raise SweepError(f"{self._file_path} cannot be read ({err.strerror or err})") from None
            if not isinstance(log, dict) or not isinstance(log.get("op_code"), int):
                raise _damaged(self._file_path, "a line is JSON, but not a record Optuna wrote")
            yield log

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        self._lock.acquire()
        try:
            with open(self._file_path, "r+b") as f:
                f.seek(0, os.SEEK_END)
                whole = _whole_lines(f)
                f.truncate(whole)
                f.seek(whole)
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
        finally:
            self._lock.release()


def _whole_lines(f) -> int:
    """The length of the file's whole lines: where a last line cut short begins (its end if none is)."""
    end = f.tell()
    pos = end
    while pos > 0:
        step = min(4096, pos)
        f.seek(pos - step)
        chunk = f.read(step)
        if pos == end and chunk.endswith(b"\n"):
            return end
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return pos - step + cut + 1
        pos -= step
    return 0


def cut_short(path: Path) -> bool:
    """Whether the journal's last line is cut short (read without the lock: a record being written looks so too)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:
        return False
