"""`cnnlab show RUN_DIR`: a run's report (engine.show draws it), or a sweep folder's results table.
`--checkpoint best|last` evaluates that checkpoint on the test set now, through the trainer (torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.exits import EXIT_OK, CommandFailed, UsageError
from engine.cli.output import out, print_table
from engine.runs import default_runs_dir, read_run


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
    from engine.show import run_report, sweep_table
    from engine.sweep import Sweep, is_sweep, results_table

    runs = Path(args.runs_dir) if getattr(args, "runs_dir", None) else None
    path = Path(args.run_dir)
    if not path.exists() and (runs or default_runs_dir()).joinpath(args.run_dir).is_dir():
        path = (runs or default_runs_dir()) / args.run_dir
    if is_sweep(path):
        sweep = Sweep.load(path)
        print_table(sweep_table(results_table(path), sweep.varied, sweep.metric))
        return EXIT_OK
    if read_run(path) is None:
        raise UsageError(f"{path} is not a run folder (no config.toml)")
    summary = None
    if args.checkpoint:
        if not (path / "checkpoints" / f"{args.checkpoint}.pt").exists():
            raise UsageError(f"{path} has no {args.checkpoint} checkpoint")
        from engine.predict import evaluate_checkpoint

        try:
            summary = evaluate_checkpoint(path, args.checkpoint)
        except Exception as e:  # a missing dataset, an unreadable checkpoint: a line, not a traceback
            raise CommandFailed(f"cannot evaluate the {args.checkpoint} checkpoint", str(e)) from None
    out.print(run_report(path, summary, runs))
    return EXIT_OK
