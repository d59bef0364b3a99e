"""The console's own Textual messages: screens ask the app to open a preset or start a run, and the
training thread tells the app that its run has started or ended.

The app owns navigation and the run it trains (tui/app.py), so screens never start runs or open
each other's screens for that: they post `StartRun`, which bubbles to the app. The run's progress
itself needs no message: it goes into the run's RunState, which the run screen draws from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

from engine.events import EndEvent, Event, RunStarted, end_state

if TYPE_CHECKING:
    from engine.experiment.config import Experiment
    from engine.experiment.presets import Preset


class StartRun(Message):
    """Train this experiment (or resume the run in `resume_dir`): the app decides and shows it."""

    def __init__(self, experiment: Experiment, *, preset: Preset | None = None, resume_dir: Path | None = None) -> None:
        super().__init__()
        self.experiment = experiment
        self.preset = preset
        self.resume_dir = resume_dir


class OpenPreset(Message):
    """Open this preset in the editor."""

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.preset = preset


class TrainingStarted(Message):
    """The trainer has made the run's folder and trains."""

    def __init__(self, event: RunStarted) -> None:
        super().__init__()
        self.event = event


class TrainingEnded(Message):
    """The run is over: `state` is finished, stopped, failed or diverged."""

    def __init__(self, event: EndEvent) -> None:
        super().__init__()
        self.event = event

    @property
    def state(self) -> str:
        return end_state(self.event) or ""

    @property
    def message(self) -> str:
        return getattr(self.event, "message", "")


def wrap(event: Event) -> Message | None:
    """The message the app gets for an engine event; None for the events only the run's state takes."""
    if isinstance(event, RunStarted):
        return TrainingStarted(event)
    if end_state(event) is not None:
        return TrainingEnded(event)  # type: ignore[arg-type]
    return None
