"""The bridge between the console and the engine's trainer: the run being trained and its thread.

The trainer blocks, so it runs in a Textual thread worker. Torch is imported there, inside the
worker, never when the console starts. The trainer's listener wraps each engine event in a Textual
message and posts it to the run screen (`post_message` is thread-safe); control goes the other way
through the engine's RunHandle. `app.active_run` holds the ActiveRun, so the app can steer the run
(or stop it before quitting) from any screen.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message_pump import MessagePump

from engine.events import END_EVENTS, Event, Listener, RunFailed, RunHandle, RunStarted
from tui.messages import wrap

if TYPE_CHECKING:
    from engine.config import Experiment
    from textual.screen import Screen

_END_STATE_NAMES = {"RunFinished": "finished", "RunStopped": "stopped", "RunFailed": "failed", "RunDiverged": "diverged"}


class ActiveRun:
    """The run the console trains: its handle, its folder, its state, and the screen showing it."""

    def __init__(self, screen: Screen, *, resume_dir: Path | None = None) -> None:
        self.handle = RunHandle()
        self.screen = screen
        self.resume_dir = resume_dir
        # Known at once for a resume; for a new run, once the trainer has created the folder.
        self.folder_path: Path | None = resume_dir
        self.state = "starting"  # starting, running, finished, stopped, failed, diverged
        self.message = ""
        self.result: Any = None
        self._done = threading.Event()

    # --- what the app and the screens ask ---------------------------------------------------

    @property
    def is_running(self) -> bool:
        """True until the training thread has returned."""
        return not self._done.is_set()

    @property
    def paused(self) -> bool:
        return self.handle.paused

    def pause(self) -> None:
        self.handle.pause()

    def resume(self) -> None:
        self.handle.resume()

    def stop(self) -> None:
        """Ask the trainer to stop at the next batch; it writes a checkpoint and the run stays resumable."""
        self.handle.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the training thread has returned; False if it is still running after `timeout`."""
        return self._done.wait(timeout)

    async def stop_and_wait(self, timeout: float = 10.0) -> bool:
        """Stop and wait without blocking the event loop (for quitting while a run trains)."""
        self.stop()
        return await asyncio.to_thread(self.wait, timeout)

    # --- the training thread ----------------------------------------------------------------

    def listener_for(self, target: MessagePump) -> Listener:
        def listen(event: Event) -> None:
            self._note(event)
            try:
                target.post_message(wrap(event))
            except RuntimeError:
                pass  # the app's loop has closed while the trainer finished its last batch

        return listen

    def _note(self, event: Event) -> None:
        # Plain attribute writes from the training thread, so the app sees the state even when
        # the run screen is not the one processing messages.
        if isinstance(event, RunStarted):
            self.state = "running"
            self.folder_path = Path(event.run_dir)
        elif isinstance(event, END_EVENTS):
            self.state = _END_STATE_NAMES[type(event).__name__]
            self.message = getattr(event, "message", "")

    def train(self, exp: Experiment | None, *, runs_dir: Path, preset_name: str | None, target: MessagePump) -> Any:
        """Run (or resume) the experiment to its end; blocking, so call it from a thread worker."""
        listen = self.listener_for(target)
        try:
            from engine import trainer  # torch loads here, in the worker, not at console start

            if self.resume_dir is not None:
                self.result = trainer.resume_run(self.resume_dir, listener=listen, handle=self.handle)
            else:
                self.result = trainer.run_experiment(
                    exp, runs_dir=Path(runs_dir), preset=preset_name, listener=listen, handle=self.handle
                )
            self.folder_path = Path(self.result.folder.path)
        except Exception as err:  # the trainer reports user errors itself; this is an import or engine bug
            listen(RunFailed(f"the trainer could not run: {type(err).__name__}: {err}"))
        finally:
            self._done.set()
        return self.result
