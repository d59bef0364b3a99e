"""The console: pick a preset, edit it, train it, watch it, compare runs.

The app owns what outlives a screen: the runs folder, the user's presets folder, navigation, the
keys that work everywhere and the command palette's commands. Screens post messages
(tui/messages.py) and the app decides; it hears the run's start and end whatever screen is up.
The run this console trains, from its start (`start_run`, the one place a run starts; `ctrl+o` in
the editor starts it detached) to what quitting, a hangup or SIGTERM do to it, is its launcher's
(tui/launcher.py). Start-up stays cheap: nothing here imports torch; the run and runs screens are
imported when first opened.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.signal import Signal

from engine.runfolder.folder import default_runs_dir
from engine.runfolder.folder import user_presets_dir as presets_dir_of
from tui.commands import PresetCommands
from tui.launcher import Launcher
from tui.messages import OpenPreset, StartRun, TrainingEnded, TrainingStarted
from tui.run_view import end_note
from tui.screens.pick import PickScreen
from tui.screens.quit import QuitScreen

if TYPE_CHECKING:
    from engine.experiment.config import Experiment
    from engine.experiment.presets import Preset
    from tui.training import ActiveRun


class CnnlabApp(App):
    TITLE = "cnnlab"
    # Absolute, so that subclasses (the bench's, the tests') find them wherever they are defined.
    # The picker's own: Textual loads a pushed screen's CSS_PATH, not the default screen's.
    CSS_PATH = [Path(__file__).with_name("app.tcss"), Path(__file__).parent / "screens" / "pick.tcss"]
    COMMANDS = App.COMMANDS | {PresetCommands}

    BINDINGS = [
        Binding("q", "quit", "Quit"),
        # Shown in the footer by the picker (its own r and ?), kept out of the editor's crowded footer.
        Binding("r", "runs", "Runs", show=False),
        Binding("g", "go_to_run", "Go to run"),
        Binding("ctrl+o", "start_detached", "Start detached", show=False),  # in the editor
        Binding("question_mark,f1", "help", "Help", show=False),
    ]

    def __init__(self, runs_dir: Path, user_presets_dir: Path | None = None) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.user_presets_dir = Path(user_presets_dir) if user_presets_dir else presets_dir_of(self.runs_dir)
        self.launcher = Launcher(self)  # starts, stops and hands over the run this console trains
        # Published when a run starts, gets its folder, or ends: the picker's line follows it.
        self.active_run_changed: Signal[ActiveRun | None] = Signal(self, "active-run-changed")
        self.sub_title = str(self.runs_dir)
        self.stop_on_signals = False  # run_app sets it: SIGHUP and SIGTERM stop the thread run, then exit
        self.farewell = ""  # said on the terminal once the console has closed (a hand-over's whereabouts)

    def get_default_screen(self) -> Screen:
        return PickScreen()

    # --- the run this console trains (tui/launcher.py) ---------------------------------------

    @property
    def active_run(self) -> ActiveRun | None:
        """The run this console trains on its thread (the latest started); None before one."""
        return self.launcher.run

    @active_run.setter
    def active_run(self, run: ActiveRun | None) -> None:
        self.launcher.run = run

    def start_run(
        self,
        exp: Experiment,
        *,
        preset: Preset | None = None,
        resume_dir: Path | None = None,
        detached: bool = False,
    ) -> Screen | None:
        """Train `exp`, or resume the run in `resume_dir`, in the editor's place (Launcher.start); detached,
        in a process of its own. Returns the run's screen; None, with a word why, while another run trains."""
        return self.launcher.start(exp, preset=preset, resume_dir=resume_dir, detached=detached)

    def show_started(self, screen: Screen) -> None:
        """Show the screen of what the editor started (a run, a sweep) in the editor's place."""
        from tui.screens.edit import EditScreen

        while isinstance(self.screen, EditScreen):
            self.pop_screen()  # the editor started it: back from its screen means choosing the next one
        self.push_screen(screen)

    def action_start_detached(self) -> None:
        from tui.screens.edit import EditScreen

        screen = self.screen
        if not isinstance(screen, EditScreen):
            return
        exp = screen.current_experiment()
        if exp is None:
            screen.action_start()  # says what stands in the way
            return
        self.start_run(exp, preset=screen.preset, detached=True)

    @on(StartRun)
    def _start_asked(self, message: StartRun) -> None:
        self.start_run(message.experiment, preset=message.preset, resume_dir=message.resume_dir)

    @on(TrainingStarted)
    def _run_started(self, message: TrainingStarted) -> None:
        self.active_run_changed.publish(self.active_run)

    @on(TrainingEnded)
    def _run_ended(self, message: TrainingEnded) -> None:
        summary = getattr(message.event, "summary", None)  # a finished run's test figures
        self.notify(**end_note(message.state, message.message, summary))
        self.active_run_changed.publish(self.active_run)
        self.refresh_bindings()

    def on_mount(self) -> None:
        if self.stop_on_signals:
            self.launcher.stop_on_signals()

    def on_unmount(self) -> None:
        self.launcher.closing()

    # --- keys that work everywhere -------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start_detached":
            return type(self.screen).__name__ == "EditScreen"
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
        """The preset in the editor."""
        from tui.screens.edit import EditScreen

        self.push_screen(EditScreen(preset))

    @on(OpenPreset)
    def _open_asked(self, message: OpenPreset) -> None:
        self.open_preset(message.preset)

    # --- sweeps (tui/screens/sweep.py): their workers are processes of their own ------------

    def start_sweep(self, exp: Experiment, preset: Preset | None = None) -> None:
        """The sweep form over `exp` (the preset's [sweep] filled in); once started, its screen."""
        from engine.sweeps.launch import SweepLaunch
        from tui.screens.sweep_start import SweepStartScreen

        start = SweepLaunch.from_spec(preset.sweep) if preset is not None and preset.sweep else SweepLaunch()
        form = SweepStartScreen(exp, preset_name=preset.name if preset else None, start=start)
        self.push_screen(form, lambda path: self.open_sweep(path) if path else None)

    def open_sweep(self, sweep_dir: Path) -> None:
        from tui.screens.sweep import SweepScreen

        self.show_started(SweepScreen(sweep_dir))

    # --- the command palette -------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Runs", "Open the table of runs: compare, resume, delete", self.action_runs)
        if self.active_run is not None:
            yield SystemCommand(
                "Go to the active run", "Back to the run this session is training", self.action_go_to_run
            )
        if type(screen).__name__ == "EditScreen":
            yield SystemCommand(
                "Start detached",
                "Train this experiment in a process of its own that outlives the console (ctrl+o)",
                self.action_start_detached,
            )
        yield SystemCommand("Presets", "Back to the list of presets", self.action_presets)
        yield from super().get_system_commands(screen)

    def action_presets(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    # --- quitting ------------------------------------------------------------------------

    async def action_quit(self) -> None:
        if not self.launcher.busy():
            self.exit()
            return
        if isinstance(self.screen, QuitScreen):
            return
        where = ""
        if self.active_run is not None and self.active_run.folder_path:
            where = f" ({Path(self.active_run.folder_path).name})"
        self.push_screen(QuitScreen(where), self.launcher.quit_answered)


def run_app(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnnlab", description="The cnnlab console.")
    parser.add_argument("--runs-dir", type=Path, default=None, help="where runs live (default: $CNNLAB_RUNS or ./runs)")
    args = parser.parse_args(argv)
    app = CnnlabApp(args.runs_dir or default_runs_dir())
    app.stop_on_signals = True
    try:
        app.run()
    finally:
        app.launcher.closed()  # however the app ended: the run stops, its position saved
    if app.farewell:
        print(app.farewell)
    return app.return_code or 0
