"""`cnnlab bench`: time pure compute, the engine and the reports' pipeline (engine.bench), and print
the table or one JSON object. `--ui` measures the console, which needs the console's entry point."""

from __future__ import annotations

import argparse
import json
import sys

from engine.bench.targets import ALL_MODELS, DEFAULT_MODELS, DEFAULT_REPEATS
from engine.cli.exits import EXIT_OK, CommandFailed, UsageError
from engine.cli.options import runs_dir
from engine.cli.output import err, out
from engine.cli.run import parse_sets

# `python -m engine` never imports Textual, so the console's own bench runs from the console's entry point.
UI_BENCH_ELSEWHERE = (
    "the console's benchmark (start-up, event-loop lateness, chart cost) runs the Textual console, so it starts "
    "from the console's entry point: `cnnlab bench --ui`, or from a checkout `python -m tui bench --ui`"
)


def add_cli(sub, common: argparse.ArgumentParser) -> None:
    """`cnnlab bench` and its options. Long for a reason: one argparse declaration per option, each
    with its help text, read top to bottom as the command's reference; split, the help would be in pieces."""
    sp = sub.add_parser(
        "bench",
        parents=[common],
        help="measure training speed: pure compute vs the engine vs the reports' DataLoader pipeline",
        description="Time, in one process and taking turns, a model's pure compute (forward + backward + step on "
        "batches in memory) in every precision and layout auto's probe weighs, the engine's real training path, and "
        "the reports' PIL-transform DataLoader pipeline; print medians, the ratios engine/best pure (goal >= 0.95) "
        "and engine/reports (goal >= 2), the ceiling (FLOPs per image against the measured matmul rate) and, at a "
        "batch of 8 or less, the engine's per-step overhead (goal within 10 %). Without a preset or --model it "
        "benches " + ", ".join(DEFAULT_MODELS) + " at their presets' batch sizes; --models all benches every "
        "architecture. --together N times N trainings at once against one alone.",
    )
    sp.add_argument(
        "preset", nargs="?", metavar="PRESET_OR_TOML", help="bench this preset (default: the four report models)"
    )
    sp.add_argument(
        "--model",
        metavar="ARCH",
        help="bench an architecture (a built-in, torchvision:NAME, timm:NAME, file.py:Class) on CIFAR-shaped "
        "data instead of a preset",
    )
    sp.add_argument("--batch", type=int, help="batch size (default: the preset's; 128 with --model)")
    sp.add_argument(
        "--models",
        help="comma-separated subset of "
        + ",".join(ALL_MODELS)
        + ", or all (default "
        + ",".join(DEFAULT_MODELS)
        + ")",
    )
    sp.add_argument("--repeats", type=int, help=f"turns of every way (default {DEFAULT_REPEATS}; the Backbone 2)")
    sp.add_argument(
        "--steps", type=int, help="timed steps per way (default per model, e.g. 10 for simplecnn, 1 for the Backbone)"
    )
    sp.add_argument("--warmup", type=int, help="untimed steps before the first timing of each way")
    sp.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    sp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field, e.g. train.precision=bf16 (repeatable)",
    )
    sp.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help="time the preset (default shapes-demo) on 1 device and on N (torchrun, DistributedDataParallel), "
        "taking turns, and the scaling ratio",
    )
    sp.add_argument(
        "--together",
        type=int,
        metavar="N",
        help="time N trainings of the preset (default shapes-demo) at once, each a `python -m engine run` "
        "process, against one alone, taking turns: the total images/s and the ratio (goal >= 0.90)",
    )
    sp.add_argument(
        "--epochs",
        type=int,
        help="with --together: epochs per training (default 4; the first warms up and is not counted)",
    )
    sp.add_argument(
        "--images", type=int, help="with --together: images an epoch (default 8192): a few seconds an epoch"
    )
    sp.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    sp.add_argument(
        "--forget",
        action="store_true",
        help="forget the precision and layout `auto` measured on this machine; the next runs measure again",
    )
    sp.add_argument(
        "--ui",
        action="store_true",
        help="measure the console instead (start-up, event-loop lateness, chart cost): `cnnlab bench --ui`",
    )
    sp.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from engine.bench import BenchError
    from engine.bench.targets import resolve_targets
    from engine.runfolder.folder import user_presets_dir

    if args.ui:
        raise UsageError(UI_BENCH_ELSEWHERE)
    if args.forget:
        return forget()
    for flag in ("batch", "repeats", "steps", "threads", "images"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag} must be at least 1")
    if args.warmup is not None and args.warmup < 0:
        raise UsageError("--warmup must be 0 or more")
    if sum([bool(args.preset), bool(args.model), bool(args.models)]) > 1:
        raise UsageError("give a preset, --model or --models, not several")
    if args.together is not None and args.devices is not None:
        raise UsageError("give --together or --devices, not both")
    if args.together is not None:
        return bench_together(args)
    if args.epochs is not None or args.images is not None:
        raise UsageError("--epochs and --images are for --together N")
    if args.devices is not None:
        return bench_devices(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    try:
        targets = resolve_targets(
            preset=args.preset,
            model=args.model,
            models=models,
            batch=args.batch,
            sets=parse_sets(args.set),
            steps=args.steps,
            warmup=args.warmup,
            repeats=args.repeats,
            user_dir=user_presets_dir(runs_dir(args)),
        )
    except BenchError as e:
        raise UsageError(str(e)) from None

    import torch

    from engine.bench.render import render
    from engine.bench.runner import run_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    return _measured(args, lambda say: run_bench(targets, say=say), lambda result: out.print(render(result)))


def _measured(args: argparse.Namespace, measure, show) -> int:
    """Run `measure(say)` (progress lines on stderr, none for a piped --json), then print its result
    as JSON or through `show`; a bench that cannot measure fails the command."""
    from engine.bench import BenchError

    quiet = args.json and not sys.stderr.isatty()
    say = (lambda text: None) if quiet else (lambda text: err.print(text, style="dim", highlight=False))
    try:
        result = measure(say)
    except BenchError as e:
        raise CommandFailed("bench failed", str(e)) from None
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return EXIT_OK


def bench_devices(args: argparse.Namespace) -> int:
    """`--devices N`: one preset's real runs on 1 device and on N (engine.bench.devices)."""
    from engine.bench.devices import bench_devices as measure
    from engine.bench.devices import render_devices
    from engine.cli.run import resolve_experiment

    if args.model or args.models:
        raise UsageError("--devices benches one preset or TOML file: give it instead of --model or --models")
    if args.devices < 2:
        raise UsageError("--devices N compares one device with N: give N of 2 or more")
    source = args.preset or "shapes-demo"
    sets = [*args.set, *([f"train.batch_size={args.batch}"] if args.batch else [])]
    exp, _ = resolve_experiment(source, sets, None, runs_dir(args))
    return _measured(
        args,
        lambda say: measure(exp, args.devices, label=source, repeats=args.repeats or 2, say=say),
        lambda result: out.print(render_devices(result), markup=False, highlight=False),
    )


def bench_together(args: argparse.Namespace) -> int:
    """`--together N`: N trainings of one preset at once against one alone (engine.bench.together)."""
    from engine.bench.together import DEFAULT_EPOCHS, DEFAULT_IMAGES, render_together
    from engine.bench.together import bench_together as measure
    from engine.cli.run import resolve_experiment

    if args.together < 2:
        raise UsageError(
            f"--together {args.together}: N trainings at once are set against one alone: give N of 2 or more"
        )
    if args.epochs is not None and args.epochs < 2:
        raise UsageError("--epochs with --together must be at least 2: the first epoch warms up and is not counted")
    if args.models:
        raise UsageError("--together benches one preset, TOML file or --model: give it instead of --models")
    sets = [*args.set, *([f"train.batch_size={args.batch}"] if args.batch else [])]
    if args.model:
        from engine.bench.targets import model_experiment
        from engine.experiment.overrides import apply_overrides

        exp = model_experiment(args.model, args.batch or 128)
        exp = apply_overrides(exp, parse_sets(args.set)) if args.set else exp
        label, preset = args.model, None
    else:
        source = args.preset or "shapes-demo"
        exp, p = resolve_experiment(source, sets, None, runs_dir(args))
        label, preset = source, getattr(p, "name", None)
    return _measured(
        args,
        lambda say: measure(
            exp,
            args.together,
            label=label,
            preset=preset,
            epochs=args.epochs or DEFAULT_EPOCHS,
            images=args.images or DEFAULT_IMAGES,
            repeats=args.repeats or 2,
            say=say,
        ),
        lambda result: out.print(render_together(result), markup=False, highlight=False),
    )


def forget() -> int:
    from engine.training import autotune

    n = autotune.forget()
    where = autotune.cache_path()
    if n:
        out.print(f"forgot {n} measured choice{'s' if n != 1 else ''} of auto precision and layout ({where})")
    else:
        out.print(f"nothing to forget: no measured choice is kept ({where})")
    return EXIT_OK
