"""`cnnlab run … --seeds N`: the experiment N times, seeds train.seed, train.seed + 1, …, one after
another, into ordinary run folders named `<name>-seed<S>`: a seed group (engine.insight.seed_groups), whose
mean ± std is printed at the end. Ctrl+C stops the run in progress and starts no more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.cli.exits import EXIT_OK, EXIT_STOPPED, UsageError
from engine.cli.output import out

MAX_SEEDS = 100


def train_seeds(exp, preset, runs: Path, name: str | None, seeds: int, train: Callable) -> int:
    """Train `seeds` runs through `train` (engine.cli.run's foreground trainer); the worst exit code."""
    from engine.experiment.overrides import apply_overrides
    from engine.insight.seed_groups import SeedGroup
    from engine.runfolder.table import read_run
    from engine.training.trainer import run_experiment

    if not 1 <= seeds <= MAX_SEEDS:
        raise UsageError(f"--seeds {seeds}: use 1 to {MAX_SEEDS}")
    stem = name or (preset.name if preset else exp.model.arch)
    first = exp.train.seed
    codes, folders = [], []
    for seed in range(first, first + seeds):
        one = apply_overrides(exp, {"train.seed": seed})
        out.print(f"seed {seed} ({seed - first + 1} of {seeds})", style="bold", highlight=False)

        def start(one=one, seed=seed, **kw):
            result = run_experiment(
                one, runs_dir=runs, preset=preset.name if preset else None, name=f"{stem}-seed{seed}", **kw
            )
            folders.append(result.folder.path)
            return result

        code = train(start)
        codes.append(code)
        if code == EXIT_STOPPED:
            break
    infos = [i for i in (read_run(p) for p in folders) if i is not None]
    if len(infos) > 1:
        group = SeedGroup("", infos, [int(s) for s in range(first, first + len(infos))])
        out.print(group.text(), markup=False, highlight=False, soft_wrap=True)
    return max(codes, key=lambda c: (c != EXIT_OK, c)) if codes else EXIT_OK
