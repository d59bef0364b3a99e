"""`cnnlab lr-find`, `cnnlab export` and `cnnlab groups`: the commands that help a user understand
runs rather than start them.

- lr-find: the learning-rate range test (engine.insight.lr_find) of a preset or TOML with `--set`; the curve
  drawn in the terminal, `suggested lr: …` with its rule, and where to put it.
- export: run folders to a CSV, TensorBoard event files or W&B offline runs (engine.export); with
  --format onnx or torchscript, a run's trained model to one file (engine.cli.inference).
- groups: the seed groups in the runs folder (engine.insight.seed_groups) with mean ± std.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from engine.cli.exits import EXIT_FAILED, EXIT_OK, UsageError
from engine.cli.inference import MODEL_FORMATS, add_checkpoint_option, cmd_export_model
from engine.cli.options import runs_dir
from engine.cli.output import err, out, print_table

BATCHES_RANGE = (10, 5000)


def add_cli(sub, common: argparse.ArgumentParser) -> None:
    lf = sub.add_parser(
        "lr-find",
        parents=[common],
        help="the learning-rate range test: loss against an exponentially rising lr, and a suggested lr",
    )
    lf.add_argument("source", metavar="PRESET_OR_TOML")
    lf.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field (repeatable)")
    lf.add_argument("--data-dir", help="where the datasets are (sets data.root)")
    lf.add_argument("--batches", type=int, default=100, help="batches to try (default 100)")
    lf.add_argument("--start-lr", type=float, default=1e-7, help="the first lr (default 1e-7)")
    lf.add_argument("--end-lr", type=float, default=10.0, help="the last lr (default 10)")
    lf.add_argument("--rule", choices=("valley", "steepest"), default="valley", help="how the lr is read off the curve")
    lf.add_argument("--json", action="store_true", help="print the curve and the suggestion as JSON")
    lf.set_defaults(func=cmd_lr_find)

    ex = sub.add_parser(
        "export",
        parents=[common],
        help="runs to a CSV, TensorBoard event files or W&B offline runs; a run's model to ONNX or TorchScript",
    )
    ex.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (or ids in the runs folder)")
    ex.add_argument("--format", choices=("csv", "tensorboard", "wandb", *MODEL_FORMATS), default="csv")
    ex.add_argument(
        "--out",
        help="where to write (default: <runs>/exports/<format>); for onnx and torchscript the model file, required",
    )
    add_checkpoint_option(ex, default=None)
    ex.set_defaults(func=cmd_export)

    gr = sub.add_parser("groups", parents=[common], help="seed groups: runs that differ only in train.seed, mean ± std")
    gr.set_defaults(func=cmd_groups)


# --- lr-find ----------------------------------------------------------------------------------------


def cmd_lr_find(args) -> int:
    from engine.cli.run import resolve_experiment

    lo, hi = BATCHES_RANGE
    if not lo <= args.batches <= hi:
        raise UsageError(f"--batches {args.batches}: use {lo} to {hi}")
    if not 0 < args.start_lr < args.end_lr:
        raise UsageError(f"--start-lr {args.start_lr:g} must be above 0 and below --end-lr {args.end_lr:g}")
    exp, _ = resolve_experiment(args.source, args.set, args.data_dir, runs_dir(args))
    finding = _find(exp, args)
    if args.json:
        print(json.dumps(finding))
        return EXIT_OK if finding["suggestion"] is not None else EXIT_FAILED
    from engine.insight.lr_find_text import suggestion_line, summary_line, where_line

    out.print(summary_line(finding), markup=False, highlight=False, soft_wrap=True)
    if len(finding["lrs"]) >= 2:
        out.print(curve_text(finding, out.width, out.is_terminal), markup=False, highlight=False, end="")
    for note in finding.get("notes", []):
        out.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    out.print(suggestion_line(finding), markup=False, highlight=False, soft_wrap=True)
    where = where_line(finding)
    if where:
        out.print(where, markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK if finding["suggestion"] is not None else EXIT_FAILED


def _find(exp, args) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from engine.compute.device import DeviceUnavailable
    from engine.data.splits import DatasetMissing, DatasetUnusable
    from engine.insight.lr_find import lr_find
    from engine.models import WeightsUnavailable

    live = err.is_terminal
    bar = Progress(TextColumn("lr range test"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
    task = bar.add_task("", total=args.batches)

    def progress(done: int, total: int, lr: float, loss: float) -> None:
        bar.update(task, completed=done, description=f"lr {lr:.2e}  loss {loss:.4f}")

    try:
        if live:
            bar.console = err
            bar.start()
        finding = lr_find(
            exp,
            batches=args.batches,
            start_lr=args.start_lr,
            end_lr=args.end_lr,
            rule=args.rule,
            progress=progress if live else None,
        )
    except (DatasetMissing, DatasetUnusable, WeightsUnavailable, DeviceUnavailable) as e:
        raise UsageError(f"the lr range test cannot load its data or model: {e}") from None
    finally:
        if live:
            bar.stop()
    return finding.as_dict()


def curve_text(finding: dict, width: int, colour: bool = False):
    """The curve as plotext draws it: rich Text from its colours on a terminal, plain characters
    when piped."""
    import plotext as plt
    from rich.text import Text

    from engine.insight.lr_plot import draw_lr_curve

    draw_lr_curve(plt, finding, width=min(max(width, 40), 100), height=18)
    plt.theme("clear")
    built = plt.build() + "\n"
    return Text.from_ansi(built) if colour else plt.uncolorize(built)


# --- export -----------------------------------------------------------------------------------------


def resolve_runs(names: list[str], runs: Path) -> list[Path]:
    """Run folders given by path or by id in the runs folder; a sweep folder gives its trials."""
    from engine.runfolder.table import read_run
    from engine.sweeps.folder import is_sweep

    paths: list[Path] = []
    for name in names:
        path = Path(name)
        if not path.exists() and (runs / name).is_dir():
            path = runs / name
        if path.is_dir() and is_sweep(path):
            paths += [p for p in sorted(path.iterdir()) if p.is_dir() and read_run(p) is not None]
            continue
        if read_run(path) is None:
            raise UsageError(f"{name} is not a run folder (no config.toml)")
        paths.append(path)
    return paths


def cmd_export(args) -> int:
    from engine.export import ExtraMissing, export_runs

    if args.format in MODEL_FORMATS:
        return cmd_export_model(args)
    if args.checkpoint:
        raise UsageError(f"--checkpoint picks a model's weights, for --format {' or '.join(MODEL_FORMATS)}")
    runs = runs_dir(args)
    paths = resolve_runs(args.run_dirs, runs)
    where = Path(args.out) if args.out else runs / "exports" / args.format
    try:
        written = export_runs(paths, args.format, where)
    except ExtraMissing as e:
        raise UsageError(str(e)) from None
    n = len(paths)
    out.print(f"exported {n} run{'s' if n != 1 else ''} as {args.format}:", markup=False, highlight=False)
    for path in written:
        print(path)
    if args.format == "tensorboard":
        out.print(f"view them: tensorboard --logdir {where}", markup=False, highlight=False, soft_wrap=True)
    elif args.format == "wandb":
        out.print("upload them later: wandb sync " + " ".join(map(str, written)), markup=False, highlight=False)
    return EXIT_OK


# --- groups -----------------------------------------------------------------------------------------


def cmd_groups(args) -> int:
    from engine.insight.seed_groups import seed_groups
    from engine.runfolder.table import list_runs

    groups = seed_groups(list_runs(runs_dir(args)))
    if not groups:
        out.print("no seed groups: runs whose configs differ only in train.seed (cnnlab run … --seeds 3)")
        return EXIT_OK
    table = Table(title="seed groups (mean ± sample std over the seeds)", box=None, pad_edge=False)
    for col in ("group", "runs", "seeds", "best val acc", "test acc", "states"):
        table.add_column(col, no_wrap=True, justify="right" if col in ("runs", "best val acc", "test acc") else "left")
    for g in groups:
        table.add_row(g.label, str(g.n), ",".join(map(str, g.seeds)), g.best_val.text(), g.test.text(), g.states())
    print_table(table)
    return EXIT_OK
