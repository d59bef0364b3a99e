"""The run this console trains, from its start to its end.

A run starts on the console's thread (a Textual thread worker training tui/training.py's ActiveRun)
or detached, in a process of its own (engine.processes.detach) that the run screen follows through the
folder and steers through the control channel; a run of several devices is always the latter
(torchrun, a process per device). One run trains on the console's thread at a time. Quitting while it
trains stops it (its exact position saved) or hands it to a detached process that goes on from there.
A hangup (SIGHUP: the terminal or the SSH session gone) or SIGTERM stops it with its exact position
saved, then the console exits; so does the console's end, however it came.

The app owns the keys, the screens and the question asked on quitting; it asks the launcher
(CnnlabApp.start_run, its quit, mount and unmount, and run_app once the app has ended). Start-up
stays cheap: torch loads inside the training worker, the run screen when a run first starts.
"""

from __future__ import annotations

import asyncio
import signal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.worker import WorkerState

from engine.files import os_error_text
from engine.processes.detach import OUTPUT_LOG, DetachFailed, start_detached, wait_taken
from engine.processes.terminal import silence_output, terminal_gone
from engine.runfolder.folder import RunFolder
from tui.screens.quit import HAND_OVER, STOP

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen

    from engine.experiment.config import Experiment
    from engine.experiment.presets import Preset
    from tui.training import ActiveRun

# How long quitting waits for the trainer to reach the next batch and write its checkpoint.
STOP_TIMEOUT = 20.0
HANGUP = "the terminal's hangup"  # who stopped the run when the terminal went before SIGHUP was heard


