"""`cnnlab show RUN_DIR`: a run's report (engine.insight.show draws it), or a sweep folder's results table.
`--checkpoint best|last` evaluates that checkpoint on the test set now, through the trainer (torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.exits import EXIT_OK, CommandFailed, UsageError
from engine.cli.output import out, print_table
from engine.runfolder.folder import default_runs_dir
from engine.runfolder.table import read_run


def add_cli(sub, common: argparse.ArgumentParser) -> None:
    sp = sub.add_parser(
        "show",
        parents=[common],
        help="a run's figures beside its report's, per class, the confusion matrix and test images "
        "(or a sweep's table)",
    )
    sp.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (or its id in the runs folder), or a sweep folder")
    sp.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        help="evaluate this checkpoint on the test set now instead of reading summary.json",
    )
    sp.set_defaults(func=cmd_show)


def cmd_show(args) -> int:
    from engine.insight.show import run_report, sweep_table
    from engine.sweeps.folder import Sweep, is_sweep, results_table

    runs = Path(args.runs_dir) if getattr(args, "runs_dir", None) else None
    path = Path(args.run_dir)
    if not path.exists() and (runs or default_runs_dir()).joinpath(args.run_dir).is_dir():
        path = (runs or default_runs_dir()) / args.run_dir
    if is_sweep(path):
        sweep = Sweep.load(path)
        print_table(sweep_table(results_table(path), sweep.varied, sweep.metric))
        return EXIT_OK
    info = read_run(path)
    if info is None:
        if not path.exists():
            raise UsageError(f"no run folder {path} (give a run folder, or a run's id in the runs folder)")
        raise UsageError(f"{path} is not a run folder: it holds no config.toml, status.json or metrics.jsonl")
    summary = None
    if args.checkpoint:
        summary = _evaluate(path, args.checkpoint)
    out.print(run_report(path, summary, runs))
    if info.problems:  # what reads is shown above; the exit code tells a script the folder is damaged
        raise UsageError(f"{path} is damaged: " + "; ".join(info.problems))
    return EXIT_OK


def _evaluate(path: Path, which: str) -> dict:
    """The checkpoint's test figures now; a damaged checkpoint or config, or missing data, is bad input."""
    if not (path / "checkpoints" / f"{which}.pt").is_file():
        raise UsageError(f"{path} has no {which} checkpoint")
    from engine.data.splits import DatasetMissing
    from engine.experiment.errors import ConfigError
    from engine.models import WeightsUnavailable
    from engine.training.checkpoint import CheckpointError
    from engine.training.predict import evaluate_checkpoint

    try:
        return evaluate_checkpoint(path, which)
    except (ConfigError, CheckpointError, DatasetMissing, WeightsUnavailable) as e:
        raise UsageError(f"cannot evaluate the {which} checkpoint: {e}") from None
    except Exception as e:  # a checkpoint of another model, out of memory: a line, not a traceback
        raise CommandFailed(f"cannot evaluate the {which} checkpoint", str(e)) from None
