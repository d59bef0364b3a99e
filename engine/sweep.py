"""Sweeps: one base experiment, a grid or a random search over some of its fields, one run per trial.

    <runs>/<sweep-id>/sweep.toml          the base experiment, the trials (their overrides), the metric
    <runs>/<sweep-id>/<run-id>/ ...        each trial: an ordinary run folder (named ...-trial-NNN-...)

Every trial's overrides are validated through engine.config before anything trains, so a bad grid
value is an error naming the key, not a failure an hour in. Trials run one after another; a stopped
sweep resumes: finished trials are kept, a stopped or crashed trial continues from its checkpoint,
the rest run. The results table (report 002's Table 1) reads everything back from the folders.

No torch at import: the trainer is imported when a trial runs, so `cnnlab presets` stays fast.
"""

from __future__ import annotations

import csv
import itertools
import math
import random as _random
import re
import secrets
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import tomli_w

from engine.config import ConfigError, Experiment, apply_overrides, flatten, parse_value, validate_experiment
from engine.events import Listener, RunHandle
from engine.runs import RunFolder, atomic_write_text, default_runs_dir, read_run, safe_name

METRICS = ("val_acc", "test_acc", "train_acc", "val_loss", "test_loss", "train_loss")
# A diverged trial is an outcome of its hyperparameters (say, too high an lr), not something to retry.
DONE_STATES = ("finished", "diverged")
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
        problems.append(("grid", "a sweep needs a grid (lists of values) or a random search (ranges and a trial count)"))
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

    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else [{}]
    draws: list[dict[str, Any]] = [{}]
    if random:
        rng = _random.Random(seed)
        draws = [{k: _draw(rng, s, isinstance(base_flat[k], int)) for k, s in random.items()} for _ in range(trials or 0)]
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
            for p in own or [(loc, f"trial {i} ({_describe(overrides)}): {msg}") for loc, msg in err.problems]:
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


def _describe(overrides: dict[str, Any]) -> str:
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
        varied = list(dict.fromkeys(k for t in trials for k in t))
        sweep = cls(path, base, trials, metric, preset or "", varied, spec or {})
        doc = {
            "sweep": {"preset": sweep.preset, "metric": metric, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "varied": varied, **(spec or {})},
            "trials": [{"index": i, "overrides": t} for i, t in enumerate(trials, 1)],
            "experiment": base.model_dump(mode="json", exclude_none=True),
        }
        atomic_write_text(path / SWEEP_FILE, tomli_w.dumps(doc))
        return sweep

    @classmethod
    def load(cls, path: Path) -> "Sweep":
        path = Path(path)
        try:
            doc = tomllib.loads((path / SWEEP_FILE).read_text())
        except FileNotFoundError:
            raise SweepError(f"{path} is not a sweep folder (no {SWEEP_FILE})") from None
        except tomllib.TOMLDecodeError as err:
            raise SweepError(f"{path / SWEEP_FILE} does not read: {err}") from None
        meta = doc.get("sweep", {})
        base = validate_experiment(doc.get("experiment", {}), str(path / SWEEP_FILE))
        trials = [dict(t.get("overrides", {})) for t in sorted(doc.get("trials", []), key=lambda t: t.get("index", 0))]
        spec = {k: v for k, v in meta.items() if k not in ("preset", "metric", "created", "varied")}
        return cls(path, base, trials, meta.get("metric", "val_acc"), meta.get("preset", ""), list(meta.get("varied", [])), spec)

    def trial_experiment(self, index: int) -> Experiment:
        return apply_overrides(self.base, self.trials[index - 1])

    def trial_folder(self, index: int) -> Path | None:
        """The run folder of trial `index` (1-based), if it was started; the newest if there are several."""
        pattern = re.compile(rf"-trial-{index:03d}-[0-9a-f]+$")
        found = sorted(p for p in self.path.iterdir() if p.is_dir() and pattern.search(p.name) and (p / "config.toml").exists())
        return found[-1] if found else None


