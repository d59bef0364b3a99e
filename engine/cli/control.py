"""`cnnlab pause | continue | stop | checkpoint RUN_DIR`: steer a run, whichever process trains it.

The command goes into the run's control channel (engine.runfolder.control); the trainer applies it between two
batches and acknowledges it in status.json, which this waits for: exit 0 once acknowledged (a stop:
once the run has stopped and its exact position is saved), 2 if the run is not running, 1 if no
acknowledgement came in time (the command stays queued for the trainer's next batch).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from engine.cli.exits import EXIT_OK, CommandFailed, UsageError
from engine.cli.output import out

WAIT_S = 120.0
POLL_S = 0.1

HELP = {
    "pause": "pause a running run between two batches (it keeps its place and its lock)",
    "continue": "continue a paused run",
    "stop": "stop a running run, saving its exact position: cnnlab resume continues at the next batch",
    "checkpoint": "save a running run's exact position now, and let it go on",
}


def add_cli(sub, common: argparse.ArgumentParser) -> None:
    for command, text in HELP.items():
        p = sub.add_parser(command, parents=[common], help=text, description=text)
        p.add_argument("run_dir", metavar="RUN_DIR")
        p.add_argument(
            "--wait",
            type=float,
            default=WAIT_S,
            metavar="SECONDS",
            help=f"how long to wait for the trainer's acknowledgement (default {WAIT_S:.0f})",
        )
        p.set_defaults(func=cmd_control, control_command=command)


def cmd_control(args) -> int:
    from engine.runfolder import control
    from engine.runfolder.folder import RunFolder, is_run_folder

    path, command = Path(args.run_dir), args.control_command
    from engine.sweeps.folder import is_sweep

    if is_sweep(path):  # every worker of a sweep (engine.sweeps.control)
        from engine.cli.sweep import order_sweep_command

        return order_sweep_command(path, command, args.wait)
    if not is_run_folder(path):
        raise UsageError(f"{path} is not a run folder (no config.toml)")
    folder = RunFolder(path)
    st = folder.status()
    if st.get("state") != "running":
        said = f": {st['message']}" if st.get("message") else ""
        raise UsageError(f"{path.name} is not running (it is {st.get('state')}{said}); there is nothing to {command}")
    if command == "continue" and not st.get("paused"):
        out.print(f"{path.name} is not paused; continuing anyway (a pause may be on its way)", style="dim")
    sent = control.send(path, command)
    deadline = time.monotonic() + max(args.wait, 0.0)
    ack = _wait(folder, lambda s: _acked(s, sent.id), deadline, command)
    if command == "stop":
        st = _wait(folder, lambda s: s.get("state") != "running", deadline, command, stopping=True)
        _wait_unlocked(path, deadline)  # so that `cnnlab resume` may follow at once
        said = st.get("message") or st.get("state")
        out.print(f"{path.name}: {said}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_OK
    place = ack.get("progress") or {}
    where = f" at epoch {place['epoch']}, batch {place.get('batch', 0)} of {place.get('batches', '?')}" if place else ""
    done = {"pause": "paused", "continue": "continued", "checkpoint": "checkpoint written"}[command]
    out.print(f"{path.name}: {done}{where}", markup=False, highlight=False)
    return EXIT_OK


def _acked(st: dict[str, Any], command_id: str) -> bool:
    ack = st.get("control")
    if not isinstance(ack, dict):
        return False
    recent = ack.get("recent") if isinstance(ack.get("recent"), list) else []
    return ack.get("id") == command_id or command_id in recent


def _wait_unlocked(path: Path, deadline: float) -> None:
    from engine.runfolder.lock import is_held

    while is_held(path) and time.monotonic() < deadline:
        time.sleep(POLL_S)  # the trainer releases the lock as it returns, a moment after its last status


def _wait(folder, done, deadline: float, command: str, stopping: bool = False) -> dict[str, Any]:
    """Poll the run's status until `done(status)`; the run ending first or the deadline passing is a failure."""
    while True:
        st = folder.status()
        if done(st):
            return st
        if st.get("state") != "running":
            raise CommandFailed(
                f"{command} {folder.id}", f"the run ended first ({st.get('state')}: {st.get('message')})"
            )
        if time.monotonic() > deadline:
            what = "stopped" if stopping else "acknowledged the command"
            raise CommandFailed(
                f"{command} {folder.id}",
                f"the trainer has not {what} yet; it reads commands between batches, so a long batch delays it "
                "(the command stays queued; raise --wait to wait longer)",
            )
        time.sleep(POLL_S)  # a poll interval: the loop waits for the trainer's acknowledgement
