"""Textual messages that carry the engine's events from the training thread to the run screen.

The engine calls a listener on its own thread; the listener wraps each event in one of these and
posts it (`post_message` is thread-safe), so the screen handles them on the UI thread like any
other message. Each keeps the engine's frozen event as `.event`: nothing is copied or renamed.
"""

from __future__ import annotations

from textual.message import Message

from engine.events import (
    BatchProgress,
    EpochFinished,
    Event,
    LogMessage,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
)


class TrainingStarted(Message, bubble=False):
    def __init__(self, event: RunStarted) -> None:
        super().__init__()
        self.event = event


class BatchDone(Message, bubble=False):
    def __init__(self, event: BatchProgress) -> None:
        super().__init__()
        self.event = event


class EpochDone(Message, bubble=False):
    def __init__(self, event: EpochFinished) -> None:
        super().__init__()
        self.event = event


class TrainingLog(Message, bubble=False):
    def __init__(self, event: LogMessage) -> None:
        super().__init__()
        self.event = event


class TrainingEnded(Message):
    """The run is over: `state` is finished, stopped, failed or diverged. It bubbles to the app,
    which may want to know while the user looks at another screen."""

    def __init__(self, event: RunFinished | RunStopped | RunFailed | RunDiverged, state: str) -> None:
        super().__init__()
        self.event = event
        self.state = state

    @property
    def message(self) -> str:
        return getattr(self.event, "message", "")


_END_STATES = {RunFinished: "finished", RunStopped: "stopped", RunFailed: "failed", RunDiverged: "diverged"}


def wrap(event: Event) -> Message:
    """The message for an engine event."""
    if isinstance(event, BatchProgress):
        return BatchDone(event)
    if isinstance(event, EpochFinished):
        return EpochDone(event)
    if isinstance(event, RunStarted):
        return TrainingStarted(event)
    if isinstance(event, LogMessage):
        return TrainingLog(event)
    state = _END_STATES.get(type(event))
    if state is None:
        raise TypeError(f"not an engine event: {event!r}")
    return TrainingEnded(event, state)
