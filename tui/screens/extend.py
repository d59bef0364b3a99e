"""Training a finished run on: how many epochs in all? The answer (an int) is the screen's result.

The range is engine.experiment.config's (TrainConfig.epochs), and the run's epochs done are the floor; what
becomes of the schedule is said here as the engine does it (engine.training.extend): recomputed over the new
length for the schedules that depend on it, unchanged for the others.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from engine.experiment.config import TrainConfig
from engine.training.extend import LENGTH_FREE


def epochs_cap() -> int:
    meta = TrainConfig.model_fields["epochs"].metadata
    return next(int(m.le) for m in meta if hasattr(m, "le"))


class ExtendScreen(ModalScreen[int | None]):
    CSS_PATH = Path(__file__).with_name("extend.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_name: str, done: int, schedule: str) -> None:
        super().__init__()
        self.run_name, self.done, self.schedule = run_name, done, schedule

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"Train {self.run_name} on: it has done {self.done} epochs. To how many in all?\n"
                f"Its {self.schedule} schedule "
                + (
                    "does not depend on the length and goes on as it was."
                    if self.schedule in LENGTH_FREE
                    else "is recomputed over the new length (the learning rate usually rises again)."
                ),
                classes="question",
            )
            yield Input(str(self.done + 10), type="integer", id="epochs")
            yield Static("", id="extend-problem")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            epochs = int(event.value)
        except ValueError:
            epochs = 0
        cap = epochs_cap()
        if not self.done < epochs <= cap:
            self.query_one("#extend-problem", Static).update(f"a whole number above {self.done}, at most {cap}")
            return
        self.dismiss(epochs)

    def action_cancel(self) -> None:
        self.dismiss(None)
