"""Driving the console with Pilot: the app starting on the screen under test, waiting for a state
(never for a length of time), and reading what the terminal shows."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

from textual.app import App
from textual.screen import Screen
from textual.widgets import RichLog

from engine.experiment.config import Experiment
from tui.app import CnnlabApp
from tui.run_state import RunState
from tui.screens.run import RunScreen

# The theme the snapshots were drawn in; a user's TEXTUAL_THEME must not change them.
THEME = "textual-dark"
_SVG_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)" textLength="([\d.]+)"[^>]*>(.*?)</text>', re.S)


class RecordingApp(CnnlabApp):
    """The console, with what it told the user recorded: `notes` (severity, message) and `told`
    ("title: message" lines)."""

    def __init__(self, runs_dir: Path, user_presets_dir: Path | None = None) -> None:
        super().__init__(runs_dir, user_presets_dir)
        self.theme = THEME
        self.notes: list[tuple[str, str]] = []
        self.told: list[str] = []

    def notify(self, message, *, title="", severity="information", **kwargs):
        self.notes.append((severity, str(message)))
        self.told.append(f"{title}: {message}")
        super().notify(message, title=title, severity=severity, **kwargs)


class Harness(RecordingApp):
    """The console itself (its stylesheet, keys, navigation and run handling) starting on the
    screen a test looks at instead of the picker."""

    def __init__(self, runs_dir: Path, first: Screen | None = None) -> None:
        super().__init__(runs_dir)
        self.first = first

    def get_default_screen(self) -> Screen:
        return Screen()

    def on_mount(self) -> None:
        if self.first is not None:
            self.push_screen(self.first)


async def start_run(pilot, exp: Experiment, **kwargs) -> RunScreen:
    """Start a run through the app (CnnlabApp.start_run) and wait for its screen to be up."""
    screen = pilot.app.start_run(exp, **kwargs)
    assert screen is not None, "the app refused to start the run"
    await wait_until(pilot, lambda: screen.is_mounted and pilot.app.screen is screen, what="the run's screen")
    return screen


def quiet_run_screen(exp: Experiment, preset=None) -> RunScreen:
    """A run screen with no run behind it: the test feeds its RunState engine events itself."""
    model = RunState.for_experiment(exp)
    model.note("fed by the test")
    return RunScreen(model, preset=preset)


async def wait_until(pilot, predicate, timeout: float = 20.0, what: str = "condition") -> None:
    """Let the app run until `predicate()` holds; the timeout only bounds a test that would hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def settled(pilot, screen: RunScreen, what: str = "the run screen to draw its run") -> None:
    """Until the run screen shows everything its RunState holds, charts included."""
    await wait_until(pilot, lambda: screen.settled, what=what)
    await pilot.pause()


def steady_look(app: App) -> None:
    """What a snapshot must not depend on: when the focused input's cursor last blinked."""
    app.theme = THEME
    for widget in app.screen.query("Input"):
        widget.cursor_blink = False


def screen_text(app: App) -> str:
    """What the terminal shows, as plain text: the rows of the app's own screenshot."""
    cells = [
        (float(x), float(y), float(length), html.unescape(text).replace("\xa0", " ").replace("\n", ""))
        for x, y, length, text in _SVG_TEXT.findall(app.export_screenshot())
    ]
    char = next(length / len(text) for _, _, length, text in cells if text)
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, _, text in cells:
        rows.setdefault(y, []).append((x, text))
    lines = []
    for y in sorted(rows):
        line = ""
        for x, text in sorted(rows[y]):
            line = line.ljust(round(x / char)) + text
        lines.append(line)
    return "\n".join(lines)


def log_text(screen) -> str:
    return "\n".join(line.text for line in screen.query_one("#log", RichLog).lines)
