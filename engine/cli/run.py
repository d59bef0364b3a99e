"""`cnnlab run` and `cnnlab resume`: train in the foreground, or `--detach`ed in a process of its own.

Ctrl+C, SIGTERM and SIGHUP (a closed terminal, a dropped SSH session, a scheduler's preemption) stop
the run at the next batch with its exact position saved; `cnnlab resume` continues there, and
`cnnlab resume RUN_DIR --epochs N` trains a run on past its end (engine.training.extend).

With train.devices above 1 the run trains under torchrun, a process per device (engine.processes.torchrun);
`cnnlab run` or `resume` started by torchrun itself (several machines) is one rank of the run.

A preset name or a TOML file becomes a validated experiment with `--set` overrides and
`--data-dir` (resolve_experiment, which `cnnlab sweep` shares). A run whose input cannot train
(a missing dataset, weights that cannot be had) exits 2, as its dry run does.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

from engine.cli.exits import EXIT_OK, EXIT_USAGE, CommandFailed, UsageError, exit_code
from engine.cli.options import runs_dir
from engine.cli.output import err, out
from engine.processes.terminal import silence_output
from engine.runfolder.folder import user_presets_dir


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    from engine.experiment.overrides import parse_value

    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set optim.lr=0.01")
        overrides[key.strip()] = parse_value(value.strip())
    return overrides


def resolve_experiment(source: str, sets: list[str], data_dir: str | None, runs: Path):
    """A preset name or TOML file, with `--set` overrides and `--data-dir`, validated: (experiment, preset or None)."""
    from engine.experiment.config import unused_fields
    from engine.experiment.overrides import apply_overrides
    from engine.experiment.presets import load_experiment_source

    exp, preset = load_experiment_source(source, user_presets_dir(runs))
    overrides = parse_sets(sets)
    if data_dir:
        overrides["data.root"] = data_dir
    exp = apply_overrides(exp, overrides)
    for key, why in unused_fields(exp).items():
        if key in overrides:  # a value set for nothing: say so, it is not the edit the user meant
            err.print(f"warning: --set {key}: {why}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    return exp, preset


class StopOnSignals:
    """Ctrl+C, SIGTERM and SIGHUP: stop at the next batch, saving the exact position. A second Ctrl+C
    gives up at once. After SIGHUP the terminal is gone: output goes to /dev/null from then on, so that
    no write to a dead terminal can fail the stop."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, handle):
        self.handle, self.previous = handle, {}

    def __enter__(self):
        for sig in self.SIGNALS:
            self.previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum, _frame):
        if signum == signal.SIGHUP:
            silence_output()
        if self.handle.stop_requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        by = "Ctrl+C" if signum == signal.SIGINT else signal.Signals(signum).name
        try:
            again = " (Ctrl+C again to abort)" if signum == signal.SIGINT else ""
            err.print(f"{by}: stopping at the next batch, saving the exact position…{again}", style="yellow")
        except (OSError, ValueError):
            pass
        self.handle.stop(by)

    def __exit__(self, *_):
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)


StopOnInterrupt = StopOnSignals  # the name `cnnlab sweep` knows it by


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
    r.add_argument("--detach", action="store_true", help=DETACH_HELP)
    r.set_defaults(func=cmd_run)

    rs = sub.add_parser(
        "resume", parents=[common], help="continue a stopped or crashed run from its exact position or last checkpoint"
    )
    rs.add_argument("run_dir", metavar="RUN_DIR")
    rs.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="train on to N epochs in all (a finished run too); the schedule is recomputed over N epochs",
    )
    rs.add_argument("--detach", action="store_true", help=DETACH_HELP)
    rs.set_defaults(func=cmd_resume)


DETACH_HELP = (
    "train in a process of its own that outlives this terminal (output in RUN_DIR/output.log); "
    "steer it with cnnlab pause|continue|stop RUN_DIR"
)


def cmd_run(args) -> int:
    runs = runs_dir(args)
    exp, preset = resolve_experiment(args.source, args.set, args.data_dir, runs)
    if args.dry_run:
        return _dry_run(exp)
    if _launches(exp):
        if args.seeds != 1:
            raise UsageError("--seeds N trains on one device; with train.devices above 1 start the seeds one by one")
        from engine.runfolder.folder import RunFolder

        _check_model(exp)  # another process trains it: a model file's fault is said here, before any folder

        folder = RunFolder.create(runs, exp, preset.name if preset else None, args.name)
        return _detach(folder.path, None) if args.detach else _on_devices(folder.path, exp, None)
    if args.detach:
        if args.seeds != 1:
            raise UsageError("--detach trains one run; --seeds N runs several, in the foreground")
        from engine.runfolder.folder import RunFolder

        _check_model(exp)

        folder = RunFolder.create(runs, exp, preset.name if preset else None, args.name)
        return _detach(folder.path, None)
    if args.seeds != 1:
        from engine.cli.seeded import train_seeds

        return train_seeds(exp, preset, runs, args.name, args.seeds, _train)
    from engine.training.trainer import run_experiment

    return _train(
        lambda **kw: run_experiment(exp, runs_dir=runs, preset=preset.name if preset else None, name=args.name, **kw)
    )


