"""The run folder: the contract every view reads.

    <runs>/<run-id>/config.toml     the resolved experiment (plus the preset it came from)
    <runs>/<run-id>/metrics.jsonl   one JSON object per finished epoch, appended and flushed
    <runs>/<run-id>/status.json     state, timestamps, message, live progress, pid
    <runs>/<run-id>/summary.json    final figures
    <runs>/<run-id>/checkpoints/    last.pt, best.pt (written by engine.checkpoint)

Every write that replaces a file goes to a temporary name first and is renamed, so a kill at
any moment leaves a folder that reads; a write that fails (a full disk) removes its temporary file.
Reading never trusts what is on disk (engine.run_files): a damaged run is a RunInfo in state
"damaged" whose message says what is wrong, and the runs beside it list as ever.

A run in state `running` is judged by its lock (engine.run_lock: held while a trainer lives, freed
by any death, kill -9 included); without a lock file by its pid on this machine, or, written by
another machine, by the age of its heartbeat. No torch here: `cnnlab runs` and the console list fast.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from engine import run_lock, toml_files
from engine.run_files import is_count, read_metrics, read_status, read_summary

if TYPE_CHECKING:  # the console's first screen reads runs and paths before pydantic is imported
    from engine.config import Experiment

RESUMABLE = ("stopped", "failed", "crashed", "diverged", "damaged")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# A trainer refreshes status.json's heartbeat at least this often; a run of another machine whose
# heartbeat is STALE_AFTER_S old has stopped without a word.
HEARTBEAT_S = 60.0
STALE_AFTER_S = 5 * HEARTBEAT_S
# The files that make a folder a run folder (a runs folder also holds presets/ and sweeps).
RUN_FILES = ("config.toml", "status.json", "metrics.jsonl", "checkpoints")


def default_runs_dir() -> Path:
    return Path(os.environ.get("CNNLAB_RUNS", "runs"))


def user_presets_dir(runs_dir: Path | None = None) -> Path:
    """The user's own presets live beside their runs, in `<runs>/presets/`."""
    return Path(runs_dir or default_runs_dir()) / "presets"


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


def _overwrite(path: Path, text: str) -> None:
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


def ensure_runs_dir(runs_dir: Path) -> Path:
    """The runs folder, made if missing; an OSError worded by os_error_text's caller when it cannot be."""
    runs_dir = Path(runs_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(runs_dir))
    runs_dir.mkdir(parents=True, exist_ok=True)
    return runs_dir


def _pid_alive(pid: Any) -> bool:
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


def _timestamp(text: Any) -> float | None:
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError, OverflowError):
        return None


def still_running(path: Path, st: dict[str, Any]) -> tuple[bool, str]:
    """Whether the trainer of a run whose status says `running` is alive, and if not, why not."""
    held = run_lock.is_held(path)
    if held is not None:
        return held, "" if held else "the process that ran it is gone (its run lock is free)"
    beat = st.get("beat") if isinstance(st.get("beat"), (int, float)) else _timestamp(st.get("updated"))
    host = st.get("host")
    if host and host != socket.gethostname():
        if beat is None:
            return False, f"it ran on {host} and left no heartbeat"
        age = time.time() - beat
        if age < STALE_AFTER_S:
            return True, ""
        return False, f"no heartbeat from {host} for {age / 60:.0f} minutes"
    pid = st.get("pid")
    if not _pid_alive(pid):
        return False, "the process that ran it is gone"
    # A pid the system has handed to a new process: it started after the run's last heartbeat.
    started = _process_started(pid) if isinstance(st.get("beat"), (int, float)) else None
    if started is not None and started > st["beat"] + 2:  # the boot time is in whole seconds
        return False, f"the process that ran it is gone (pid {pid} is now another process)"
    return True, ""


