"""`cnnlab sweep`: a grid, random or TPE search from the command line on an Optuna study, one line
per trial as it ends, then the results table (report 002's Table 1). `--workers N` trains N trials
at once on this machine, `--join` adds a worker from another terminal or machine, `--plan` lists
the trials without training, `--resume SWEEP_DIR` continues a stopped sweep. The arguments become
engine.sweeps.plan's SweepPlan and Workers; the results are engine.sweeps.folder's, the study
engine.sweeps.study's, running it engine.sweeps.runner's.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.cli.exits import EXIT_FAILED, EXIT_OK, exit_code
from engine.cli.options import runs_dir
from engine.cli.output import out, print_table
from engine.experiment.sweep_plan import METRICS, SweepError, describe_overrides
from engine.insight.formatting import cli_pct
from engine.sweeps.folder import Sweep, check_csv_path, write_csv
from engine.sweeps.launch import parse_grid_arg, parse_random_arg
from engine.sweeps.plan import SweepPlan, Workers
from engine.sweeps.runner import SweepResult, join_sweep, resume_sweep, run_sweep
from engine.sweeps.study import GRACE_S, PRUNERS, STORAGE_ENV


def add_cli(sub, common: argparse.ArgumentParser) -> None:
    """`cnnlab sweep` and its options. Long for a reason: one argparse declaration per option, each
    with its help text, read top to bottom as the command's reference; split, the help would be in pieces."""
    sp = sub.add_parser(
        "sweep",
        parents=[common],
        help="run a grid, random or TPE search over a preset's fields, one run per trial, and print the results table",
        description="Run every trial of a grid (or a random or TPE search) on an Optuna study, each a run folder "
        "inside the sweep folder, then print the table sorted by the metric. Without --grid/--random the preset's "
        "own [sweep] is used. --workers N trains N trials at once; --join adds a worker from another terminal or "
        "machine.",
    )
    sp.add_argument("source", nargs="?", metavar="PRESET_OR_TOML")
    sp.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2,...", help="values of one field (repeatable)"
    )
    sp.add_argument(
        "--random", action="append", default=[], metavar="KEY=LOW:HIGH[:log]", help="a range to draw from (repeatable)"
    )
    sp.add_argument("--trials", type=int, help="number of random (or TPE) trials")
    sp.add_argument("--seed", type=int, help="seed of the random draws (default 0)")
    sp.add_argument("--metric", choices=METRICS, help="what the table is sorted by and TPE optimises (default val_acc)")
    sp.add_argument(
        "--sampler",
        choices=("random", "tpe"),
        help="how --random ranges are searched: seeded draws planned up front (random, the default) or "
        "Optuna's TPE, which draws each trial from what the finished ones scored",
    )
    sp.add_argument("--pruner", choices=PRUNERS, help="stop hopeless trials early, judged at each epoch (default none)")
    sp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of the base experiment (repeatable)",
    )
    sp.add_argument("--data-dir", help="where the datasets are (sets data.root)")
    sp.add_argument("--name", help="a name for the sweep folder")
    sp.add_argument("--csv", metavar="FILE", help="also write the results table as CSV")
    sp.add_argument("--plan", action="store_true", help="list the trials and exit without training")
    sp.add_argument("--resume", metavar="SWEEP_DIR", help="continue a stopped sweep")
    sp.add_argument(
        "--workers",
        default="1",
        metavar="N",
        help="trials trained at once on this machine, each in its own process with its share of the cores "
        "(or its own GPUs); 'auto': one per GPU (default 1: in this process)",
    )
    sp.add_argument("--gpus-per-trial", type=int, default=1, metavar="G", help="GPUs each worker is given (default 1)")
    sp.add_argument(
        "--join",
        nargs="?",
        const="",
        metavar="SWEEP_DIR",
        help="add a worker to a running sweep: its folder, or (another machine) nothing, with --storage and --study",
    )
    sp.add_argument(
        "--storage",
        metavar="URL",
        help="keep the study in a database shared by several machines (postgresql+psycopg://user@host/db) "
        "instead of the sweep folder's study.journal; default $CNNLAB_SWEEP_STORAGE. Give the URL without its "
        "password (a command line is seen by every user): it comes from $CNNLAB_SWEEP_STORAGE, PGPASSWORD or "
        "~/.pgpass",
    )
    sp.add_argument("--study", metavar="NAME", help="with --join --storage: the study (the sweep folder's name)")
    sp.add_argument(
        "--grace",
        type=float,
        default=GRACE_S,
        metavar="SECONDS",
        help=f"a worker silent this long is taken for dead and its trial resumed by another (default {GRACE_S:g})",
    )
    sp.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # worker processes: lines, no banner
    sp.set_defaults(func=cmd_sweep, subject="sweep")


