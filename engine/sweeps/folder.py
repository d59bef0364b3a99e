"""Sweeps: one base experiment, a grid or a random search over some of its fields, one run per trial.

    <runs>/<sweep-id>/sweep.toml          the base experiment, the trials (their overrides), the metric
    <runs>/<sweep-id>/<run-id>/ ...        each trial: an ordinary run folder (named ...-trial-NNN-...)

Every trial's overrides are validated through engine.experiment.config before anything trains, so a bad grid
value is an error naming the key, not a failure an hour in. Trials run one after another; a stopped
sweep resumes: finished trials are kept, a stopped or crashed trial continues from its checkpoint,
the rest run (engine/sweeps/runner.py trains them). The results table (report 002's Table 1) reads
everything back from the folders.

No torch: presets validate their [sweep] here and views read sweep folders, so `cnnlab presets`
stays fast. The command line (`cnnlab sweep`) lives in engine/cli/sweep.py; the table's drawing in
engine/insight/show.py.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from engine.experiment import toml_files
from engine.experiment.config import Experiment, validate_experiment
from engine.experiment.overrides import apply_overrides, flatten
from engine.experiment.sweep_plan import METRICS, SweepError
from engine.files import FORMAT, atomic_write_text, newer_format, safe_name, timestamp
from engine.runfolder.folder import RunFolder
from engine.runfolder.table import read_run

SWEEP_FILE = "sweep.toml"


@dataclass
class Sweep:
    path: Path
    base: Experiment
    trials: list[dict[str, Any]]
    metric: str = "val_acc"
    preset: str = ""
    varied: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)  # the grid / random / seed asked for, kept for the record

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def study_name(self) -> str:
        """Its Optuna study's name (engine.sweeps.study): the folder's name where the sweep was made."""
        return str(self.spec.get("study") or self.id)

    @classmethod
    def create(
        cls,
        runs_dir: Path,
        base: Experiment,
        trials: list[dict[str, Any]],
        *,
        metric: str = "val_acc",
        preset: str | None = None,
        name: str | None = None,
        spec: dict[str, Any] | None = None,
    ) -> "Sweep":
        if metric not in METRICS:
            raise SweepError(f"metric {metric!r}: use one of {', '.join(METRICS)}")
        stem = safe_name(name or preset or base.model.stem)
        path = Path(runs_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-sweep-{stem}-{secrets.token_hex(2)}"
        path.mkdir(parents=True)
        spec = {"study": path.name, **(spec or {})}
        # TPE's slots are filled as the sweep goes: what it varies is its grid and ranges
        keys = [*(k for t in trials for k in t), *spec.get("grid", {}), *spec.get("random", {})]
        varied = list(dict.fromkeys(keys))
        sweep = cls(path, base, trials, metric, preset or "", varied, spec)
        doc = {
            "sweep": {
                "format": FORMAT,
                "preset": sweep.preset,
                "metric": metric,
                "created": timestamp(),
                "varied": varied,
                **spec,
            },
            "trials": [{"index": i, "overrides": t} for i, t in enumerate(trials, 1)],
            "experiment": base.model_dump(mode="json", exclude_none=True),
        }
        atomic_write_text(path / SWEEP_FILE, tomli_w.dumps(doc))
        return sweep

    @classmethod
    def load(cls, path: Path) -> "Sweep":
        path = Path(path)
        try:
            doc = toml_files.read(path / SWEEP_FILE, limit=64 * toml_files.MAX_BYTES)
        except FileNotFoundError:
            raise SweepError(f"{path} is not a sweep folder (no {SWEEP_FILE})") from None
        except toml_files.TomlError as err:
            raise SweepError(f"{path / SWEEP_FILE} does not read: {err.problem}") from None
        meta = doc.get("sweep", {})
        newer = newer_format(meta.get("format") if isinstance(meta, dict) else None, str(path / SWEEP_FILE))
        if newer:  # planned by a cnnlab that knows more: read as this one would, it could train the wrong trials
            raise SweepError(newer)
        problem = _layout_problem(doc)
        if problem:
            raise SweepError(f"{path / SWEEP_FILE} is damaged: {problem}")
        base = validate_experiment(doc.get("experiment", {}), str(path / SWEEP_FILE))
        trials = [dict(t.get("overrides", {})) for t in sorted(doc.get("trials", []), key=lambda t: t.get("index", 0))]
        spec = {k: v for k, v in meta.items() if k not in ("format", "preset", "metric", "created", "varied")}
        spec.setdefault("study", path.name)  # a copy made on another machine keeps the study it came from
        return cls(
            path,
            base,
            trials,
            meta.get("metric", "val_acc"),
            meta.get("preset", ""),
            list(meta.get("varied", [])),
            spec,
        )

    def trial_experiment(self, index: int) -> Experiment:
        return apply_overrides(self.base, self.trials[index - 1])

    def trial_folder(self, index: int) -> Path | None:
        """The run folder of trial `index` (1-based), if it was started; the newest if there are several."""
        pattern = re.compile(rf"-trial-{index:03d}-[0-9a-f]+$")
        found = sorted(
            p for p in self.path.iterdir() if p.is_dir() and pattern.search(p.name) and (p / "config.toml").exists()
        )
        return found[-1] if found else None


def _layout_problem(doc: dict[str, Any]) -> str | None:
    """What in a sweep.toml is not the shape Sweep.create writes (a hand edit, a damaged copy)."""
    meta, trials = doc.get("sweep", {}), doc.get("trials", [])
    if not isinstance(meta, dict):
        return "[sweep] is not a table"
    if not all(isinstance(meta.get(k, ""), str) for k in ("metric", "preset")):
        return "sweep.metric and sweep.preset must be text"
    if not isinstance(meta.get("varied", []), list) or not all(isinstance(v, str) for v in meta.get("varied", [])):
        return "sweep.varied is not a list of field names"
    ok = isinstance(trials, list) and all(
        isinstance(t, dict) and isinstance(t.get("overrides", {}), dict) and type(t.get("index", 0)) is int
        for t in trials
    )
    return None if ok else "[[trials]] is not a list of tables, each with an index and its overrides"


def is_sweep(path: Path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


def trial_row(sweep: Sweep, index: int, folder: Path | None) -> dict[str, Any]:
    """One trial's line of the table. val_acc is the best over the epochs (the checkpoint the test
    accuracy is measured on); train figures are the last epoch's; minutes add up the epochs' times."""
    row: dict[str, Any] = {"trial": index}
    overrides = sweep.trials[index - 1]
    for key in sweep.varied:
        row[key] = overrides.get(key)
    row.update(
        state="pending",
        epochs=0,
        train_acc=None,
        val_acc=None,
        test_acc=None,
        train_loss=None,
        val_loss=None,
        test_loss=None,
        minutes=None,
        run="",
    )
    if folder is None:
        return row
    rf = RunFolder(folder)
    info = read_run(folder)
    if not overrides and sweep.varied:  # a TPE slot: its values are in what it ran
        try:
            ran = flatten(rf.experiment())
        except (OSError, ValueError):
            ran = {}
        row.update({key: ran.get(key) for key in sweep.varied})
    metrics, summary = rf.metrics(), rf.summary()
    vals = [r["val_acc"] for r in metrics if r.get("val_acc") is not None]
    val_losses = [r["val_loss"] for r in metrics if r.get("val_loss") is not None]
    last = metrics[-1] if metrics else {}
    row.update(
        state=info.state if info else "crashed",
        epochs=len(metrics),
        train_acc=last.get("train_acc"),
        train_loss=last.get("train_loss"),
        val_acc=summary.get("best_val_acc", max(vals) if vals else None),
        val_loss=min(val_losses) if val_losses else None,
        test_acc=summary.get("test_acc"),
        test_loss=summary.get("test_loss"),
        minutes=round(sum(float(r.get("seconds") or 0) for r in metrics) / 60, 2) if metrics else None,
        run=folder.name,
    )
    return row


def results_table(sweep_dir: Path, metric: str | None = None) -> list[dict[str, Any]]:
    """Every trial's row, best first by `metric` (the sweep's own by default): accuracies high to low,
    losses low to high; trials without the figure (pending, failed) last, in trial order."""
    sweep = Sweep.load(sweep_dir)
    metric = metric or sweep.metric
    if metric not in METRICS:
        raise SweepError(f"metric {metric!r}: use one of {', '.join(METRICS)}")
    rows = [trial_row(sweep, i, sweep.trial_folder(i)) for i in range(1, len(sweep.trials) + 1)]
    return sort_rows(rows, metric)


def sort_rows(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Best first by `metric`: accuracies high to low, losses low to high; rows without it last, in trial order."""
    sign = 1 if metric.endswith("_loss") else -1

    def key(r: dict[str, Any]) -> tuple:
        v = r.get(metric)
        return (v is None, sign * v if v is not None else 0, r["trial"])

    return sorted(rows, key=key)


def table_columns(varied: list[str]) -> list[str]:
    return ["trial", *varied, "state", "epochs", "train_acc", "val_acc", "test_acc", "minutes", "run"]


def check_csv_path(path: Path) -> Path:
    """Where `--csv` will write, checked before any trial trains: a file name in a folder that exists
    and can be written (a missing folder is not made: a typo in it would hide the table)."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise SweepError(f"--csv {path}: that is a folder; give the name of a file to write")
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise SweepError(f"--csv {path}: the folder {parent} {what}")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SweepError(f"--csv {path}: cannot write there (permission denied or a read-only file system)")
    return path


def write_csv(rows: list[dict[str, Any]], path: Path, varied: list[str]) -> Path:
    path = check_csv_path(path)
    cols = table_columns(varied)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: "" if r.get(c) is None else r[c] for c in cols})
    return path
