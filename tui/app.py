"""The console: pick a preset, edit it, train it, watch it, compare runs.

The app holds what outlives a screen: the runs folder, the user's presets folder, and the run
being trained (`active_run`, set by the run screen). It owns the keys that work everywhere and the
command palette's commands. Start-up stays cheap: nothing here imports torch; the run and runs
screens are imported when first opened.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.worker import WorkerState

from engine.runs import default_runs_dir
from engine.runs import user_presets_dir as presets_dir_of
from tui.screens.pick import PickScreen
from tui.widgets.confirm import ConfirmScreen

if TYPE_CHECKING:
    from engine.presets import Preset
    from tui.training import ActiveRun

# How long quitting waits for the trainer to reach the next batch and write its checkpoint.
STOP_TIMEOUT = 20.0


class PresetCommands(Provider):
    """"New run from preset: <name>" (opens it in the editor) for every preset, in the command palette."""

    async def startup(self) -> None:
        app = self.app
        assert isinstance(app, CnnlabApp)
        from engine.presets import load_presets

        self.presets, _ = await asyncio.to_thread(load_presets, app.user_presets_dir)

    def _command(self, preset: Preset) -> tuple[str, str]:
        exp = preset.experiment
        return f"New run from preset: {preset.name}", f"{exp.model.arch} on {exp.data.dataset} · {preset.description}"

    async def discover(self) -> Hits:
        app = self.app
        assert isinstance(app, CnnlabApp)
        for preset in self.presets:
            text, help = self._command(preset)
            yield DiscoveryHit(text, partial(app.open_preset, preset), help=help)

    async def search(self, query: str) -> Hits:
        app = self.app
        assert isinstance(app, CnnlabApp)
        matcher = self.matcher(query)
        for preset in self.presets:
            text, help = self._command(preset)
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(app.open_preset, preset), help=help)


class CnnlabApp(App):
    TITLE = "cnnlab"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {PresetCommands}

    BINDINGS = [
        Binding("q", "quit", "Quit"),
        # Shown in the footer by the picker (its own r and ?), kept out of the editor's crowded footer.
        Binding("r", "runs", "Runs", show=False),
        Binding("g", "go_to_run", "Go to run"),
        Binding("question_mark,f1", "help", "Help", show=False),
    ]

    def __init__(self, runs_dir: Path, user_presets_dir: Path | None = None) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.user_presets_dir = Path(user_presets_dir) if user_presets_dir else presets_dir_of(self.runs_dir)
        # The run the console trains (tui.training.ActiveRun), set by the run screen; None when idle.
        self.active_run: ActiveRun | None = None
        self.sub_title = str(self.runs_dir)

    def get_default_screen(self) -> Screen:
        return PickScreen()

    # --- keys that work everywhere -------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "go_to_run":
            # Only offered (and shown in the footer) while there is a run to go to.
            return self.active_run is not None and self.active_run.screen is not self.screen
        return True

    def action_runs(self) -> None:
        from tui.screens.runs import RunsScreen  # imported when first opened: start-up stays cheap

        if isinstance(self.screen, RunsScreen):
            return
        self.push_screen(RunsScreen(self.runs_dir))

    def action_go_to_run(self) -> None:
        run = self.active_run
        if run is None:
            self.notify("No run in this session yet: pick a preset and start one.")
            return
        screen = run.screen
        if screen is self.screen:
            return
        if screen in self.screen_stack:
            while self.screen is not screen:
                self.pop_screen()
        else:
            self.push_screen(screen)

    def action_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def open_preset(self, preset: Preset) -> None:
        from tui.screens.edit import EditScreen

        self.push_screen(EditScreen(preset, self.runs_dir))

    # --- the command palette -------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Runs", "Open the table of runs: compare, resume, delete", self.action_runs)
        if self.active_run is not None:
            yield SystemCommand("Go to the active run", "Back to the run this session is training", self.action_go_to_run)
        yield SystemCommand("Presets", "Back to the list of presets", self.action_presets)
        yield from super().get_system_commands(screen)

    def action_presets(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    # --- quitting ------------------------------------------------------------------------

    def training(self) -> bool:
        run = self.active_run
        if run is not None and run.is_running:
            return True
        return any(w.group == "training" and w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in self.workers)

    async def action_quit(self) -> None:
        if not self.training():
            self.exit()
            return
        if isinstance(self.screen, ConfirmScreen):
            return
        where = ""
        if self.active_run is not None and self.active_run.folder_path:
            where = f" ({Path(self.active_run.folder_path).name})"
        question = (
            f"A run is training{where}.\n\n"
            "Stop it at the next batch and quit? It keeps a checkpoint and can be resumed from the runs screen."
        )
        self.push_screen(ConfirmScreen(question, yes="Stop and quit", no="Keep training"), self._quit_answered)

    def _quit_answered(self, yes: bool | None) -> None:
        if yes:
            self.stop_and_exit()

    @work(exclusive=True, group="quit")
    async def stop_and_exit(self) -> None:
        run = self.active_run
        if run is not None:
            run.handle.stop()
        self.notify("Stopping the run at the next batch…", title="Quitting")
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.training() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.exit()


def run_app(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnnlab", description="The cnnlab console.")
    parser.add_argument("--runs-dir", type=Path, default=None, help="where runs live (default: $CNNLAB_RUNS or ./runs)")
    args = parser.parse_args(argv)
    app = CnnlabApp(args.runs_dir or default_runs_dir())
    app.run()
    return app.return_code or 0
