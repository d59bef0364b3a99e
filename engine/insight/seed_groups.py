"""Seed groups: runs whose configs differ only in `train.seed` are one experiment run several
times, and read as one: n, the mean and the spread of their best validation and test accuracy, and
their mean curve with its min-max band.

The spread is the sample standard deviation (n - 1 in the denominator, statistics.stdev): the seeds
are a sample of the seeds one could have used. A group needs two runs; a run alone is not a group.
Torch-free and pydantic-free: it reads config.toml as data, so the runs screen groups instantly.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from engine.experiment.config_doc import SEED_KEY, flatten_doc, group_key
from engine.runfolder.folder import RunFolder
from engine.runfolder.table import RunInfo


@dataclass(frozen=True)
class Spread:
    """mean ± std over the runs that have the figure (n of them)."""

    mean: float | None
    std: float | None  # None below two values
    n: int

    def text(self, scale: float = 100.0, digits: int = 2, unit: str = "%") -> str:
        if self.mean is None:
            return "-"
        body = f"{self.mean * scale:.{digits}f}"
        if self.std is not None:
            body += f" ± {self.std * scale:.{digits}f}"
        return body + unit


def spread(values: list[float | None]) -> Spread:
    have = [float(v) for v in values if v is not None]
    if not have:
        return Spread(None, None, 0)
    return Spread(statistics.fmean(have), statistics.stdev(have) if len(have) > 1 else None, len(have))


@dataclass
class SeedGroup:
    key: str
    runs: list[RunInfo]  # newest first, as the runs table lists them
    seeds: list[int]

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def best_val(self) -> Spread:
        return spread([r.best_val_acc for r in self.runs])

    @property
    def test(self) -> Spread:
        return spread([r.test_acc for r in self.runs])

    @property
    def label(self) -> str:
        first = self.runs[-1]
        return f"{first.preset or first.arch or 'run'}-{self.key[:6]}"

    def states(self) -> str:
        """'3 finished' or '2 finished, 1 running'."""
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.state] = counts.get(r.state, 0) + 1
        return ", ".join(f"{n} {state}" for state, n in counts.items())

    def text(self) -> str:
        """One line: n, seeds, mean ± std of best val and test accuracy."""
        return (
            f"{self.n} seeds ({', '.join(map(str, self.seeds))}): best val acc {self.best_val.text()}, "
            f"test acc {self.test.text()} (mean ± sample std)"
        )


def configs_of(runs: list[RunInfo]) -> dict[str, dict[str, Any]]:
    """Each run's flattened config by path; a config that does not read is left out."""
    out = {}
    for r in runs:
        try:
            out[str(r.path)] = flatten_doc(RunFolder(r.path).read_config_doc())
        except (OSError, ValueError):
            continue
    return out


def seed_groups(runs: list[RunInfo], configs: dict[str, dict[str, Any]] | None = None) -> list[SeedGroup]:
    """The groups among `runs` (two or more runs each, differing only in train.seed), in the order
    their newest run appears."""
    configs = configs_of(runs) if configs is None else configs
    by_key: dict[str, list[RunInfo]] = {}
    for r in runs:
        cfg = configs.get(str(r.path))
        if cfg is not None:
            by_key.setdefault(group_key(cfg), []).append(r)
    groups = []
    for key, members in by_key.items():
        # A seed trained twice (the same run again, or a sweep trial of the same config) counts once:
        # its newest run (members come newest first); the older one stays a run of its own.
        by_seed: dict[int, RunInfo] = {}
        for r in members:
            by_seed.setdefault(int(configs[str(r.path)].get(SEED_KEY, 0)), r)
        if len(by_seed) > 1:
            groups.append(SeedGroup(key, list(by_seed.values()), sorted(by_seed)))
    return groups


@dataclass
class Band:
    """A group's curve of one metric: for each epoch, the mean and the min and max over its runs."""

    epochs: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]


def band(histories: list[list[dict[str, Any]]], key: str) -> Band:
    """The mean curve and min-max band of `key` over runs' metrics (epochs any run has; each epoch
    over the runs that reached it)."""
    values: dict[int, list[float]] = {}
    for rows in histories:
        for row in rows:
            v = row.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values.setdefault(int(row["epoch"]), []).append(float(v))
    epochs = sorted(values)
    return Band(
        epochs,
        [statistics.fmean(values[e]) for e in epochs],
        [min(values[e]) for e in epochs],
        [max(values[e]) for e in epochs],
    )