def cmd_resume(args) -> int:
    from engine.runfolder.lock import holder
    from engine.runfolder.table import read_run

    path = Path(args.run_dir)
    info = read_run(path)
    if info is None:
        raise UsageError(f"{path} is not a run folder (no config.toml)")
    from engine.processes.torchrun import under_torchrun

    if under_torchrun():  # a rank: its launcher has checked the run, and rank 0 takes its lock
        from engine.training.trainer import resume_run

        return _train(lambda **kw: resume_run(path, epochs=args.epochs, **kw))
    if info.state == "running":
        raise UsageError(f"{path} is being trained by {holder(path)}; stop it first (cnnlab stop {path})")
    epochs = args.epochs
    if epochs is not None and epochs <= info.epochs_done:
        raise UsageError(f"--epochs {epochs}: {path.name} has done {info.epochs_done} epochs already; ask for more")
    if info.state == "finished" and (epochs is None or epochs <= info.epochs):
        raise UsageError(
            f"{path} has finished all {info.epochs} epochs; nothing to resume "
            f"(--epochs {info.epochs + 10} trains it on to {info.epochs + 10})"
        )
    if args.detach:
        return _detach(path, epochs)
    exp = _experiment(path)
    if exp is not None and _launches(exp):
        return _on_devices(path, exp, epochs)
    from engine.runfolder.lock import RunLocked
    from engine.training.trainer import resume_run

    try:
        return _train(lambda **kw: resume_run(path, epochs=epochs, **kw))
    except RunLocked as e:  # another process took it between the check above and the lock
        raise UsageError(f"{e}; stop it first (cnnlab stop {path})") from None


def _launches(exp) -> bool:
    """Whether this process starts torchrun for the run (train.devices above 1, not a rank already)."""
    from engine.processes.torchrun import under_torchrun

    return exp.train.devices > 1 and not under_torchrun()


def _experiment(path: Path):
    from engine.runfolder.folder import RunFolder

    try:
        return RunFolder(path).experiment()
    except (OSError, ValueError):
        return None  # resume_run says what is wrong with it


def _on_devices(path: Path, exp, epochs: int | None) -> int:
    """Train the run under torchrun in the foreground (rank 0 shows the progress and prints the folder's
    path last); the exit code of how the run ended as rank 0 wrote it, whatever torchrun's own status."""
    from engine.processes.torchrun import train_under_torchrun
    from engine.runfolder.folder import RunFolder

    t = exp.train
    err.print(f"training on {t.devices} devices: torchrun, a process each", markup=False, highlight=False)
    code = train_under_torchrun(path, t.devices, epochs, t.threads)
    state = RunFolder(path).status().get("state")
    if state in ("finished", "stopped", "failed", "diverged"):
        return exit_code(state)
    raise CommandFailed(f"{path} did not end on {t.devices} devices", f"torchrun exited {code} with it {state}")


def _detach(path: Path, epochs: int | None) -> int:
    from engine.processes.detach import OUTPUT_LOG, DetachFailed, start_detached, wait_taken

    proc = start_detached(path, epochs)
    try:
        st = wait_taken(path, proc)
    except DetachFailed as e:
        raise CommandFailed(f"cannot detach {path.name}", str(e)) from None
    if st.get("state") not in ("running", "finished"):
        raise CommandFailed(f"{path.name} {st.get('state')}", st.get("message") or f"see {path / OUTPUT_LOG}")
    err.print(
        f"training in process {proc.pid}, detached (output in {path / OUTPUT_LOG}); "
        f"follow it with cnnlab show {path} or the console, steer it with cnnlab pause|continue|stop {path}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    print(path)
    return EXIT_OK


def _train(start) -> int:
    """Train in the foreground with the progress display; the folder's path on stdout, last."""
    from engine.cli.progress import ConsoleProgress
    from engine.events import RunHandle
    from engine.processes.torchrun import under_torchrun

    handle = RunHandle()
    rank = int(os.environ.get("RANK", "0")) if under_torchrun() else 0
    progress = ConsoleProgress(out) if rank == 0 else None  # one display: rank 0's
    with StopOnSignals(handle):
        result = start(listener=progress, handle=handle)
    if progress is not None:
        progress.close()
    if rank == 0:
        print(result.folder.path)
    if result.state == "failed" and result.bad_input:
        return EXIT_USAGE  # its input could not train: the same code its dry run gives
    if under_torchrun() and result.state == "stopped":
        return EXIT_OK  # every rank stopped at the same batch; torchrun reads any other code as a failed worker
    return exit_code(result.state)


def _dry_run(exp) -> int:
    from engine.compute.device import DeviceUnavailable
    from engine.data.splits import DatasetMissing
    from engine.models import WeightsUnavailable
    from engine.training.dry_run import dry_run

    try:
        info = dry_run(exp)
    except (DatasetMissing, WeightsUnavailable, DeviceUnavailable) as e:
        raise UsageError(str(e)) from None
    shapes = f"input {tuple(info['input_shape'])} → output {tuple(info['output_shape'])}"
    # soft_wrap: one line each, whatever the width, so that scripts can read them
    out.print(
        f"ok: {exp.model.arch} on {exp.data.dataset}, {info['params']:,} parameters ({info['trainable']:,} trainable), "
        f"{info['flops']:,} FLOPs per image, {shapes}, {info['device']}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if "weights" in info:
        out.print(f"weights: {info['weights']}", markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK


def _check_model(exp) -> None:
    """A model from a library or the user's own file, built once on the CPU: ConfigError naming the
    fault (exit 2) before a run folder is made for a process that would only fail with it."""
    from engine.training.dry_run import check_model

    check_model(exp)
