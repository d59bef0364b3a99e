"""Quitting while a run trains on the console's thread: stop it (resumable), hand it to a process of
its own that goes on from the exact position, or keep training. The answer is the screen's result:
"stop", "hand over", or None to stay. Keys: s (or y) stop, h hand over, n / escape stay."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

STOP, HAND_OVER = "stop", "hand over"


class QuitScreen(ModalScreen[str | None]):
    CSS_PATH = Path(__file__).with_name("quit.tcss")

    BINDINGS = [
        Binding("s,y", "answer('stop')", "Stop and quit"),
        Binding("h", "answer('hand over')", "Hand over and quit"),
        Binding("n,escape", "answer(None)", "Keep training"),
    ]

    def __init__(self, run_name: str) -> None:
        super().__init__()
        self.run_name = run_name

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"A run is training{self.run_name}.\n\n"
                "Stop it and quit: its exact position is saved, resume it later from the runs screen.\n"
                "Hand it over and quit: a process of its own goes on from the exact position, after the "
                "console has closed; follow and steer it from the runs screen or with cnnlab pause|stop.",
                classes="question",
            )
            with Horizontal():
                yield Button("Keep training (n)", id="keep")
                yield Button("Hand over (h)", id="hand", variant="primary")
                yield Button("Stop (s)", id="stop", variant="error")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()  # a stray enter quits nothing

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss({"stop": STOP, "hand": HAND_OVER}.get(event.button.id or ""))

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)
