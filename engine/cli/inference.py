"""`cnnlab predict` and `cnnlab export --format onnx|torchscript`: a trained run put to use.

- predict: image files and folders (read recursively, sorted) classified by the run's model with the
  run's own preprocessing (engine.inference.predict); the top K classes per image, or one JSON document
  with --json. A file that does not read is one line on stderr and the others are still predicted; when
  none reads, the command exits 2.
- export (model formats): the run's model to ONNX or TorchScript with its preprocessing in FILE.json
  (engine.inference.model_export), checked against torch; the `export` command's parser is
  engine.cli.insight's, which hands these formats here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.markup import escape

from engine.cli.exits import EXIT_FAILED, EXIT_OK, UsageError
from engine.cli.options import runs_dir
from engine.cli.output import err, out

MODEL_FORMATS = ("onnx", "torchscript")
CHECKPOINT_CHOICES = ("best", "last")


def add_cli(sub, common: argparse.ArgumentParser) -> None:
    pr = sub.add_parser(
        "predict",
        parents=[common],
        help="classify image files and folders with a run's trained model and its own preprocessing",
    )
    pr.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (or its id in the runs folder)")
    pr.add_argument("paths", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files, and folders read recursively")
    add_checkpoint_option(pr)
    pr.add_argument("--top", type=int, default=3, metavar="K", help="classes shown per image (default 3)")
    pr.add_argument(
        "--json", action="store_true", help="one JSON document: [{path, top: [{class, index, probability}]}]"
    )
    pr.set_defaults(func=cmd_predict)


def add_checkpoint_option(parser: argparse.ArgumentParser, default: str | None = "best") -> None:
    parser.add_argument(
        "--checkpoint",
        choices=CHECKPOINT_CHOICES,
        default=default,
        help="the weights: best.pt (the best validation epoch, the default) or last.pt",
    )


def run_folder(name: str, runs: Path) -> Path:
    """A run folder given by path or by id in the runs folder; UsageError when it is neither."""
    path = Path(name).expanduser()
    if not path.exists() and (runs / name).is_dir():
        path = runs / name
    if not (path / "config.toml").is_file():
        raise UsageError(f"{name} is not a run folder (no config.toml)")
    return path


# --- predict ----------------------------------------------------------------------------------------


def cmd_predict(args) -> int:
    from engine.inference.errors import InferenceError
    from engine.inference.predict import predict_paths

    if args.top < 1:
        raise UsageError(f"--top {args.top}: give 1 or more classes per image")
    run = run_folder(args.run_dir, runs_dir(args))
    try:
        result = predict_paths(run, args.paths, which=args.checkpoint, top=args.top)
    except InferenceError as e:
        raise UsageError(str(e)) from None
    for line in result.problems:
        err.print(f"[bold red]skipped:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if not result.predictions:
        raise UsageError("no image could be read, so nothing was predicted")
    if args.json:
        print(json.dumps([p.as_dict() for p in result.predictions], indent=2))
        return EXIT_OK
    epoch = f", epoch {result.epoch}" if result.epoch is not None else ""
    err.print(f"{result.run_id}: {result.checkpoint}{epoch}, on {result.device}", markup=False, highlight=False)
    for p in result.predictions:
        guesses = "  ".join(f"{g.name} {g.probability * 100:.1f}%" for g in p.top)
        out.print(f"{p.path}  {guesses}", markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK


# --- export of the model ----------------------------------------------------------------------------


def cmd_export_model(args) -> int:
    """`cnnlab export RUN_DIR --format onnx|torchscript --out FILE [--checkpoint best|last]`."""
    from engine.inference.errors import InferenceError
    from engine.inference.model_export import export_model

    if not args.out:
        raise UsageError(f"--format {args.format} writes one model file: give it with --out FILE")
    if len(args.run_dirs) != 1:
        raise UsageError(f"--format {args.format} exports one run's model: give one RUN_DIR, not {len(args.run_dirs)}")
    run = run_folder(args.run_dirs[0], runs_dir(args))
    try:
        done = export_model(run, args.format, Path(args.out), getattr(args, "checkpoint", None) or "best")
    except InferenceError as e:
        raise UsageError(str(e)) from None
    epoch = f", epoch {done.epoch}" if done.epoch is not None else ""
    out.print(
        f"exported {done.run_id} ({done.checkpoint}{epoch}) as {done.fmt} in {done.seconds:.2f} s:",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    print(done.path)
    print(done.sidecar)
    if done.agreement is None:
        err.print(f"note: {done.note}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_OK
    line = f"checked: {done.agreement.text()}"
    if not done.agreement.agrees:
        err.print(
            f"[bold red]the exported model disagrees with torch:[/] {escape(line)}", highlight=False, soft_wrap=True
        )
        return EXIT_FAILED
    out.print(line, markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK
