"""The run folder: the contract every view reads.

    <runs>/<run-id>/config.toml     the resolved experiment (plus the preset it came from)
    <runs>/<run-id>/metrics.jsonl   one JSON object per finished epoch, appended and flushed
    <runs>/<run-id>/status.json     state, timestamps, message, live progress, pid
    <runs>/<run-id>/summary.json    final figures
    <runs>/<run-id>/checkpoints/    last.pt, best.pt (written by engine.checkpoint)

Every write that replaces a file goes to a temporary name first and is renamed, so a kill at
any moment leaves a folder that reads. No torch here: `cnnlab runs` and the console list runs fast.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

if TYPE_CHECKING:  # the console's first screen reads runs and paths before pydantic is imported
    from engine.config import Experiment

RESUMABLE = ("stopped", "failed", "crashed", "diverged")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        stem = safe_name(name or preset or exp.model.arch)
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}-{secrets.token_hex(2)}"
        path = runs_dir / run_id
        (path / "checkpoints").mkdir(parents=True)
        folder = cls(path)
        folder.write_config(exp, preset)
        folder.write_status("created", message="")
        return folder

    def write_config(self, exp: Experiment, preset: str | None) -> None:
        doc = exp.model_dump(mode="json", exclude_none=True)
        meta = {"preset": preset or "", "created": _now()}
        atomic_write_text(self.path / "config.toml", tomli_w.dumps({"run": meta, **doc}))

    # --- reading ----------------------------------------------------------------------------

    def read_config_doc(self) -> dict[str, Any]:
        return tomllib.loads((self.path / "config.toml").read_text())

    def experiment(self) -> Experiment:
        from engine.config import Experiment

        doc = self.read_config_doc()
        doc.pop("run", None)
        return Experiment.model_validate(doc)

    @property
    def preset(self) -> str:
        try:
            return self.read_config_doc().get("run", {}).get("preset", "")
        except (OSError, tomllib.TOMLDecodeError):
            return ""

    def metrics(self) -> list[dict[str, Any]]:
        """Finished epochs, one per epoch number (a resume may have re-written a tail: the last wins)."""
        by_epoch: dict[int, dict[str, Any]] = {}
        try:
            with open(self.path / "metrics.jsonl") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by a kill
                    if isinstance(row, dict) and "epoch" in row:
                        by_epoch[int(row["epoch"])] = row
        except FileNotFoundError:
            return []
        return [by_epoch[e] for e in sorted(by_epoch)]

    def status(self) -> dict[str, Any]:
        st = _read_json(self.path / "status.json") or {"state": "crashed", "message": "status.json is missing"}
        if st.get("state") == "running" and not _pid_alive(st.get("pid")):
            st = {**st, "state": "crashed", "message": "the process that ran it is gone"}
        return st

    def summary(self) -> dict[str, Any]:
        return _read_json(self.path / "summary.json") or {}

    # --- writing ----------------------------------------------------------------------------

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_metrics(self, epochs_kept: int) -> None:
        """On resume: keep only the epochs the checkpoint holds, so each epoch appears once."""
        rows = [r for r in self.metrics() if int(r["epoch"]) <= epochs_kept]
        atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    def write_status(self, state: str, message: str = "", **extra: Any) -> None:
        old = _read_json(self.path / "status.json") or {}
        st = {**old, **extra, "state": state, "message": message, "updated": _now(), "pid": os.getpid()}
        st.setdefault("created", _now())
        if state == "running" and "started" not in old:
            st["started"] = _now()
        if state in ("finished", "stopped", "failed", "diverged"):
            st["ended"] = _now()
        atomic_write_text(self.path / "status.json", json.dumps(st, indent=1))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=1))


@dataclass
class RunInfo:
    """One row of the runs table."""

    id: str
    path: Path
    preset: str
    state: str
    message: str
    epochs_done: int
    epochs: int
    best_val_acc: float | None
    test_acc: float | None
    started: str
    arch: str = ""
    dataset: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resumable(self) -> bool:
        return self.state in RESUMABLE and self.epochs_done < self.epochs


def read_run(path: Path) -> RunInfo | None:
    folder = RunFolder(Path(path))
    if not (folder.path / "config.toml").exists():
        return None
    try:
        doc = folder.read_config_doc()
    except (OSError, tomllib.TOMLDecodeError):
        return None
    st = folder.status()
    rows = folder.metrics()
    summ = folder.summary()
    vals = [r["val_acc"] for r in rows if r.get("val_acc") is not None]
    best = summ.get("best_val_acc", max(vals) if vals else None)
    return RunInfo(
        id=folder.id,
        path=folder.path,
        preset=doc.get("run", {}).get("preset", ""),
        state=st.get("state", "crashed"),
        message=st.get("message", ""),
        epochs_done=len(rows),
        epochs=int(doc.get("train", {}).get("epochs", 0)),
        best_val_acc=best,
        test_acc=summ.get("test_acc"),
        started=st.get("started", st.get("created", doc.get("run", {}).get("created", ""))),
        arch=doc.get("model", {}).get("arch", ""),
        dataset=doc.get("data", {}).get("dataset", ""),
    )


def list_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """All runs under a folder, newest first. A folder that does not read is skipped, not fatal."""
    runs_dir = Path(runs_dir or default_runs_dir())
    if not runs_dir.is_dir():
        return []
    out = []
    for p in runs_dir.iterdir():
        if not p.is_dir() or p.name.startswith("."):
            continue
        # A sweep folder (marked by sweep.toml) holds its trials as ordinary run folders.
        for candidate in sorted(p.iterdir()) if (p / "sweep.toml").exists() else [p]:
            info = read_run(candidate) if candidate.is_dir() else None
            if info:
                out.append(info)
    out.sort(key=lambda r: (r.started, r.id), reverse=True)
    return out


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")