@dataclass
class RunFolder:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    # --- creating ---------------------------------------------------------------------------

    @classmethod
    def create(cls, runs_dir: Path, exp: Experiment, preset: str | None = None, name: str | None = None) -> "RunFolder":
        """A new run folder with its config and status; on a failure (a full disk) nothing is left behind."""
        stem = safe_name(name or preset or exp.model.arch)
        runs_dir = ensure_runs_dir(runs_dir)
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}-{secrets.token_hex(2)}"
        path = runs_dir / run_id
        (path / "checkpoints").mkdir(parents=True)
        folder = cls(path)
        try:
            folder.write_config(exp, preset)
            folder.write_status("created", message="")
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return folder

    def write_config(self, exp: Experiment, preset: str | None) -> None:
        doc = exp.model_dump(mode="json", exclude_none=True)
        meta = {"preset": preset or "", "created": _now()}
        atomic_write_text(self.path / "config.toml", tomli_w.dumps({"run": meta, **doc}))

    # --- reading ----------------------------------------------------------------------------

    def read_config_doc(self) -> dict[str, Any]:
        """config.toml as data: FileNotFoundError when missing, toml_files.TomlError when it does not read."""
        return toml_files.read(self.path / "config.toml")

    def experiment(self) -> Experiment:
        """The experiment that ran; ConfigError naming config.toml and the fields when it does not read."""
        from engine.config import ConfigError, validate_experiment

        try:
            doc = self.read_config_doc()
        except toml_files.TomlError as err:
            raise ConfigError([("", err.problem)], str(self.path / "config.toml")) from None
        doc.pop("run", None)
        return validate_experiment(doc, str(self.path / "config.toml"))

    @property
    def preset(self) -> str:
        try:
            meta = self.read_config_doc().get("run")
        except (OSError, ValueError):
            return ""
        return meta.get("preset", "") if isinstance(meta, dict) and isinstance(meta.get("preset"), str) else ""

    def metrics(self) -> list[dict[str, Any]]:
        """Finished epochs, one per epoch number (a resume may have re-written a tail: the last wins);
        damaged lines are left out (read_run reports them)."""
        return read_metrics(self.path / "metrics.jsonl")[0]

    def status(self) -> dict[str, Any]:
        """The run's status, always with a `state` and a `message`; a dead `running` run reads "crashed"."""
        return self.read_status()[0]

    def read_status(self) -> tuple[dict[str, Any], list[str]]:
        st, problems = read_status(self.path / "status.json")
        if st is None:
            # A missing or unreadable status whose trainer lives is written within seconds: it is running.
            if run_lock.is_held(self.path):
                st = {"state": "running", "message": ""}
            else:
                st = {"state": "damaged", "message": problems[0]} if problems else {}
                st = st or {"state": "crashed", "message": "status.json is missing"}
        st.setdefault("state", "damaged")
        st.setdefault("message", "")
        if st["state"] == "running":
            alive, why = still_running(self.path, st)
            if not alive:
                st = {**st, "state": "crashed", "message": why}
        return st, problems

    def summary(self) -> dict[str, Any]:
        return read_summary(self.path / "summary.json")[0]

    def checkpoint_epoch(self, kind: str = "last") -> int | None:
        """The finished epochs checkpoints/<kind>.pt holds, as the trainer recorded when it wrote it
        (record_checkpoint); 0 when the file is gone, None when unknown (never recorded, or the file
        was written again after the record: a kill fell between the two)."""
        st, _ = read_status(self.path / "status.json")
        mark = ((st or {}).get("checkpoints") or {}).get(kind)
        if mark is None:
            return None
        try:
            mtime = (self.checkpoints / f"{kind}.pt").stat().st_mtime_ns
        except FileNotFoundError:
            return 0
        except OSError:
            return None
        return mark["epoch"] if mtime == mark["mtime_ns"] else None

    def epochs_kept(self) -> int:
        """The finished epochs a resume keeps: the last checkpoint's, never more than metrics.jsonl holds.
        A metrics line written just before a kill, whose checkpoint never was, is not one of them."""
        done = len(self.metrics())
        held = self.checkpoint_epoch("last")
        return done if held is None else min(done, held)

    # --- writing ----------------------------------------------------------------------------

    def append_metrics(self, row: dict[str, Any]) -> None:
        """One epoch's line, flushed to disk; a write that fails (a full disk) leaves no part line behind."""
        path = self.path / "metrics.jsonl"
        with open(path, "a") as f:
            size = f.tell()
            try:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            except OSError:
                try:
                    f.truncate(size)
                except (OSError, ValueError):
                    pass
                raise

    def truncate_metrics(self, epochs_kept: int) -> None:
        """On resume: keep only the epochs the checkpoint holds, so each epoch appears once (damaged
        lines go too)."""
        rows = [r for r in self.metrics() if r["epoch"] <= epochs_kept]
        atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    def write_status(self, state: str, message: str = "", **extra: Any) -> None:
        """status.json with this state and message, the live process's pid, host and heartbeat, and
        what it held before (damaged keys dropped). On a full disk the file is rewritten in place, so
        that a run that fails for want of space is still marked failed."""
        old = read_status(self.path / "status.json")[0] or {}
        now = _now()
        st = {**old, **extra, "state": state, "message": message, "updated": now, "beat": time.time()}
        st.update(pid=os.getpid(), host=socket.gethostname())
        st.setdefault("created", now)
        if state == "running" and "started" not in old:
            st["started"] = now
        if state in ("finished", "stopped", "failed", "diverged"):
            st["ended"] = now
        path, text = self.path / "status.json", json.dumps(st, indent=1)
        try:
            atomic_write_text(path, text)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT) or not path.is_file():
                raise
            _overwrite(path, text)

    def record_checkpoint(self, epoch: int, kind: str = "last") -> None:
        """The trainer calls this right after checkpoints/<kind>.pt is written holding `epoch` finished
        epochs: status.json then says which epoch each checkpoint holds (checkpoint_epoch)."""
        mtime = (self.checkpoints / f"{kind}.pt").stat().st_mtime_ns
        st = read_status(self.path / "status.json")[0] or {}
        marks = {**(st.get("checkpoints") or {}), kind: {"epoch": int(epoch), "mtime_ns": mtime}}
        self.write_status(st.get("state", "running"), st.get("message", ""), checkpoints=marks)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=1))


