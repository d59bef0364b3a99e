"""The runs table: one row per run folder under a runs folder (and inside its sweeps), read
whatever the files hold, newest first. No torch: `cnnlab runs` and the console list fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.files import os_error_text
from engine.runfolder.folder import RunFolder, default_runs_dir, is_run_folder
from engine.runfolder.json_files import is_count, read_metrics, read_summary

RESUMABLE = ("stopped", "failed", "crashed", "diverged", "damaged")


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
