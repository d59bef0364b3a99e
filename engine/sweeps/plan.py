"""A sweep as it is asked for, in two parts that engine.sweeps.runner takes whole: SweepPlan, what
the sweep is (what it searches, what it is sorted and pruned by, what its folder is named), kept in
its sweep.toml; and Workers, how its slots are trained from here (how many at once, where the study
is, when a silent worker counts as dead, who hears). The CLI builds both from its arguments, the
console's form (engine.sweeps.launch.SweepLaunch) the plan from its fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.experiment.config import Experiment
from engine.experiment.sweep_plan import SweepError, plan_trials
from engine.sweeps import study as st

if TYPE_CHECKING:
    from engine.events import Listener, RunHandle
    from engine.sweeps.worker import TrialCallback


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep is. grid: {"optim.lr": [0.001, 0.01]}, every combination; random: {"optim.lr":
    {"low", "high", "log"}}, `trials` draws from `seed`, planned up front (sampler "random") or drawn
    by TPE as the trials start ("tpe"); both: every grid point gets the draws. `metric` sorts the
    table (and TPE and the pruner judge by it); `preset` and `name` name the sweep folder."""

    grid: dict[str, list[Any]] | None = None
    random: dict[str, dict[str, Any]] | None = None
    trials: int | None = None
    seed: int = 0
    sampler: str = "random"
    metric: str = "val_acc"
    pruner: str = "none"
    preset: str | None = None
    name: str | None = None  # the sweep folder's, over the preset's and the architecture's

    def slots(self, base_exp: Experiment) -> list[dict[str, Any]]:
        """Every slot's overrides, validated. TPE's slots are empty: the sampler fills them as it goes,
        within ranges (and grid choices) checked here."""
        if self.sampler not in st.SAMPLERS:
            raise SweepError(f"sampler {self.sampler!r}: one of {', '.join(st.SAMPLERS)}")
        search = {"grid": self.grid, "random": self.random, "trials": self.trials, "seed": self.seed}
        if self.sampler != "tpe":
            return plan_trials(base_exp, **search)
        if not self.random:
            raise SweepError("--sampler tpe searches ranges: give --random KEY=LOW:HIGH[:log] (and --trials N)")
        plan_trials(base_exp, **search)  # every value and range end valid
        return [{} for _ in range(self.trials or 0)]

    def spec(self) -> dict[str, Any]:
        """The search as sweep.toml keeps it, for the record and for TPE's workers."""
        spec: dict[str, Any] = {
            "sampler": self.sampler if (self.random or self.sampler == "tpe") else "grid",
            "pruner": self.pruner,
        }
        if self.grid:
            spec["grid"] = self.grid
        if self.random:
            spec.update(random=self.random, trials=self.trials, seed=self.seed)
        return spec

    @property
    def varied(self) -> list[str]:
        """The fields it varies: the grid's, then the ranges'."""
        return list(dict.fromkeys([*(self.grid or {}), *(self.random or {})]))


@dataclass(frozen=True)
class Workers:
    """How a sweep's slots are trained from here: `count` at once (1: in this process; more: worker
    processes, each with its share of the cores or `gpus_per_trial` GPUs), the study in the database
    at `storage_url` (None: the sweep folder's study.journal), a worker silent `grace_s` taken for
    dead; and who hears: `listener` the runs' events (in this process), `handle` the stop and pause
    of them all, `on_trial` each slot as it ends."""

    count: int = 1
    gpus_per_trial: int = 1
    storage_url: str | None = None
    grace_s: float = st.GRACE_S
    listener: Listener | None = None
    handle: RunHandle | None = None
    on_trial: TrialCallback | None = None