@dataclass
class RunInfo:
    """One row of the runs table. A run whose files do not all read is in state "damaged", its
    message and `problems` saying what is wrong; what does read is still there."""

    id: str
    path: Path
    preset: str
    state: str
    message: str
    epochs_done: int  # the finished epochs a resume keeps (see RunFolder.epochs_kept)
    epochs: int
    best_val_acc: float | None
    test_acc: float | None
    started: str
    arch: str = ""
    dataset: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def resumable(self) -> bool:
        return self.state in RESUMABLE and self.epochs_done < self.epochs


def is_run_folder(path: Path) -> bool:
    """Whether `path` is (or was meant to be) a run folder: any of a run's files is in it."""
    try:
        return path.is_dir() and any((path / name).exists() for name in RUN_FILES)
    except OSError:
        return False


def read_run(path: Path) -> RunInfo | None:
    """The run folder's row; None when `path` holds none of a run's files. Never raises for what the
    files hold: a damaged run is a row in state "damaged"."""
    folder = RunFolder(Path(path))
    if not is_run_folder(folder.path):
        return None
    problems: list[str] = []
    try:
        doc = folder.read_config_doc()
    except FileNotFoundError:
        doc, problems = {}, ["config.toml is missing"]
    except (OSError, ValueError) as err:  # toml_files.TomlError is a ValueError
        doc, problems = {}, [_config_problem(err)]
    meta, train = _table(doc, "run", problems), _table(doc, "train", problems)
    epochs = train.get("epochs", 0)
    if not is_count(epochs):
        problems.append(f"config.toml: train.epochs is {epochs!r}, not a number of epochs")
        epochs = 0
    st, found = folder.read_status()
    rows, bad_rows = read_metrics(folder.path / "metrics.jsonl")
    summ, bad_summary = read_summary(folder.path / "summary.json")
    problems += found + bad_rows + bad_summary
    vals = [r["val_acc"] for r in rows if r.get("val_acc") is not None]
    best = summ.get("best_val_acc", max(vals) if vals else None)
    state, message = st["state"], st["message"]
    done = len(rows) if state in ("running", "finished") else folder.epochs_kept()
    if problems and state != "running":
        state, message = "damaged", "; ".join(problems)
    started = next((v for v in (st.get("started"), st.get("created"), meta.get("created")) if isinstance(v, str)), "")
    return RunInfo(
        id=folder.id,
        path=folder.path,
        preset=_text(meta.get("preset")),
        state=state,
        message=message,
        epochs_done=done,
        epochs=epochs,
        best_val_acc=best,
        test_acc=summ.get("test_acc"),
        started=started,
        arch=_text(_table(doc, "model", problems).get("arch")),
        dataset=_text(_table(doc, "data", problems).get("dataset")),
        problems=problems,
    )


def _config_problem(err: Exception) -> str:
    problem = getattr(err, "problem", None) or (os_error_text(err) if isinstance(err, OSError) else str(err))
    return f"config.toml: {problem}"


def _table(doc: dict[str, Any], key: str, problems: list[str]) -> dict[str, Any]:
    value = doc.get(key, {})
    if isinstance(value, dict):
        return value
    problems.append(f"config.toml: [{key}] is not a table")
    return {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def list_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """All runs under a folder, newest first; a damaged run is a row in state "damaged", never an
    error, and a folder that is not a run folder is passed over."""
    runs_dir = Path(runs_dir or default_runs_dir())
    out = []
    for p in _entries(runs_dir):
        # A sweep folder (marked by sweep.toml) holds its trials as ordinary run folders.
        sweep = (p / "sweep.toml").exists()
        for candidate in _entries(p) if sweep else [p]:
            try:
                info = read_run(candidate)
            except OSError as err:  # a folder that cannot even be listed
                info = _unreadable(candidate, err)
            if info:
                out.append(info)
    out.sort(key=lambda r: (r.started, r.id), reverse=True)
    return out


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir())
    except OSError:
        return []


def _unreadable(path: Path, err: OSError) -> RunInfo:
    why = os_error_text(err)
    return RunInfo(path.name, path, "", "damaged", why, 0, 0, None, None, "", problems=[why])


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")
