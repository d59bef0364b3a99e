"""The console: pick a preset, edit it, train it, watch it, compare runs.

The app owns what outlives a screen: the runs folder, the user's presets folder, navigation, and
the run being trained (`active_run`). Screens post messages (tui/messages.py) and the app decides:
`start_run` is the one place a run starts, and the app hears the run's start and end whatever
screen is up. It owns the keys that work everywhere and the command palette's commands. Start-up
stays cheap: nothing here imports torch; the run and runs screens are imported when first opened.

A run may also be started detached (`ctrl+o` in the editor): its own process, which the console
follows through the folder and steers through the control channel. Quitting while a thread run trains
offers to stop it or to hand it to such a process. A hangup (SIGHUP: the terminal or the SSH session
gone) or SIGTERM stops the thread run with its exact position saved, then the console exits.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import WorkerState

from engine.runfolder.folder import default_runs_dir
from engine.runfolder.folder import user_presets_dir as presets_dir_of
from tui.commands import PresetCommands
from tui.messages import OpenPreset, StartRun, TrainingEnded, TrainingStarted
from tui.run_view import end_note
from tui.screens.pick import PickScreen
from tui.screens.quit import HAND_OVER, STOP, QuitScreen

if TYPE_CHECKING:
    from engine.experiment.config import Experiment
    from engine.experiment.presets import Preset
    from tui.training import ActiveRun

# How long quitting waits for the trainer to reach the next batch and write its checkpoint.
STOP_TIMEOUT = 20.0
HANGUP = "the terminal's hangup"  # who stopped the run when the terminal went before SIGHUP was heard


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
        # The run the console trains (tui.training.ActiveRun), set by start_run; None when idle.
        self.active_run: ActiveRun | None = None
        # Published when a run starts, gets its folder, or ends: the picker's line follows it.
        self.active_run_changed: Signal[ActiveRun | None] = Signal(self, "active-run-changed")
        self.sub_title = str(self.runs_dir)
        self.stop_on_signals = False  # run_app sets it: SIGHUP and SIGTERM stop the thread run, then exit
        self.farewell = ""  # said on the terminal once the console has closed (a hand-over's whereabouts)

    def get_default_screen(self) -> Screen:
        return PickScreen()

    # --- the run this console trains ------------------------------------------------------

    def start_run(
        self,
        exp: Experiment,
        *,
        preset: Preset | None = None,
        resume_dir: Path | None = None,
        detached: bool = False,
    ) -> Screen | None:
        """Train `exp`, or resume the run in `resume_dir`: drop the editor, show the run's one screen.
        Detached, in a process of its own that the screen follows and steers through the folder.

        Refused, with a word why, while another run trains on this console's thread. Returns the run's screen.
        """
        if exp.train.devices > 1:  # torchrun, a process per device: detached, followed through the folder
            if resume_dir is not None:
                return self._resume_detached(resume_dir, exp, preset)
            detached = True
        if detached:
            return self._start_detached(exp, preset)
        previous = self.active_run
        if previous is not None and previous.is_running:
            self.notify("A run is already training: stop it first (g goes to it).", severity="warning")
            return None
        from tui.screens.edit import EditScreen
        from tui.screens.run import RunScreen  # the run screen pulls in the charts: only when needed
        from tui.training import ActiveRun

        run = ActiveRun(exp, runs_dir=self.runs_dir, preset_name=preset.name if preset else None, resume_dir=resume_dir)
        what = f"resuming {resume_dir.name}" if resume_dir else "starting"
        run.model.note(f"{what}: loading data and building the model…", "dim")
        screen = RunScreen(run.model, preset=preset, run=run)
        run.screen = screen
        if previous is not None:
            self._let_go(previous.screen)
        self.active_run = run
        # Installed, the screen outlives a pop: the user goes back to the picker and returns to it.
        self.install_screen(screen, name=f"run-{id(screen)}")
        while isinstance(self.screen, EditScreen):
            self.pop_screen()  # the editor started this run: back from it means choosing the next one
        self.push_screen(screen)
        self.run_worker(
            partial(run.train, target=self),
            name="training",
            group="training",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )
        self.active_run_changed.publish(run)
        return screen

    def _start_detached(self, exp: Experiment, preset: Preset | None) -> Screen | None:
        from engine.files import os_error_text
        from engine.processes.detach import start_detached
        from engine.runfolder.folder import RunFolder

        try:
            folder = RunFolder.create(self.runs_dir, exp, preset.name if preset else None)
            proc = start_detached(folder.path)
        except OSError as err:
            self.notify(f"cannot start the run: {os_error_text(err)}", severity="error")
            return None
        return self._follow_detached(folder.path, proc, exp, preset)

    def _resume_detached(self, path: Path, exp: Experiment, preset: Preset | None) -> Screen | None:
        """Resume (or train on to exp's epochs) a run of several devices under torchrun, detached."""
        from engine.files import os_error_text
        from engine.processes.detach import start_detached
        from engine.runfolder.folder import RunFolder

        try:
            longer = exp.train.epochs != RunFolder(path).experiment().train.epochs
            proc = start_detached(path, exp.train.epochs if longer else None)
        except (OSError, ValueError) as err:
            text = os_error_text(err) if isinstance(err, OSError) else str(err)
            self.notify(f"cannot resume {path.name}: {text}", severity="error")
            return None
        return self._follow_detached(path, proc, exp, preset, resuming=True)

    def _follow_detached(
        self, path: Path, proc, exp: Experiment, preset: Preset | None, resuming: bool = False
    ) -> Screen:
        from tui.screens.edit import EditScreen
        from tui.screens.run import RunScreen

        screen = RunScreen.of_folder(path, preset=preset)
        if resuming:  # the folder reads stopped until the process takes it: follow it from the start
            screen.model.resume_asked()
        where = f"under torchrun on {exp.train.devices} devices, " if exp.train.devices > 1 else ""
        screen.model.note(f"training {where}in process {proc.pid}, detached: it goes on when the console closes", "dim")
        while isinstance(self.screen, EditScreen):
            self.pop_screen()
        self.push_screen(screen)
        self._watch_detached(path, proc)
        return screen

    @work(group="detached", exit_on_error=False)
    async def _watch_detached(self, path: Path, proc) -> None:
        """Say so if the detached process ends before it has taken the run (the screen shows the rest)."""
        from engine.processes.detach import DetachFailed, wait_taken

        try:
            await asyncio.to_thread(wait_taken, path, proc)
        except DetachFailed as err:
            self.notify(str(err), title=path.name, severity="error")

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

    def _let_go(self, old: Screen | None) -> None:
        """Let go of the screen of an earlier, ended run unless the user still has it open."""
        if old is None or old in self.screen_stack:
            return
        self.uninstall_screen(old)
        old.remove()

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

    def on_unmount(self) -> None:
        # The app is closing with the run still training (quitting asks first; this is the safety
        # net): stop it at the next batch, with a checkpoint, so the process can end.
        run = self.active_run
        if run is not None and run.is_running:
            run.stop()

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
        from tui.screens.edit import EditScreen
        from tui.screens.sweep import SweepScreen

        while isinstance(self.screen, EditScreen):
            self.pop_screen()  # the editor started it: back from its screen means choosing the next one
        self.push_screen(SweepScreen(sweep_dir))

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

    def training(self) -> bool:
        run = self.active_run
        if run is not None and run.is_running:
            return True
        busy = (WorkerState.PENDING, WorkerState.RUNNING)
        return any(w.group == "training" and w.state in busy for w in self.workers)

    async def action_quit(self) -> None:
        if not self.training():
            self.exit()
            return
        if isinstance(self.screen, QuitScreen):
            return
        where = ""
        if self.active_run is not None and self.active_run.folder_path:
            where = f" ({Path(self.active_run.folder_path).name})"
        self.push_screen(QuitScreen(where), self._quit_answered)

    def _quit_answered(self, answer: str | None) -> None:
        if answer == STOP:
            self.stop_and_exit()
        elif answer == HAND_OVER:
            self.hand_over_and_exit()

    @work(exclusive=True, group="quit")
    async def stop_and_exit(self) -> None:
        self.notify("Stopping the run at the next batch…", title="Quitting")
        run = self.active_run
        if run is not None:
            await run.stop_and_wait(STOP_TIMEOUT)  # the trainer saves its exact position, then returns
        self.exit()

    @work(exclusive=True, group="quit")
    async def hand_over_and_exit(self) -> None:
        """Stop the thread run at the next batch (its exact position saved), start a detached process that
        resumes it there, and quit once that process holds the run."""
        from engine.processes.detach import OUTPUT_LOG, DetachFailed, start_detached, wait_taken

        run = self.active_run
        self.notify("Handing the run to a process of its own…", title="Quitting")
        if run is None or not await run.stop_and_wait(STOP_TIMEOUT, by="the console, handing it over"):
            self.notify("The run did not stop in time: still training here.", severity="error")
            return
        path = run.folder_path
        if path is None or run.state != "stopped":  # it ended on its own meanwhile: nothing to hand over
            self.farewell = f"{path.name if path else 'the run'} {run.state} before the hand-over: nothing goes on."
            self.exit()
            return
        try:
            proc = start_detached(path)
            await asyncio.to_thread(wait_taken, path, proc)
        except (OSError, DetachFailed) as err:
            self.notify(f"{err}; the run is stopped and resumable.", severity="error")
            return
        self.farewell = (
            f"{path.name} goes on in process {proc.pid} (output in {path / OUTPUT_LOG}); "
            f"steer it with cnnlab pause|continue|stop {path}, or from the console's runs screen."
        )
        self.exit()

    # --- signals: a hangup or a termination stops the run and closes the console -----------------

    def on_mount(self) -> None:
        if self.stop_on_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGHUP, signal.SIGTERM):
                loop.add_signal_handler(sig, self._signalled, sig)

    def _signalled(self, sig: int) -> None:
        """Stop the thread run, wait for its exact position to be saved (blocking: there is nothing to
        draw for, the terminal may be gone), then exit."""
        if sig == signal.SIGHUP:
            _silence_output()
        run = self.active_run
        if run is not None and run.is_running:
            run.stop(signal.Signals(sig).name)
            run.wait(STOP_TIMEOUT)
        self.exit()


