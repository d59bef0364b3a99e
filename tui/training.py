"""The bridge between the console and the engine's trainer: the run being trained and its thread.

The trainer blocks, so it runs in a Textual thread worker that the console's launcher starts
(tui/launcher.py). Torch is imported there, inside the worker, never when the console starts. Every
engine event goes into the run's one RunState (tui/run_state.py) on the training thread, so the
state is known whatever screen is up; the run's start and end are also posted to the app as
Textual messages (`post_message` is thread-safe). Control goes the other way through the engine's
RunHandle.

A run another process trains (headless, detached, another console) is a `FolderRun`: the same
pause, continue and stop, sent through the run's control channel (engine.runfolder.control); the trainer's
acknowledgements come back through the folder, which the run screen follows.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.events import Event, Listener, RunFailed, RunHandle
from engine.runfolder import control
from engine.runfolder.folder import RunFolder
from tui.messages import wrap
from tui.run_state import RunState

if TYPE_CHECKING:
    from textual.message_pump import MessagePump
    from textual.screen import Screen

    from engine.experiment.config import Experiment


class ActiveRun:
    """The run the console trains: what it trains, its handle, its state, and the screen showing it."""

    def __init__(
        self, exp: Experiment, *, runs_dir: Path, preset_name: str | None = None, resume_dir: Path | None = None
    ) -> None:
        self.exp = exp
        self.runs_dir = Path(runs_dir)
        self.preset_name = preset_name
        self.resume_dir = Path(resume_dir) if resume_dir is not None else None
        self.model = RunState.for_experiment(exp, run_id=self.resume_dir.name if self.resume_dir else "")
        self.handle = RunHandle()
        self.screen: Screen | None = None  # set by the launcher once it has made the run's screen
        self.result: Any = None
        self._done = threading.Event()

    # --- what the app and the screens ask ---------------------------------------------------

    @property
    def state(self) -> str:
        return self.model.state

    @property
    def folder_path(self) -> Path | None:
        """Known at once for a resume; for a new run, once the trainer has created the folder."""
        if self.model.run_dir is not None or self.resume_dir is not None:
            return self.model.run_dir or self.resume_dir
        folder = getattr(self.result, "folder", None)  # a run that failed before it started
        return Path(folder.path) if folder is not None else None

    @property
    def is_running(self) -> bool:
        """True until the training thread has returned."""
        return not self._done.is_set()

    @property
    def paused(self) -> bool:
        return self.handle.paused

    def pause(self) -> None:
        self.handle.pause(BY)

    def resume(self) -> None:
        self.handle.resume(BY)

    def stop(self, by: str = "") -> None:
        """Ask the trainer to stop at the next batch; it saves the exact position and the run stays resumable."""
        self.handle.stop(by or BY)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the training thread has returned; False if it is still running after `timeout`."""
        return self._done.wait(timeout)

    async def stop_and_wait(self, timeout: float = 10.0, by: str = "") -> bool:
        """Stop and wait without blocking the event loop (for quitting while a run trains)."""
        self.stop(by)
        return await asyncio.to_thread(self.wait, timeout)

    # --- the training thread ----------------------------------------------------------------

    def _note(self, event: Event) -> None:
        self.model.apply(event)

    def listener_for(self, target: MessagePump) -> Listener:
        def listen(event: Event) -> None:
            self._note(event)
            message = wrap(event)
            if message is None:
                return
            try:
                target.post_message(message)
            except RuntimeError:
                pass  # the app's loop has closed while the trainer finished its last batch

        return listen

    def train(self, *, target: MessagePump) -> Any:
        """Run (or resume) the experiment to its end; blocking, so call it from a thread worker."""
        listen = self.listener_for(target)
        try:
            from engine.training import trainer  # torch loads here, in the worker, not at console start

            if self.resume_dir is not None:
                # Asked for longer than the run was made for: it is trained on (engine.training.extend).
                longer = self.exp.train.epochs != RunFolder(self.resume_dir).experiment().train.epochs
                more = {"epochs": self.exp.train.epochs} if longer else {}
                self.result = trainer.resume_run(self.resume_dir, listener=listen, handle=self.handle, **more)
            else:
                self.result = trainer.run_experiment(
                    self.exp, runs_dir=self.runs_dir, preset=self.preset_name, listener=listen, handle=self.handle
                )
        except Exception as err:  # the trainer reports user errors itself; this is an import or engine bug
            from engine.experiment.errors import ConfigError
            from engine.runfolder.lock import RunLocked

            if isinstance(err, RunLocked):  # another process trains it: nothing of its folder was touched
                listen(RunFailed(f"{err}: stop it there first, or steer it from the runs screen"))
            elif isinstance(err, ConfigError):  # a model file's fault, found before any folder was made
                listen(RunFailed(str(err)))
            else:
                listen(RunFailed(f"the trainer could not run: {type(err).__name__}: {err}"))
        finally:
            self._done.set()
        return self.result


BY = "the console"  # who asked, as the trainer's log and status say it


class FolderRun:
    """A run another process trains, steered through its control channel; `model` is the RunState the
    run screen follows it into (its state says whether the trainer has paused; without one, the
    folder's status says)."""

    def __init__(self, path: Path, model: RunState | None = None) -> None:
        self.path = Path(path)
        self.model = model

    @property
    def is_running(self) -> bool:
        """Its trainer lives (judged by its lock, pid and heartbeat: engine.runfolder.folder)."""
        return RunFolder(self.path).status().get("state") == "running"

    @property
    def paused(self) -> bool:
        if self.model is not None:
            return self.model.state == "paused"
        return bool(RunFolder(self.path).status().get("paused"))

    def pause(self) -> None:
        control.send(self.path, "pause", reason=f"{BY} on {_host()}")

    def resume(self) -> None:
        control.send(self.path, "continue", reason=f"{BY} on {_host()}")

    def stop(self, by: str = "") -> None:
        control.send(self.path, "stop", reason=by or f"{BY} on {_host()}")


def _host() -> str:
    import socket

    return socket.gethostname()
