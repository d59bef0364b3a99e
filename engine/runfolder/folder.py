"""The run folder: the contract every view reads.

    <runs>/<run-id>/config.toml     the resolved experiment (plus the preset it came from)
    <runs>/<run-id>/metrics.jsonl   one JSON object per finished epoch, appended and flushed
    <runs>/<run-id>/status.json     state, timestamps, message, live progress, pid
    <runs>/<run-id>/summary.json    final figures
    <runs>/<run-id>/checkpoints/    last.pt, best.pt (written by engine.training.checkpoint)

Every write that replaces a file goes to a temporary name first and is renamed, so a kill at
any moment leaves a folder that reads; a write that fails (a full disk) removes its temporary file.
Reading never trusts what is on disk (engine/runfolder/json_files.py): a damaged run is a RunInfo in state
"damaged" whose message says what is wrong, and the runs beside it list as ever.

A run in state `running` is judged by its lock (engine.runfolder.lock: held while a trainer lives, freed
by any death, kill -9 included); without a lock file by its pid on this machine, or, written by
another machine, by the age of its heartbeat. No torch here: `cnnlab runs` and the console list fast.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from engine.experiment import toml_files
from engine.files import FORMAT, atomic_write_text, overwrite_in_place, safe_name, timestamp
from engine.runfolder import lock as run_lock
from engine.runfolder.json_files import read_metrics, read_preprocessing, read_status, read_summary
from engine.runfolder.liveness import still_running

if TYPE_CHECKING:  # the console's first screen reads runs and paths before pydantic is imported
    from engine.experiment.config import Experiment

# The files that make a folder a run folder (a runs folder also holds presets/ and sweeps).
RUN_FILES = ("config.toml", "status.json", "metrics.jsonl", "checkpoints")
# What the model takes, for using it where the dataset is not (written by the trainer at set-up).
PREPROCESSING_FILE = "preprocessing.json"


def default_runs_dir() -> Path:
    return Path(os.environ.get("CNNLAB_RUNS", "runs"))


def user_presets_dir(runs_dir: Path | None = None) -> Path:
    """The user's own presets live beside their runs, in `<runs>/presets/`."""
    return Path(runs_dir or default_runs_dir()) / "presets"


def ensure_runs_dir(runs_dir: Path) -> Path:
    """The runs folder, made if missing; an OSError worded by os_error_text's caller when it cannot be."""
    runs_dir = Path(runs_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(runs_dir))
    runs_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(runs_dir, os.W_OK | os.X_OK):  # another user's folder: said here, not as a run's mkdir
        raise PermissionError(errno.EACCES, "Permission denied", str(runs_dir))
    return runs_dir


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
        stem = safe_name(name or preset or exp.model.stem)
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
        meta = {"preset": preset or "", "created": timestamp()}
        atomic_write_text(self.path / "config.toml", tomli_w.dumps({"run": meta, **doc}))

    # --- reading ----------------------------------------------------------------------------

    def read_config_doc(self) -> dict[str, Any]:
        """config.toml as data: FileNotFoundError when missing, toml_files.TomlError when it does not read."""
        return toml_files.read(self.path / "config.toml")

    def experiment(self) -> Experiment:
        """The experiment that ran; ConfigError naming config.toml and the fields when it does not read."""
        from engine.experiment.config import validate_experiment
        from engine.experiment.errors import ConfigError

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
        now = timestamp()
        st = {**old, **extra, "state": state, "message": message, "updated": now, "beat": time.time()}
        st.update(pid=os.getpid(), host=socket.gethostname(), format=FORMAT)
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
            overwrite_in_place(path, text)

    def record_checkpoint(self, epoch: int, kind: str = "last") -> None:
        """The trainer calls this right after checkpoints/<kind>.pt is written holding `epoch` finished
        epochs: status.json then says which epoch each checkpoint holds (checkpoint_epoch)."""
        mtime = (self.checkpoints / f"{kind}.pt").stat().st_mtime_ns
        st = read_status(self.path / "status.json")[0] or {}
        marks = {**(st.get("checkpoints") or {}), kind: {"epoch": int(epoch), "mtime_ns": mtime}}
        self.write_status(st.get("state", "running"), st.get("message", ""), checkpoints=marks)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=1))

    def write_preprocessing(self, doc: dict[str, Any]) -> None:
        """What the run's images go through before the model sees them (size, channels, mean, std, class
        names), kept so that its model can be used where its dataset is not (cnnlab predict, export)."""
        atomic_write_text(self.path / PREPROCESSING_FILE, json.dumps(doc, indent=1))

    def preprocessing(self) -> dict[str, Any] | None:
        return read_preprocessing(self.path / PREPROCESSING_FILE)


def is_run_folder(path: Path) -> bool:
    """Whether `path` is (or was meant to be) a run folder: any of a run's files is in it."""
    try:
        return path.is_dir() and any((path / name).exists() for name in RUN_FILES)
    except OSError:
        return False