def is_sweep(path: Path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


# --- running -----------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    path: Path
    state: str  # finished (every trial has ended), stopped (resumable)
    rows: list[dict[str, Any]]
    message: str = ""


TrialCallback = Callable[[int, int, dict[str, Any]], None]  # (trial index, number of trials, its table row)


def run_sweep(
    base_exp: Experiment,
    *,
    runs_dir: Path | None = None,
    grid: dict[str, list[Any]] | None = None,
    random: dict[str, dict[str, Any]] | None = None,
    trials: int | None = None,
    seed: int = 0,
    metric: str = "val_acc",
    preset: str | None = None,
    name: str | None = None,
    listener: Listener | None = None,
    handle: RunHandle | None = None,
    on_trial: TrialCallback | None = None,
) -> SweepResult:
    """Plan (validating every trial), create the sweep folder, and run the trials one after another."""
    plan = plan_trials(base_exp, grid=grid, random=random, trials=trials, seed=seed)
    spec: dict[str, Any] = {}
    if grid:
        spec["grid"] = grid
    if random:
        spec.update(random=random, trials=trials, seed=seed)
    sweep = Sweep.create(Path(runs_dir or default_runs_dir()), base_exp, plan, metric=metric, preset=preset, name=name, spec=spec)
    return _run_trials(sweep, listener, handle, on_trial)


def resume_sweep(
    sweep_dir: Path, *, listener: Listener | None = None, handle: RunHandle | None = None, on_trial: TrialCallback | None = None
) -> SweepResult:
    """Continue a sweep: finished (and diverged) trials are kept, a stopped, crashed or failed trial
    resumes from its checkpoint, trials never started run."""
    return _run_trials(Sweep.load(sweep_dir), listener, handle, on_trial)


def _run_trials(sweep: Sweep, listener: Listener | None, handle: RunHandle | None, on_trial: TrialCallback | None) -> SweepResult:
    from engine.trainer import resume_run, run_experiment  # torch, only when something trains

    handle = handle or RunHandle()
    total = len(sweep.trials)
    for i in range(1, total + 1):
        if handle.stop_requested:
            return _stopped(sweep, i)
        folder = sweep.trial_folder(i)
        if folder is not None:
            info = read_run(folder)
            if info is not None and info.state in DONE_STATES:
                continue
            if info is not None and info.state == "running":
                raise SweepError(f"trial {i} ({folder}) is still running in another process; stop it first")
            result = resume_run(folder, listener=listener, handle=handle)
        else:
            result = run_experiment(
                sweep.trial_experiment(i),
                runs_dir=sweep.path,
                preset=sweep.preset or None,
                name=f"trial-{i:03d}",
                listener=listener,
                handle=handle,
            )
        if on_trial is not None:
            on_trial(i, total, trial_row(sweep, i, result.folder.path))
        if result.state == "stopped":
            return _stopped(sweep, i)
    return SweepResult(sweep.path, "finished", results_table(sweep.path))


def _stopped(sweep: Sweep, index: int) -> SweepResult:
    msg = f"sweep stopped at trial {index} of {len(sweep.trials)}; continue with: cnnlab sweep --resume {sweep.path}"
    return SweepResult(sweep.path, "stopped", results_table(sweep.path), msg)


# --- results -----------------------------------------------------------------------------------------


def trial_row(sweep: Sweep, index: int, folder: Path | None) -> dict[str, Any]:
    """One trial's line of the table. val_acc is the best over the epochs (the checkpoint the test
    accuracy is measured on); train figures are the last epoch's; minutes add up the epochs' times."""
    row: dict[str, Any] = {"trial": index}
    overrides = sweep.trials[index - 1]
    for key in sweep.varied:
        row[key] = overrides.get(key)
    row.update(state="pending", epochs=0, train_acc=None, val_acc=None, test_acc=None, train_loss=None, val_loss=None, test_loss=None, minutes=None, run="")
    if folder is None:
        return row
    rf = RunFolder(folder)
    info = read_run(folder)
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
    sign = 1 if metric.endswith("_loss") else -1

    def key(r: dict[str, Any]) -> tuple:
        v = r.get(metric)
        return (v is None, sign * v if v is not None else 0, r["trial"])

    return sorted(rows, key=key)


def table_columns(varied: list[str]) -> list[str]:
    return ["trial", *varied, "state", "epochs", "train_acc", "val_acc", "test_acc", "minutes", "run"]


def write_csv(rows: list[dict[str, Any]], path: Path, varied: list[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = table_columns(varied)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: "" if r.get(c) is None else r[c] for c in cols})
    return path


# --- CLI ---------------------------------------------------------------------------------------------


def parse_grid_arg(text: str) -> tuple[str, list[Any]]:
    """`optim.lr=0.0001,0.001` -> ("optim.lr", [0.0001, 0.001]); values in TOML syntax, else strings."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise SweepError(f"--grid {text!r}: expected KEY=V1,V2,..., e.g. --grid optim.lr=0.001,0.01")
    try:
        parsed = tomllib.loads(f"v = [{values}]")["v"]  # keeps lists intact: schedule.milestones=[10,20],[30]
    except tomllib.TOMLDecodeError:
        parsed = [parse_value(v.strip()) for v in values.split(",")]
    return key, parsed


def parse_random_arg(text: str) -> tuple[str, dict[str, Any]]:
    """`optim.lr=1e-4:1e-1:log` -> ("optim.lr", {"low": 1e-4, "high": 0.1, "log": True})."""
    key, sep, rng = text.partition("=")
    parts = rng.split(":")
    usage = f"--random {text!r}: expected KEY=LOW:HIGH or KEY=LOW:HIGH:log, e.g. --random optim.lr=0.0001:0.1:log"
    if not sep or not key.strip() or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].strip() not in ("log", "lin")):
        raise SweepError(usage)
    low, high = parse_value(parts[0].strip()), parse_value(parts[1].strip())
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high)):
        raise SweepError(usage)
    return key.strip(), {"low": low, "high": high, "log": len(parts) == 3 and parts[2].strip() == "log"}


def add_cli(subparsers) -> None:
    sp = subparsers.add_parser(
        "sweep",
        help="run a grid or random search over a preset's fields, one run per trial, and print the results table",
        description="Run every trial of a grid (or random search) one after another, each a run folder inside the "
        "sweep folder, then print the table sorted by the metric. Without --grid/--random the preset's own [sweep] is used.",
    )
    sp.add_argument("source", nargs="?", metavar="PRESET_OR_TOML")
    sp.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...", help="values of one field (repeatable)")
    sp.add_argument("--random", action="append", default=[], metavar="KEY=LOW:HIGH[:log]", help="a range to draw from (repeatable)")
    sp.add_argument("--trials", type=int, help="number of random draws")
    sp.add_argument("--seed", type=int, help="seed of the random draws (default 0)")
    sp.add_argument("--metric", choices=METRICS, help="what the table is sorted by (default val_acc)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field of the base experiment (repeatable)")
    sp.add_argument("--data-dir", help="where the datasets are (sets data.root)")
    sp.add_argument("--runs-dir", help="runs folder (default ./runs or $CNNLAB_RUNS)")
    sp.add_argument("--name", help="a name for the sweep folder")
    sp.add_argument("--csv", metavar="FILE", help="also write the results table as CSV")
    sp.add_argument("--plan", action="store_true", help="list the trials and exit without training")
    sp.add_argument("--resume", metavar="SWEEP_DIR", help="continue a stopped sweep")
    sp.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    from rich.console import Console

    from rich.markup import escape

    from engine.cli import UsageError
    from engine.presets import UnknownPreset

    err = Console(stderr=True)
    try:
        return _cmd_sweep(args)
    except ConfigError as e:
        err.print("[bold red]invalid sweep[/]" + (f" in {escape(e.source)}" if e.source else "") + ":", highlight=False)
        for loc, msg in e.problems:
            err.print(f"  [cyan]{escape(loc or '(sweep)')}[/]: {escape(msg)}", highlight=False)
        return 2
    except (ValueError, UsageError, UnknownPreset, FileNotFoundError) as e:  # SweepError is a ValueError
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        return 2


def _cmd_sweep(args) -> int:
    from rich.console import Console

    from engine.cli import StopOnInterrupt, resolve_experiment
    from engine.show import sweep_table

    out = Console()
    runs_dir = Path(args.runs_dir) if args.runs_dir else default_runs_dir()

    def on_trial(i: int, total: int, row: dict[str, Any]) -> None:
        print(trial_line(i, total, row), flush=True)

    handle = RunHandle()
    if args.resume:
        if args.source or args.grid or args.random or args.set:
            raise SweepError("--resume continues a sweep as it was planned: give only the sweep folder")
        sweep = Sweep.load(Path(args.resume))
        out.print(f"resuming sweep {sweep.path} ({len(sweep.trials)} trials)", markup=False, highlight=False)
        with StopOnInterrupt(handle):
            result = resume_sweep(sweep.path, handle=handle, on_trial=on_trial)
    else:
        if not args.source:
            raise SweepError("give a preset name or a TOML file to sweep, or --resume SWEEP_DIR")
        exp, preset = resolve_experiment(args.source, args.set, args.data_dir, runs_dir)
        grid = dict(parse_grid_arg(g) for g in args.grid)
        if len(grid) != len(args.grid):
            raise SweepError("each --grid key may appear once")
        random = dict(parse_random_arg(r) for r in args.random)
        spec = (preset.sweep if preset is not None else None) or {}
        trials, seed = args.trials, args.seed
        if not grid and not random:
            if not spec:
                raise SweepError(f"{args.source} has no [sweep] table: give --grid KEY=V1,V2 or --random KEY=LOW:HIGH")
            grid, random = dict(spec.get("grid") or {}), dict(spec.get("random") or {})
            trials = trials if trials is not None else spec.get("trials")
        seed = seed if seed is not None else int(spec.get("seed", 0) or 0)
        metric = args.metric or spec.get("metric") or "val_acc"
        plan = plan_trials(exp, grid=grid, random=random, trials=trials, seed=seed)
        if args.plan:
            for i, t in enumerate(plan, 1):
                print(f"trial {i:>3}: {_describe(t)}")
            return 0
        out.print(f"sweep of {len(plan)} trials over {', '.join(dict.fromkeys(k for t in plan for k in t))}, sorted by {metric}", markup=False, highlight=False)
        with StopOnInterrupt(handle):
            result = run_sweep(
                exp,
                runs_dir=runs_dir,
                grid=grid,
                random=random,
                trials=trials,
                seed=seed,
                metric=metric,
                preset=preset.name if preset else None,
                name=args.name,
                handle=handle,
                on_trial=on_trial,
            )
    sweep = Sweep.load(result.path)
    out.print(sweep_table(result.rows, sweep.varied, sweep.metric))
    if args.csv:
        print(f"table written to {write_csv(result.rows, Path(args.csv), sweep.varied)}")
    print(result.path)
    if result.state == "stopped":
        out.print(result.message, style="yellow", markup=False, highlight=False)
        return 130
    return 0 if any(r["state"] == "finished" for r in result.rows) else 1


def trial_line(i: int, total: int, row: dict[str, Any]) -> str:
    """One plain line per finished trial; the varied fields are the row's dotted keys."""
    from engine.progress import pct

    fields = " ".join(f"{k}={v}" for k, v in row.items() if "." in k)
    minutes = f"{row['minutes']:.2f} min" if row.get("minutes") is not None else "-"
    return (
        f"trial {i}/{total} {row['state']}: {fields}  train {pct(row['train_acc'])}  val {pct(row['val_acc'])}  "
        f"test {pct(row['test_acc'])}  {minutes}"
    )
