"""What a sweep is asked as: the CLI's `--grid` and `--random` arguments, and the console's form
(SweepLaunch, a pydantic model the form is generated from), and starting one as its own process so
that it outlives the console that started it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.experiment.config import Experiment
from engine.experiment.errors import ConfigError
from engine.experiment.sweep_plan import METRICS, SweepError
from engine.sweeps.folder import Sweep
from engine.sweeps.plan import SweepPlan
from engine.sweeps.study import PRUNERS

SWEEP_LOG = "sweep.log"  # a sweep started by the console writes its lines here


def parse_grid_arg(text: str) -> tuple[str, list[Any]]:
    """`optim.lr=0.0001,0.001` -> ("optim.lr", [0.0001, 0.001]); values in TOML syntax, else strings."""
    from engine.experiment.overrides import parse_value

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
    from engine.experiment.overrides import parse_value

    key, sep, rng = text.partition("=")
    parts = rng.split(":")
    usage = f"--random {text!r}: expected KEY=LOW:HIGH or KEY=LOW:HIGH:log, e.g. --random optim.lr=0.0001:0.1:log"
    if (
        not sep
        or not key.strip()
        or len(parts) not in (2, 3)
        or (len(parts) == 3 and parts[2].strip() not in ("log", "lin"))
    ):
        raise SweepError(usage)
    low, high = parse_value(parts[0].strip()), parse_value(parts[1].strip())
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high)):
        raise SweepError(usage)
    return key.strip(), {"low": low, "high": high, "log": len(parts) == 3 and parts[2].strip() == "log"}


class SweepLaunch(BaseModel):
    """A sweep as the console's form asks for it: the search, its size, and the workers."""

    model_config = ConfigDict(extra="forbid")

    grid: str = Field(
        "",
        title="Grid",
        description="KEY=V1,V2,… entries separated by ';' (optim.lr=0.1,0.01; optim.momentum=0.9,0.5): "
        "every combination runs once",
    )
    random: str = Field(
        "",
        title="Random ranges",
        description="KEY=LOW:HIGH[:log] entries separated by ';' (optim.lr=0.0001:0.1:log), drawn --trials times",
    )
    sampler: Literal["random", "tpe"] = Field(
        "random",
        title="Search",
        description="random: seeded draws planned up front; tpe: Optuna's TPE draws each trial from what the "
        "finished ones scored",
    )
    trials: int | None = Field(None, ge=1, le=10000, title="Trials", description="random or TPE draws")
    seed: int = Field(0, ge=0, le=2**31 - 1, title="Seed", description="of the random draws")
    metric: Literal[METRICS] = Field(  # type: ignore[valid-type]
        "val_acc", title="Metric", description="what the table is sorted by and TPE and the pruner judge"
    )
    pruner: Literal[PRUNERS] = Field(  # type: ignore[valid-type]
        "none", title="Pruner", description="stop hopeless trials early, judged at each epoch"
    )
    workers: int = Field(
        1, ge=1, le=64, title="Workers", description="trials trained at once, each its own process and cores"
    )

    @classmethod
    def from_spec(cls, spec: Any) -> "SweepLaunch":
        """A preset's [sweep] table (engine.experiment.presets.SweepSpec) as the form's starting values."""
        grid = "; ".join(f"{k}={','.join(_text(v) for v in vs)}" for k, vs in spec.grid.items())
        random = "; ".join(
            f"{k}={_text(r.low)}:{_text(r.high)}" + (":log" if r.log else "") for k, r in spec.random.items()
        )
        return cls(grid=grid, random=random, trials=spec.trials, seed=spec.seed, metric=spec.metric)

    def search(self) -> tuple[dict[str, list[Any]], dict[str, dict[str, Any]]]:
        """The grid and the ranges as engine.sweeps.runner takes them; ConfigError names the entry."""
        grid: dict[str, list[Any]] = {}
        random: dict[str, dict[str, Any]] = {}
        problems: list[tuple[str, str]] = []
        for field, parse, out in (("grid", parse_grid_arg, grid), ("random", parse_random_arg, random)):
            for entry in (e.strip() for e in getattr(self, field).split(";")):
                if not entry:
                    continue
                try:
                    key, value = parse(entry)
                except SweepError as err:
                    problems.append((field, str(err).replace("--grid ", "").replace("--random ", "")))
                    continue
                if key in out:
                    problems.append((field, f"{key} appears twice"))
                out[key] = value
        if problems:
            raise ConfigError(problems)
        return grid, random

    def plan(self, *, preset: str | None = None, name: str | None = None) -> SweepPlan:
        """The sweep the form asks for, as engine.sweeps.runner takes it; ConfigError names the entry."""
        grid, random = self.search()
        return SweepPlan(
            grid=grid,
            random=random,
            trials=self.trials,
            seed=self.seed,
            sampler=self.sampler,
            metric=self.metric,
            pruner=self.pruner,
            preset=preset,
            name=name,
        )

    def check(self, exp: Experiment) -> list[tuple[str, str]]:
        """Every problem of this sweep over `exp`, each as (form field, message naming the key)."""
        try:
            plan = self.plan()
        except ConfigError as err:
            return list(err.problems)
        try:
            plan.slots(exp)
        except ConfigError as err:
            return [(_field_of(loc, plan.grid or {}), _say(loc, msg)) for loc, msg in err.problems]
        except SweepError as err:
            return [("random" if self.sampler == "tpe" else "grid", str(err))]
        return []


def _field_of(loc: str, grid: dict[str, Any]) -> str:
    if loc in SweepLaunch.model_fields:
        return loc
    return "grid" if loc in grid else "random"


def _say(loc: str, msg: str) -> str:
    return msg if loc in SweepLaunch.model_fields else f"{loc}: {msg}"


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    import tomli_w

    return tomli_w.dumps({"v": v})[4:].strip()


def start_detached(
    exp: Experiment, launch: SweepLaunch, *, runs_dir: Path, preset: str | None = None, name: str | None = None
) -> Sweep:
    """Make the sweep (its folder and study, every slot queued) and start its workers as their own
    process: the sweep trains on when the console that started it closes. Its lines go to sweep.log."""
    from engine.sweeps.runner import create_sweep

    sweep, _ = create_sweep(exp, launch.plan(preset=preset, name=name), runs_dir=runs_dir)
    resume_detached(sweep.path, launch.workers)
    return sweep


def resume_detached(sweep_dir: Path, workers: int, storage_url: str | None = None) -> subprocess.Popen:
    """`cnnlab sweep --resume SWEEP_DIR --workers N` as its own process, its lines in sweep.log; the
    database's URL (password and all) in its environment, never on its command line."""
    from engine.sweeps.study import STORAGE_ENV, storage_url_of

    env = {k: v for k, v in os.environ.items() if k != STORAGE_ENV}
    url = storage_url_of(Sweep.load(sweep_dir), storage_url)
    if url:
        env[STORAGE_ENV] = url
    with open(Path(sweep_dir) / SWEEP_LOG, "a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "engine", "sweep", "--resume", str(sweep_dir), "--workers", str(workers)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the console's process group: a closed terminal does not stop it
            cwd=os.getcwd(),
        )
