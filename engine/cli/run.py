"""`cnnlab run` and `cnnlab resume`: train in the foreground, Ctrl+C stops at the next batch.

A preset name or a TOML file becomes a validated experiment with `--set` overrides and
`--data-dir` (resolve_experiment, which `cnnlab sweep` shares). A run whose input cannot train
(a missing dataset, weights that cannot be had) exits 2, as its dry run does.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from engine.cli.exits import EXIT_OK, EXIT_USAGE, UsageError, exit_code
from engine.cli.options import runs_dir
from engine.cli.output import err, out
from engine.runs import user_presets_dir


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    from engine.config import parse_value

    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set optim.lr=0.01")
        overrides[key.strip()] = parse_value(value.strip())
    return overrides


def resolve_experiment(source: str, sets: list[str], data_dir: str | None, runs: Path):
    """A preset name or TOML file, with `--set` overrides and `--data-dir`, validated: (experiment, preset or None)."""
    from engine.config import apply_overrides, unused_fields
    from engine.presets import load_experiment_source

    exp, preset = load_experiment_source(source, user_presets_dir(runs))
    overrides = parse_sets(sets)
    if data_dir:
        overrides["data.root"] = data_dir
    exp = apply_overrides(exp, overrides)
    for key, why in unused_fields(exp).items():
        if key in overrides:  # a value set for nothing: say so, it is not the edit the user meant
            err.print(f"warning: --set {key}: {why}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    return exp, preset


class StopOnInterrupt:
    """First Ctrl+C: stop at the next batch with a checkpoint. Second: give up at once."""

    def __init__(self, handle):
        self.handle, self.previous = handle, None

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, *_):
        if self.handle.stop_requested:
            raise KeyboardInterrupt
        err.print("stopping at the next batch (Ctrl+C again to abort)…", style="yellow")
        self.handle.stop()

    def __exit__(self, *_):
        signal.signal(signal.SIGINT, self.previous)


def add_cli(sub, common: argparse.ArgumentParser) -> None:
    r = sub.add_parser("run", parents=[common], help="train a preset or a TOML experiment")
    r.add_argument("source", metavar="PRESET_OR_TOML")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field, e.g. optim.lr=0.01 (repeatable)",
    )
    r.add_argument("--data-dir", help="where the datasets are (sets data.root)")
    r.add_argument("--name", help="a name for the run folder")
    r.add_argument(
        "--seeds", type=int, default=1, metavar="N", help="N runs, seeds train.seed, +1, …: a seed group (mean ± std)"
    )
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, build the model and run one forward pass; no data or download needed",
    )
    r.set_defaults(func=cmd_run)

    rs = sub.add_parser("resume", parents=[common], help="continue a stopped or crashed run from its last checkpoint")
    rs.add_argument("run_dir", metavar="RUN_DIR")
    rs.set_defaults(func=cmd_resume)


def cmd_run(args) -> int:
    runs = runs_dir(args)
    exp, preset = resolve_experiment(args.source, args.set, args.data_dir, runs)
    if args.dry_run:
        return _dry_run(exp)
    if args.seeds != 1:
        from engine.cli.seeded import train_seeds

        return train_seeds(exp, preset, runs, args.name, args.seeds, _train)
    from engine.trainer import run_experiment

    return _train(
        lambda **kw: run_experiment(exp, runs_dir=runs, preset=preset.name if preset else None, name=args.name, **kw)
    )


def cmd_resume(args) -> int:
    from engine.runs import read_run
    from engine.trainer import resume_run

    path = Path(args.run_dir)
    info = read_run(path)
    if info is None:
        raise UsageError(f"{path} is not a run folder (no config.toml)")
    if info.state == "running":
        raise UsageError(f"{path} is still running (pid alive); stop it first")
    if info.state == "finished":
        raise UsageError(f"{path} has finished all {info.epochs} epochs; nothing to resume")
    return _train(lambda **kw: resume_run(path, **kw))


def _train(start) -> int:
    """Train in the foreground with the progress display; the folder's path on stdout, last."""
    from engine.cli.progress import ConsoleProgress
    from engine.events import RunHandle

    handle = RunHandle()
    progress = ConsoleProgress(out)
    with StopOnInterrupt(handle):
        result = start(listener=progress, handle=handle)
    progress.close()
    print(result.folder.path)
    if result.state == "failed" and result.bad_input:
        return EXIT_USAGE  # its input could not train: the same code its dry run gives
    return exit_code(result.state)


def _dry_run(exp) -> int:
    from engine.data import DatasetMissing
    from engine.device import DeviceUnavailable
    from engine.dry_run import dry_run
    from engine.models import WeightsUnavailable

    try:
        info = dry_run(exp)
    except (DatasetMissing, WeightsUnavailable, DeviceUnavailable) as e:
        raise UsageError(str(e)) from None
    shapes = f"input {tuple(info['input_shape'])} → output {tuple(info['output_shape'])}"
    # soft_wrap: one line each, whatever the width, so that scripts can read them
    out.print(
        f"ok: {exp.model.arch} on {exp.data.dataset}, {info['params']:,} parameters ({info['trainable']:,} trainable), "
        f"{shapes}, {info['device']}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if "weights" in info:
        out.print(f"weights: {info['weights']}", markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK
