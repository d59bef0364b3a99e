"""Sweeps: one base experiment, a grid or a random search over some of its fields, one run per trial.

    <runs>/<sweep-id>/sweep.toml          the base experiment, the trials (their overrides), the metric
    <runs>/<sweep-id>/<run-id>/ ...        each trial: an ordinary run folder (named ...-trial-NNN-...)

Every trial's overrides are validated through engine.config before anything trains, so a bad grid
value is an error naming the key, not a failure an hour in. Trials run one after another; a stopped
sweep resumes: finished trials are kept, a stopped or crashed trial continues from its checkpoint,
the rest run (engine/sweep_runner.py trains them). The results table (report 002's Table 1) reads
everything back from the folders.

No torch: presets validate their [sweep] here and views read sweep folders, so `cnnlab presets`
stays fast. The command line (`cnnlab sweep`) lives in engine/cli/sweep.py; the table's drawing in
engine/show.py.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import random as _random
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from engine import toml_files
from engine.config import ConfigError, Experiment, apply_overrides, flatten, validate_experiment
from engine.runs import RunFolder, atomic_write_text, read_run, safe_name

METRICS = ("val_acc", "test_acc", "train_acc", "val_loss", "test_loss", "train_loss")
SWEEP_FILE = "sweep.toml"


class SweepError(ValueError):
    """A sweep that cannot be set up or resumed; the message says why."""


# --- planning ----------------------------------------------------------------------------------------


def plan_trials(
    base_exp: Experiment,
    grid: dict[str, list[Any]] | None = None,
    random: dict[str, dict[str, Any]] | None = None,
    trials: int | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The overrides of every trial, each validated against `base_exp`.

    grid: {"optim.lr": [0.001, 0.01], ...}: the cartesian product, the first key varying slowest.
    random: {"optim.lr": {"low": 1e-4, "high": 1e-1, "log": True}}: `trials` draws (seeded); integer
    fields draw integers. Both together: every grid point gets the `trials` random draws.
    Raises ConfigError whose problems name the key (and the value or the trial) at fault.
    """
    grid, random = dict(grid or {}), dict(random or {})
    problems: list[tuple[str, str]] = []
    if not grid and not random:
        problems.append(
            ("grid", "a sweep needs a grid (lists of values) or a random search (ranges and a trial count)")
        )
    if random and trials is None:
        problems.append(("trials", "a random search needs a trial count"))
    if trials is not None and not random:
        problems.append(("trials", "only a random search takes a trial count; a grid runs every combination"))
    if trials is not None and trials < 1:
        problems.append(("trials", "at least 1"))
    for key in set(grid) & set(random):
        problems.append((key, "is both in the grid and in the random search"))
    base_flat = flatten(base_exp)

    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            problems.append((key, "a grid entry needs a non-empty list of values"))
    for key, spec in random.items():
        low, high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high)):
            problems.append((key, "a random range needs numbers low and high"))
            continue
        if not low < high:
            problems.append((key, f"the range's low ({low}) must be below its high ({high})"))
        if log and low <= 0:
            problems.append((key, "a log range needs low above 0"))
        if key in base_flat and (isinstance(base_flat[key], bool) or not isinstance(base_flat[key], (int, float))):
            problems.append((key, "a random range needs a numeric field"))
            continue
        for v in (low, high):
            problems += _check_one(base_exp, key, v)
    if problems:
        raise ConfigError(problems)

    points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())] if grid else [{}]
    draws: list[dict[str, Any]] = [{}]
    if random:
        rng = _random.Random(seed)
        draws = [
            {k: _draw(rng, s, isinstance(base_flat[k], int)) for k, s in random.items()} for _ in range(trials or 0)
        ]
    plan = [{**p, **d} for p in points for d in draws]

    # Every trial is validated whole, so values that only fit together (schedule.name = onecycle with a
    # schedule.max_lr) pass. A failing trial is blamed on its bad value when that value is wrong on its
    # own (-1 for optim.lr), else on the combination.
    found: dict[tuple[str, str], None] = {}
    for i, overrides in enumerate(plan, 1):
        try:
            apply_overrides(base_exp, overrides)
        except ConfigError as err:
            own = [p for k, v in overrides.items() for p in _check_one(base_exp, k, v)]
            for p in own or [(loc, f"trial {i} ({describe_overrides(overrides)}): {msg}") for loc, msg in err.problems]:
                found.setdefault(p)
    if found:
        raise ConfigError(list(found))
    return plan


def _check_one(base_exp: Experiment, key: str, value: Any) -> list[tuple[str, str]]:
    """Problems of one value on its own field (its type, its range, an unknown key); rules that
    tie it to other fields are left to the whole trial."""
    try:
        apply_overrides(base_exp, {key: value})
    except ConfigError as err:
        return [(loc, f"value {value!r}: {msg}") for loc, msg in err.problems if loc == key]
    return []


def _draw(rng: _random.Random, spec: dict[str, Any], integer: bool) -> float | int:
    low, high = float(spec["low"]), float(spec["high"])
    if spec.get("log"):
        v = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        v = rng.uniform(low, high)
    return int(round(v)) if integer else float(f"{v:.6g}")  # 6 figures: readable in tables and folder configs


def describe_overrides(overrides: dict[str, Any]) -> str:
    """A trial's overrides as `optim.lr=0.01, optim.momentum=0.9`."""
    return ", ".join(f"{k}={v}" for k, v in overrides.items())


# --- the sweep folder --------------------------------------------------------------------------------


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
        """Its Optuna study's name (engine.study): the folder's name where the sweep was made."""
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
        stem = safe_name(name or preset or base.model.arch)
        path = Path(runs_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-sweep-{stem}-{secrets.token_hex(2)}"
        path.mkdir(parents=True)
        spec = {"study": path.name, **(spec or {})}
        # TPE's slots are filled as the sweep goes: what it varies is its grid and ranges
        keys = [*(k for t in trials for k in t), *spec.get("grid", {}), *spec.get("random", {})]
        varied = list(dict.fromkeys(keys))
        sweep = cls(path, base, trials, metric, preset or "", varied, spec)
        doc = {
            "sweep": {
                "preset": sweep.preset,
                "metric": metric,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
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
        problem = _layout_problem(doc)
        if problem:
            raise SweepError(f"{path / SWEEP_FILE} is damaged: {problem}")
        meta = doc.get("sweep", {})
        base = validate_experiment(doc.get("experiment", {}), str(path / SWEEP_FILE))
        trials = [dict(t.get("overrides", {})) for t in sorted(doc.get("trials", []), key=lambda t: t.get("index", 0))]
        spec = {k: v for k, v in meta.items() if k not in ("preset", "metric", "created", "varied")}
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


# --- results -----------------------------------------------------------------------------------------


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