def _workers(text: str, gpus_per_trial: int) -> int:
    if text == "auto":
        from engine.compute.cores import visible_gpus

        return max(1, len(visible_gpus()) // max(1, gpus_per_trial))
    try:
        n = int(text)
    except ValueError:
        raise SweepError(f"--workers {text!r}: a number of workers (1 or more), or auto") from None
    if n < 1:
        raise SweepError("--workers: at least 1")
    return n


def cmd_sweep(args) -> int:
    """A worker joined, a sweep resumed, or a new one planned (listed, with --plan) and run; then its table."""
    from engine.events import RunHandle

    if args.csv:
        check_csv_path(Path(args.csv))  # a bad path is said now, not after every trial has trained
    workers = Workers(
        count=_workers(args.workers, args.gpus_per_trial),
        gpus_per_trial=args.gpus_per_trial,
        storage_url=args.storage,
        grace_s=args.grace,
        handle=RunHandle(),
        on_trial=lambda i, total, row: print(trial_line(i, total, row), flush=True),
    )
    if args.join is not None:
        return _join(args, workers)
    if args.resume:
        result = _resume(args, workers)
    else:
        result = _new_sweep(args, workers)
        if result is None:
            return EXIT_OK  # --plan: listed, nothing trained
    return _results(args, result)


def _say(args, text: str) -> None:
    if not args.quiet:  # unwrapped: a folder or a join command cut in two cannot be pasted
        out.print(text, markup=False, highlight=False, soft_wrap=True)


def _join(args, workers: Workers) -> int:
    """`--join`: one more worker, in this process, until the sweep has no slot left for it."""
    from engine.cli.run import StopOnInterrupt

    if args.source or args.grid or args.random or args.set or args.resume:
        raise SweepError("--join adds a worker to a sweep as it was planned: give only the sweep folder")
    with StopOnInterrupt(workers.handle):
        sweep, state = join_sweep(
            Path(args.join) if args.join else None, workers, study_name=args.study, runs_dir=runs_dir(args)
        )
    _say(args, f"worker done ({state}): {sweep.path}")
    return EXIT_OK if state == "finished" else exit_code(state)


def _resume(args, workers: Workers) -> SweepResult:
    from engine.cli.run import StopOnInterrupt

    if args.source or args.grid or args.random or args.set:
        raise SweepError("--resume continues a sweep as it was planned: give only the sweep folder")
    sweep = Sweep.load(Path(args.resume))
    _say(args, f"resuming sweep {sweep.path} ({len(sweep.trials)} trials)")
    from engine.sweeps.journal import cut_short
    from engine.sweeps.study import JOURNAL_FILE

    if cut_short(sweep.path / JOURNAL_FILE):
        _say(
            args,
            f"{sweep.path / JOURNAL_FILE}: its last line is cut short (a full disk, a copy cut short); "
            "the record it held is dropped and its slot runs again if it must",
        )
    with StopOnInterrupt(workers.handle):
        return resume_sweep(sweep.path, workers)


def _new_sweep(args, workers: Workers) -> SweepResult | None:
    """A sweep of the preset or TOML file: planned, then run; None after --plan has listed its trials."""
    from engine.cli.run import StopOnInterrupt, resolve_experiment

    if not args.source:
        raise SweepError("give a preset name or a TOML file to sweep, or --resume SWEEP_DIR")
    runs = runs_dir(args)
    exp, preset = resolve_experiment(args.source, args.set, args.data_dir, runs)
    plan = _plan(args, preset)
    slots = plan.slots(exp)
    if args.plan:
        for i, t in enumerate(slots, 1):
            print(f"trial {i:>3}: {describe_overrides(t) if t else 'drawn by TPE when it starts'}")
        return None
    if not workers.storage_url and os.environ.get(STORAGE_ENV):
        workers = replace(workers, storage_url=os.environ[STORAGE_ENV])  # a new sweep's database: the environment's
    how = f", {workers.count} workers" if workers.count > 1 else ""
    _say(args, f"sweep of {len(slots)} trials over {', '.join(plan.varied)}, sorted by {plan.metric}{how}")
    with StopOnInterrupt(workers.handle):
        return run_sweep(
            exp,
            plan,
            runs_dir=runs,
            workers=workers,
            on_created=lambda sweep: _say(args, join_hint(sweep, workers.storage_url)),
        )


def _plan(args, preset) -> SweepPlan:
    """The sweep the arguments ask for: their --grid and --random, else the preset's [sweep]; its
    trials, seed and metric where the arguments give none."""
    grid = dict(parse_grid_arg(g) for g in args.grid)
    if len(grid) != len(args.grid):
        raise SweepError("each --grid key may appear once")
    random = dict(parse_random_arg(r) for r in args.random)
    spec = preset.sweep if preset is not None else None
    trials = args.trials
    if not grid and not random:
        if spec is None:
            raise SweepError(f"{args.source} has no [sweep] table: give --grid KEY=V1,V2 or --random KEY=LOW:HIGH")
        grid, random = dict(spec.grid), spec.ranges()
        trials = trials if trials is not None else spec.trials
    return SweepPlan(
        grid=grid,
        random=random,
        trials=trials,
        seed=args.seed if args.seed is not None else (spec.seed if spec else 0),
        sampler=args.sampler or "random",
        metric=args.metric or (spec.metric if spec else "val_acc"),
        pruner=args.pruner or "none",
        preset=preset.name if preset else None,
        name=args.name,
    )


def _results(args, result: SweepResult) -> int:
    """The results table (and its CSV), the sweep's folder, and the exit status."""
    from engine.insight.show import sweep_table

    sweep = Sweep.load(result.path)
    print_table(sweep_table(result.rows, sweep.varied, sweep.metric))
    if args.csv:
        print(f"table written to {write_csv(result.rows, Path(args.csv), sweep.varied)}")
    print(result.path)
    if result.state == "stopped":
        out.print(result.message, style="yellow", markup=False, highlight=False)
        return exit_code(result.state)
    return EXIT_OK if any(r["state"] == "finished" for r in result.rows) else EXIT_FAILED


def join_hint(sweep: Sweep, storage_url: str | None) -> str:
    """Where the sweep is, and how another terminal (or, through a database, another machine) adds a worker."""
    if storage_url:
        from engine.sweeps.study import strip_password

        # without the password: the other machine has it in CNNLAB_SWEEP_STORAGE, PGPASSWORD or ~/.pgpass
        where = f"--join --storage {strip_password(storage_url)} --study {sweep.study_name}"
    else:
        where = f"--join {sweep.path}"
    return f"sweep folder {sweep.path}\nadd a worker from another terminal: cnnlab sweep {where}"


def trial_line(i: int, total: int, row: dict[str, Any]) -> str:
    """One plain line per finished trial; the varied fields are the row's dotted keys."""
    fields = " ".join(f"{k}={v}" for k, v in row.items() if "." in k)
    minutes = f"{row['minutes']:.2f} min" if row.get("minutes") is not None else "-"
    return (
        f"trial {i}/{total} {row['state']}: {fields}  train {cli_pct(row['train_acc'])}  "
        f"val {cli_pct(row['val_acc'])}  test {cli_pct(row['test_acc'])}  {minutes}"
    )


def order_sweep_command(path: Path, command: str, wait_s: float) -> int:
    """`cnnlab stop | pause | continue | checkpoint SWEEP_DIR`: the order to every worker of the sweep
    (engine.sweeps.control); a stop waits, up to `wait_s`, until no trial of it trains anywhere."""
    import time

    from engine.cli.exits import CommandFailed
    from engine.sweeps.control import order_sweep, running_trials

    done = order_sweep(path, command)
    name, n = done.sweep.id, len(done.runs)
    trials = f"{n} running trial{'s' if n != 1 else ''} here"
    if command == "stop":
        deadline = time.monotonic() + max(wait_s, 0.0)
        while running_trials(done.sweep):
            if time.monotonic() > deadline:
                raise CommandFailed(
                    f"stop {name}",
                    "some trials still train (a long batch, or a worker on another machine); "
                    "they stop at their next batch (raise --wait to wait longer)",
                )
            time.sleep(0.2)  # a poll interval: waiting for the workers to say their trials stopped
        out.print(
            f"sweep {name} stopped ({trials} told); continue with: cnnlab sweep --resume {path}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_OK
    said = {
        "pause": f"paused: its workers pause their trials at the next batch and take no new one ({trials})",
        "continue": f"running again ({trials} told to continue)",
        "checkpoint": f"{trials} told to write a checkpoint of their exact position",
    }[command]
    out.print(f"sweep {name} {said}", markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK
