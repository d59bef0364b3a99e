"""The runs table's hold on its runs: pause, continue and stop any running run with the run screen's
keys (p, s), whoever trains it, and train a finished run on (E).

The console's own thread run is steered through its handle, any other through the run's control
channel (tui.training.FolderRun); the table shows the trainer's acknowledgement when it refreshes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.runfolder.folder import RunFolder
from engine.runfolder.table import RunInfo
from tui.messages import StartRun
from tui.run_view import short_id
from tui.training import FolderRun

if TYPE_CHECKING:
    from textual.screen import Screen

    from engine.experiment.presets import Preset


def steer(screen: Screen, info: RunInfo | None, command: str) -> None:
    """`command` is "pause" (a toggle: a paused run continues) or "stop"."""
    if info is None:
        return
    name = short_id(info.id)
    if info.state != "running":
        screen.notify(f"{name} is not running (it is {info.state}): nothing to {command}", severity="warning")
        return
    active = screen.app.active_run
    if active is not None and active.is_running and active.folder_path == info.path:
        run, model = active, active.model  # this console's own: its handle
    else:
        run, model = FolderRun(info.path), None
    if command == "stop":
        run.stop()
        if model is not None:
            model.stop_asked()
        screen.notify(f"{name}: stopping at its next batch, saving the exact position")
    elif run.paused:
        run.resume()
        if model is not None:
            model.resume_asked()
        screen.notify(f"{name}: continuing")
    else:
        run.pause()
        if model is not None:
            model.pause_asked()
        screen.notify(f"{name}: pausing at its next batch")


def is_paused(info: RunInfo) -> bool:
    return info.state == "running" and bool(RunFolder(info.path).status().get("paused"))


def extend(screen: Screen, info: RunInfo | None, preset: Preset | None) -> None:
    """Ask how many epochs, then have the app resume the run to that length (engine.training.extend)."""
    from tui.screens.extend import ExtendScreen

    if info is None:
        return
    if info.state != "finished":
        screen.notify(f"{short_id(info.id)} has not finished: R resumes it", severity="warning")
        return
    try:
        exp = RunFolder(info.path).experiment()
    except (OSError, ValueError) as err:
        screen.notify(f"{info.id}: its config does not read ({err})", severity="error", markup=False)
        return

    def answered(epochs: int | None) -> None:
        if epochs is None:
            return
        # The trainer makes the longer experiment (phases included) from the folder; the console
        # needs only its length.
        longer = exp.model_copy(update={"train": exp.train.model_copy(update={"epochs": epochs})})
        screen.post_message(StartRun(longer, preset=preset, resume_dir=info.path))

    screen.app.push_screen(ExtendScreen(short_id(info.id), info.epochs_done, exp.schedule.name), answered)