def _silence_output() -> None:
    # The terminal has hung up: a write to it would fail, so output goes nowhere from now on.
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)
    except OSError:
        pass


def run_app(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnnlab", description="The cnnlab console.")
    parser.add_argument("--runs-dir", type=Path, default=None, help="where runs live (default: $CNNLAB_RUNS or ./runs)")
    args = parser.parse_args(argv)
    app = CnnlabApp(args.runs_dir or default_runs_dir())
    app.stop_on_signals = True
    try:
        app.run()
    finally:
        # However the app ended (a hangup can end it from Textual's input thread before SIGHUP is
        # handled, and its last writes to the dead terminal then raise): the run stops, its position saved.
        hung_up = _terminal_gone()
        if hung_up:
            _silence_output()
        run = app.active_run
        if run is not None and run.is_running:
            run.stop(HANGUP if hung_up else "")
            run.wait(STOP_TIMEOUT)
    if app.farewell:
        print(app.farewell)
    return app.return_code or 0


def _terminal_gone() -> bool:
    """Whether the console's terminal has hung up (a closed tmux pane, a dropped SSH session)."""
    try:
        import termios  # POSIX only: elsewhere a hangup is a signal or nothing
    except ImportError:
        return False
    try:
        termios.tcgetattr(sys.stdin.fileno())
    except termios.error as err:
        return err.args[0] == errno.EIO
    except (OSError, ValueError):
        return False
    return False
