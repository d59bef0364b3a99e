"""The headless CLI: `cnnlab run | resume | presets | runs | keys | sweep | show | bench`.

Torch is imported only by the commands that train or build a model, so listing stays instant.
Bad input exits 2 with a message that names the field; it never shows a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.config import ConfigError, Experiment, all_keys, apply_overrides, parse_value
from engine.runs import default_runs_dir, list_runs, user_presets_dir

console = Console()
err_console = Console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 130


class UsageError(Exception):
    pass


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set optim.lr=0.01")
        out[key.strip()] = parse_value(value.strip())
    return out


def resolve_experiment(source: str, sets: list[str], data_dir: str | None, runs_dir: Path) -> tuple[Experiment, Any]:
    """A preset name or TOML file, with `--set` overrides and `--data-dir`, validated."""
    from engine.presets import load_experiment_source

    exp, preset = load_experiment_source(source, user_presets_dir(runs_dir))
    overrides = parse_sets(sets)
    if data_dir:
        overrides["data.root"] = data_dir
    return apply_overrides(exp, overrides), preset


def _runs_dir(args) -> Path:
    return Path(args.runs_dir) if getattr(args, "runs_dir", None) else default_runs_dir()


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
        err_console.print("stopping at the next batch (Ctrl+C again to abort)…", style="yellow")
        self.handle.stop()

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


def _exit_code(state: str) -> int:
    return {"finished": EXIT_OK, "stopped": EXIT_STOPPED}.get(state, EXIT_FAILED)


def cmd_run(args) -> int:
    runs_dir = _runs_dir(args)
    exp, preset = resolve_experiment(args.source, args.set, args.data_dir, runs_dir)
    if args.dry_run:
        from engine.data import DatasetMissing
        from engine.device import DeviceUnavailable
        from engine.models import WeightsUnavailable
        from engine.trainer import dry_run

        try:
            info = dry_run(exp)
        except (DatasetMissing, WeightsUnavailable, DeviceUnavailable) as err:
            raise UsageError(str(err)) from None
        console.print(
            f"ok: {exp.model.arch} on {exp.data.dataset}, {info['params']:,} parameters "
            f"({info['trainable']:,} trainable), input {tuple(info['input_shape'])} → output {tuple(info['output_shape'])}, {info['device']}"
        )
        return EXIT_OK
    from engine.events import RunHandle
    from engine.progress import ConsoleProgress
    from engine.trainer import run_experiment

    handle = RunHandle()
    progress = ConsoleProgress(console)
    with StopOnInterrupt(handle):
        result = run_experiment(
            exp, runs_dir=runs_dir, preset=preset.name if preset else None, name=args.name, listener=progress, handle=handle
        )
    progress.close()
    print(result.folder.path)
    return _exit_code(result.state)


def cmd_resume(args) -> int:
    from engine.events import RunHandle
    from engine.progress import ConsoleProgress
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
    handle = RunHandle()
    progress = ConsoleProgress(console)
    with StopOnInterrupt(handle):
        result = resume_run(path, listener=progress, handle=handle)
    progress.close()
    print(result.folder.path)
    return _exit_code(result.state)


def cmd_presets(args) -> int:
    from engine.presets import load_presets

    presets, problems = load_presets(user_presets_dir(_runs_dir(args)))
    table = Table(title="presets", box=None, pad_edge=False)
    for col in ("name", "report", "model", "dataset", "report's result", "description"):
        table.add_column(col, overflow="fold")
    for p in presets:
        e = p.experiment
        table.add_row(
            p.name + (" (yours)" if p.user else ""),
            p.report.split("_")[0] if p.report else "-",
            e.model.arch,
            e.data.dataset,
            reference_text(p.reference),
            p.description,
        )
    console.print(table)
    for prob in problems:
        err_console.print(f"[red]{prob.source}[/red]: {prob.message}")
    return EXIT_OK


def reference_text(ref: dict | None) -> str:
    if not ref:
        return "-"
    bits = [f"{k.replace('_acc', '')} {100 * ref[k]:.2f}%" for k in ("test_acc", "val_acc") if ref.get(k) is not None]
    if not bits and ref.get("train_acc") is not None:
        bits = [f"train {100 * ref['train_acc']:.2f}%"]
    if not bits:
        return "-"
    return ", ".join(bits) + (f" @{ref['epochs']} ep" if ref.get("epochs") else "")


def cmd_runs(args) -> int:
    from engine.presets import load_presets
    from engine.progress import pct

    runs_dir = _runs_dir(args)
    runs = list_runs(runs_dir)
    if not runs:
        console.print(f"no runs in {runs_dir}")
        return EXIT_OK
    presets = {p.name: p for p in load_presets(user_presets_dir(runs_dir))[0]}
    table = Table(box=None, pad_edge=False)
    for col in ("id", "preset", "status", "epochs", "best val", "test", "report"):
        table.add_column(col)
    colours = {"finished": "green", "running": "cyan", "stopped": "yellow", "failed": "red", "diverged": "red", "crashed": "red"}
    for r in runs:
        ref = presets[r.preset].reference if r.preset in presets else None
        table.add_row(
            r.id,
            r.preset or "-",
            f"[{colours.get(r.state, 'white')}]{r.state}[/]",
            f"{r.epochs_done}/{r.epochs}",
            pct(r.best_val_acc),
            pct(r.test_acc),
            reference_text(ref),
        )
    console.print(table)
    return EXIT_OK


def cmd_keys(args) -> int:
    """Every config key with its type, range or choices and help: what `--set` accepts."""
    table = Table(box=None, pad_edge=False)
    for col in ("key", "default", "accepts", "help"):
        table.add_column(col, overflow="fold")
    defaults = Experiment().model_dump(mode="json")
    for key, info in all_keys():
        section, name = key.split(".")
        table.add_row(key, repr(defaults[section][name]), accepts(info), info.description or "")
    console.print(table)
    return EXIT_OK


def accepts(info) -> str:
    """What a field takes, read from its schema (the same facts the console's form shows)."""
    from typing import get_args, get_origin, Literal

    ann = info.annotation
    args = [a for a in get_args(ann) if a is not type(None)] if get_origin(ann) is not None and get_origin(ann) is not Literal else []
    base = args[0] if len(args) == 1 else ann
    if get_origin(base) is Literal:
        return " | ".join(str(a) for a in get_args(base))
    bounds = []
    for m in info.metadata:
        for attr, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                bounds.append(f"{sym} {getattr(m, attr)}")
    name = getattr(base, "__name__", str(base))
    optional = type(None) in get_args(ann)
    return f"{name}{' ' + ', '.join(bounds) if bounds else ''}{' or empty' if optional else ''}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnnlab", description="CNN image-classification experiments: console (no arguments) and headless commands.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def runs_dir_opt(sp):
        sp.add_argument("--runs-dir", help="runs folder (default ./runs or $CNNLAB_RUNS)")

    r = sub.add_parser("run", help="train a preset or a TOML experiment")
    r.add_argument("source", metavar="PRESET_OR_TOML")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field, e.g. optim.lr=0.01 (repeatable)")
    r.add_argument("--data-dir", help="where the datasets are (sets data.root)")
    r.add_argument("--name", help="a name for the run folder")
    r.add_argument("--dry-run", action="store_true", help="validate, build the model and run one forward pass; no data needed")
    runs_dir_opt(r)
    r.set_defaults(func=cmd_run)

    rs = sub.add_parser("resume", help="continue a stopped or crashed run from its last checkpoint")
    rs.add_argument("run_dir", metavar="RUN_DIR")
    rs.set_defaults(func=cmd_resume)

    ps = sub.add_parser("presets", help="list the presets (built-in and yours)")
    runs_dir_opt(ps)
    ps.set_defaults(func=cmd_presets)

    rn = sub.add_parser("runs", help="list the runs")
    runs_dir_opt(rn)
    rn.set_defaults(func=cmd_runs)

    k = sub.add_parser("keys", help="list every config key, its range or choices, and its help")
    k.set_defaults(func=cmd_keys)

    from engine import bench, show, sweep

    sweep.add_cli(sub)
    show.add_cli(sub)
    bench.add_cli(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        err_console.print("[bold red]invalid experiment[/]" + (f" in {err.source}" if err.source else "") + ":")
        for loc, msg in err.problems:
            err_console.print(f"  [cyan]{loc or '(experiment)'}[/]: {msg}")
        return EXIT_USAGE
    except (UsageError, KeyError, FileNotFoundError, ValueError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        err_console.print(f"[bold red]error:[/] {msg}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err_console.print("aborted")
        return EXIT_STOPPED