class Launcher:
    """Starts, follows, stops and hands over the console's run; `run` is the one it trains on its thread."""

    def __init__(self, app: App) -> None:  # the CnnlabApp that owns it (tui.app imports this module)
        self.app = app
        self.run: ActiveRun | None = None  # the latest run started on the console's thread; None before one

    # --- starting ------------------------------------------------------------------------

    def start(
        self, exp: Experiment, *, preset: Preset | None = None, resume_dir: Path | None = None, detached: bool = False
    ) -> Screen | None:
        """Train `exp`, or resume the run in `resume_dir`, and show the run's one screen in the editor's
        place. Detached, in a process of its own that the screen follows and steers through the folder.

        Refused, with a word why, while another run trains on the console's thread. Returns the run's screen.
        """
        if exp.train.devices > 1:  # torchrun, a process per device: detached, followed through the folder
            if resume_dir is not None:
                return self._resume_detached(resume_dir, exp, preset)
            detached = True
        if detached:
            return self._start_detached(exp, preset)
        if self.run is not None and self.run.is_running:
            self.app.notify("A run is already training: stop it first (g goes to it).", severity="warning")
            return None
        return self._start_on_thread(exp, preset, resume_dir)

    def _start_on_thread(self, exp: Experiment, preset: Preset | None, resume_dir: Path | None) -> Screen:
        from tui.screens.run import RunScreen  # the run screen pulls in the charts: only when needed
        from tui.training import ActiveRun

        app = self.app
        run = ActiveRun(exp, runs_dir=app.runs_dir, preset_name=preset.name if preset else None, resume_dir=resume_dir)
        what = f"resuming {resume_dir.name}" if resume_dir else "starting"
        run.model.note(f"{what}: loading data and building the model…", "dim")
        run.screen = screen = RunScreen(run.model, preset=preset, run=run)
        if self.run is not None:
            self._let_go(self.run.screen)
        self.run = run
        # Installed, the screen outlives a pop: the user goes back to the picker and returns to it.
        app.install_screen(screen, name=f"run-{id(screen)}")
        app.show_started(screen)
        train = partial(run.train, target=app)
        app.run_worker(train, name="training", group="training", thread=True, exclusive=True, exit_on_error=False)
        app.active_run_changed.publish(run)
        return screen

    def _let_go(self, old: Screen | None) -> None:
        """Let go of the screen of an earlier, ended run unless the user still has it open."""
        if old is None or old in self.app.screen_stack:
            return
        self.app.uninstall_screen(old)
        old.remove()

    def _start_detached(self, exp: Experiment, preset: Preset | None) -> Screen | None:
        if not self._model_builds(exp):
            return None
        try:
            folder = RunFolder.create(self.app.runs_dir, exp, preset.name if preset else None)
            proc = start_detached(folder.path)
        except OSError as err:
            self.app.notify(f"cannot start the run: {os_error_text(err)}", severity="error")
            return None
        return self._follow_detached(folder.path, proc, exp, preset)

    def _model_builds(self, exp: Experiment) -> bool:
        """A model from a library or the user's own file is built once before a detached process is
        started for it, so that its fault is one message here and no run folder is left behind. This
        imports torch on the console's thread, only for such models: the built-ins need no check."""
        from engine.experiment.config import arch_kind
        from engine.experiment.errors import ConfigError

        if arch_kind(exp.model.arch) == "builtin":
            return True
        from engine.training.dry_run import check_model

        try:
            check_model(exp)
        except ConfigError as err:
            self.app.notify(f"cannot start the run: {err}", severity="error")
            return False
        return True

    def _resume_detached(self, path: Path, exp: Experiment, preset: Preset | None) -> Screen | None:
        """Resume (or train on to exp's epochs) a run of several devices under torchrun, detached."""
        try:
            longer = exp.train.epochs != RunFolder(path).experiment().train.epochs
            proc = start_detached(path, exp.train.epochs if longer else None)
        except (OSError, ValueError) as err:
            text = os_error_text(err) if isinstance(err, OSError) else str(err)
            self.app.notify(f"cannot resume {path.name}: {text}", severity="error")
            return None
        return self._follow_detached(path, proc, exp, preset, resuming=True)

    def _follow_detached(
        self, path: Path, proc: Any, exp: Experiment, preset: Preset | None, resuming: bool = False
    ) -> Screen:
        from tui.screens.run import RunScreen

        screen = RunScreen.of_folder(path, preset=preset)
        if resuming:  # the folder reads stopped until the process takes it: follow it from the start
            screen.model.resume_asked()
        where = f"under torchrun on {exp.train.devices} devices, " if exp.train.devices > 1 else ""
        screen.model.note(f"training {where}in process {proc.pid}, detached: it goes on when the console closes", "dim")
        self.app.show_started(screen)
        watch = partial(self._watch_detached, path, proc)
        self.app.run_worker(watch, name="watch_detached", group="detached", exit_on_error=False)
        return screen

    async def _watch_detached(self, path: Path, proc: Any) -> None:
        """Say so if the detached process ends before it has taken the run (the screen shows the rest)."""
        try:
            await asyncio.to_thread(wait_taken, path, proc)
        except DetachFailed as err:
            self.app.notify(str(err), title=path.name, severity="error")

    # --- quitting ------------------------------------------------------------------------

    def busy(self) -> bool:
        """Whether a run trains on the console's thread (or its worker is about to): quitting asks first."""
        run = self.run
        if run is not None and run.is_running:
            return True
        busy = (WorkerState.PENDING, WorkerState.RUNNING)
        return any(w.group == "training" and w.state in busy for w in self.app.workers)

    def quit_answered(self, answer: str | None) -> None:
        """The answer to quitting while the run trains (tui/screens/quit.py); None: keep training."""
        if answer == STOP:
            self.app.run_worker(self._stop_and_exit, name="stop_and_exit", group="quit", exclusive=True)
        elif answer == HAND_OVER:
            self.app.run_worker(self._hand_over_and_exit, name="hand_over_and_exit", group="quit", exclusive=True)

    async def _stop_and_exit(self) -> None:
        self.app.notify("Stopping the run at the next batch…", title="Quitting")
        if self.run is not None:
            await self.run.stop_and_wait(STOP_TIMEOUT)  # the trainer saves its exact position, then returns
        self.app.exit()

    async def _hand_over_and_exit(self) -> None:
        """Stop the thread run at the next batch (its exact position saved), start a detached process that
        resumes it there, and quit once that process holds the run."""
        app, run = self.app, self.run
        app.notify("Handing the run to a process of its own…", title="Quitting")
        if run is None or not await run.stop_and_wait(STOP_TIMEOUT, by="the console, handing it over"):
            app.notify("The run did not stop in time: still training here.", severity="error")
            return
        path = run.folder_path
        if path is None or run.state != "stopped":  # it ended on its own meanwhile: nothing to hand over
            app.farewell = f"{path.name if path else 'the run'} {run.state} before the hand-over: nothing goes on."
            app.exit()
            return
        try:
            proc = start_detached(path)
            await asyncio.to_thread(wait_taken, path, proc)
        except (OSError, DetachFailed) as err:
            app.notify(f"{err}; the run is stopped and resumable.", severity="error")
            return
        app.farewell = (
            f"{path.name} goes on in process {proc.pid} (output in {path / OUTPUT_LOG}); "
            f"steer it with cnnlab pause|continue|stop {path}, or from the console's runs screen."
        )
        app.exit()

    # --- signals, and the console's end ---------------------------------------------------------

    def stop_on_signals(self) -> None:
        """From now on SIGHUP and SIGTERM stop the thread run and close the console (in the app's loop)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signalled, sig)

    def _signalled(self, sig: int) -> None:
        """Stop the thread run, wait for its exact position to be saved (blocking: there is nothing to
        draw for, the terminal may be gone), then exit."""
        if sig == signal.SIGHUP:
            silence_output()
        run = self.run
        if run is not None and run.is_running:
            run.stop(signal.Signals(sig).name)
            run.wait(STOP_TIMEOUT)
        self.app.exit()

    def closing(self) -> None:
        """The app is closing with the run still training (quitting asks first; this is the safety net):
        stop it at the next batch, with a checkpoint, so the process can end."""
        if self.run is not None and self.run.is_running:
            self.run.stop()

    def closed(self) -> None:
        """However the app ended (a hangup can end it from Textual's input thread before SIGHUP is
        handled, and its last writes to the dead terminal then raise): the run stops, its position saved."""
        hung_up = terminal_gone()
        if hung_up:
            silence_output()
        run = self.run
        if run is not None and run.is_running:
            run.stop(HANGUP if hung_up else "")
            run.wait(STOP_TIMEOUT)
