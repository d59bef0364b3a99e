"""The trials a sweep plans: a grid or a random search over some fields of one base experiment,
every trial's overrides validated through engine/experiment/config.py before anything trains, so a
bad grid value is an error naming the key, not a failure an hour in.

No torch: presets validate their [sweep] here, so `cnnlab presets` stays fast.
"""

from __future__ import annotations

import itertools
import math
import random as _random
from typing import Any

from engine.experiment.config import Experiment
from engine.experiment.errors import ConfigError
from engine.experiment.overrides import apply_overrides, flatten

METRICS = ("val_acc", "test_acc", "train_acc", "val_loss", "test_loss", "train_loss")


class SweepError(ValueError):
    """A sweep that cannot be set up or resumed; the message says why."""


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
    base_flat = flatten(base_exp)
    problems = [*_search_problems(grid, random, trials), *_range_problems(base_exp, base_flat, random)]
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
    found = _trial_problems(base_exp, plan)
    if found:
        raise ConfigError(found)
    return plan


def _search_problems(
    grid: dict[str, list[Any]], random: dict[str, dict[str, Any]], trials: int | None
) -> list[tuple[str, str]]:
    """Problems of the search's shape: no search, a trial count without ranges or ranges without one,
    a key both in the grid and in the ranges, a grid entry with no values."""
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
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            problems.append((key, "a grid entry needs a non-empty list of values"))
    return problems


def _range_problems(
    base_exp: Experiment, base_flat: dict[str, Any], random: dict[str, dict[str, Any]]
) -> list[tuple[str, str]]:
    """Problems of each random range: its ends (numbers, in order, above 0 for a log range), its
    field (numeric), and each end as a value of that field."""
    problems: list[tuple[str, str]] = []
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
    return problems


def _trial_problems(base_exp: Experiment, plan: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every trial validated whole, so values that only fit together (schedule.name = onecycle with a
    schedule.max_lr) pass. A failing trial is blamed on its bad value when that value is wrong on its
    own (-1 for optim.lr), else on the combination."""
    found: dict[tuple[str, str], None] = {}
    for i, overrides in enumerate(plan, 1):
        try:
            apply_overrides(base_exp, overrides)
        except ConfigError as err:
            own = [p for k, v in overrides.items() for p in _check_one(base_exp, k, v)]
            for p in own or [(loc, f"trial {i} ({describe_overrides(overrides)}): {msg}") for loc, msg in err.problems]:
                found.setdefault(p)
    return list(found)


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
