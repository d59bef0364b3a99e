"""`cnnlab sweep`: a grid, random or TPE search from the command line on an Optuna study, one line
per trial as it ends, then the results table (report 002's Table 1). `--workers N` trains N trials
at once on this machine, `--join` adds a worker from another terminal or machine, `--plan` lists
the trials without training, `--resume SWEEP_DIR` continues a stopped sweep. Planning and results
are engine.sweeps.folder's, the study engine.sweeps.study's, running it engine.sweeps.runner's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.cli.exits import EXIT_FAILED, EXIT_OK, exit_code
from engine.cli.options import runs_dir
from engine.cli.output import out, print_table
from engine.experiment.sweep_plan import METRICS, SweepError, describe_overrides
from engine.insight.formatting import cli_pct
from engine.sweeps.folder import Sweep, check_csv_path, write_csv
from engine.sweeps.launch import parse_grid_arg, parse_random_arg
from engine.sweeps.runner import join_sweep, plan_sweep, resume_sweep, run_sweep
from engine.sweeps.study import GRACE_S, PRUNERS


def add_cli(sub, common: argparse.ArgumentParser) -> None:
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
        "instead of the sweep folder's study.journal",
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
    from engine.cli.run import StopOnInterrupt, resolve_experiment
    from engine.events import RunHandle
    from engine.insight.show import sweep_table

    def on_trial(i: int, total: int, row: dict[str, Any]) -> None:
        print(trial_line(i, total, row), flush=True)

    def say(text: str) -> None:
        if not args.quiet:  # unwrapped: a folder or a join command cut in two cannot be pasted
            out.print(text, markup=False, highlight=False, soft_wrap=True)

    handle = RunHandle()
    if args.csv:
        check_csv_path(Path(args.csv))  # a bad path is said now, not after every trial has trained
    workers = _workers(args.workers, args.gpus_per_trial)
    if args.join is not None:
        if args.source or args.grid or args.random or args.set or args.resume:
            raise SweepError("--join adds a worker to a sweep as it was planned: give only the sweep folder")
        with StopOnInterrupt(handle):
            sweep, state = join_sweep(
                Path(args.join) if args.join else None,
                storage_url=args.storage,
                study_name=args.study,
                runs_dir=runs_dir(args),
                grace_s=args.grace,
                handle=handle,
                on_trial=on_trial,
            )
        say(f"worker done ({state}): {sweep.path}")
        return EXIT_OK if state == "finished" else exit_code(state)
    if args.resume:
        if args.source or args.grid or args.random or args.set:
            raise SweepError("--resume continues a sweep as it was planned: give only the sweep folder")
        sweep = Sweep.load(Path(args.resume))
        say(f"resuming sweep {sweep.path} ({len(sweep.trials)} trials)")
        with StopOnInterrupt(handle):
            result = resume_sweep(
                sweep.path,
                workers=workers,
                storage_url=args.storage,
                gpus_per_trial=args.gpus_per_trial,
                grace_s=args.grace,
                handle=handle,
                on_trial=on_trial,
            )
    else:
        if not args.source:
            raise SweepError("give a preset name or a TOML file to sweep, or --resume SWEEP_DIR")
        runs = runs_dir(args)
        exp, preset = resolve_experiment(args.source, args.set, args.data_dir, runs)
        grid = dict(parse_grid_arg(g) for g in args.grid)
        if len(grid) != len(args.grid):
            raise SweepError("each --grid key may appear once")
        random = dict(parse_random_arg(r) for r in args.random)
        spec = preset.sweep if preset is not None else None
        trials, seed = args.trials, args.seed
        if not grid and not random:
            if spec is None:
                raise SweepError(f"{args.source} has no [sweep] table: give --grid KEY=V1,V2 or --random KEY=LOW:HIGH")
            grid, random = dict(spec.grid), spec.ranges()
            trials = trials if trials is not None else spec.trials
        seed = seed if seed is not None else (spec.seed if spec else 0)
        metric = args.metric or (spec.metric if spec else "val_acc")
        sampler = args.sampler or "random"
        plan = plan_sweep(exp, grid=grid, random=random, trials=trials, seed=seed, sampler=sampler)
        if args.plan:
            for i, t in enumerate(plan, 1):
                print(f"trial {i:>3}: {describe_overrides(t) if t else 'drawn by TPE when it starts'}")
            return EXIT_OK
        varied = ", ".join(dict.fromkeys([*grid, *random]))
        how = f", {workers} workers" if workers > 1 else ""
        say(f"sweep of {len(plan)} trials over {varied}, sorted by {metric}{how}")
        with StopOnInterrupt(handle):
            result = run_sweep(
                exp,
                runs_dir=runs,
                grid=grid,
                random=random,
                trials=trials,
                seed=seed,
                metric=metric,
                preset=preset.name if preset else None,
                name=args.name,
                sampler=sampler,
                pruner=args.pruner or "none",
                workers=workers,
                storage_url=args.storage,
                gpus_per_trial=args.gpus_per_trial,
                grace_s=args.grace,
                handle=handle,
                on_trial=on_trial,
                on_created=lambda sweep: say(join_hint(sweep, args.storage)),
            )
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
        from engine.sweeps.study import hide_password

        where = f"--join --storage {hide_password(storage_url)} --study {sweep.study_name}"
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
