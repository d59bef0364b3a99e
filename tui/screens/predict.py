"""Predict with a run's trained model on images of the user's own: a file or folder path in, the top
classes of every image out, in a table.

The prediction is engine.inference's (`predict_paths`: the run's model and its own preprocessing),
run in a thread worker, so torch is imported there and the console never waits on it; the worker
posts what it found (`Predicted`) or what went wrong (`PredictFailed`). A path that does not exist,
a file that does not read or a run whose model cannot be had is said under the input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static

TOP = 3  # classes shown per image
SHOWN_PROBLEMS = 3  # files that did not read, named under the input (and how many more)


def checkpoint_of(run_dir: Path) -> str | None:
    """The checkpoint a prediction uses: best.pt, else last.pt; None when the run has neither."""
    for which in ("best", "last"):
        if (Path(run_dir) / "checkpoints" / f"{which}.pt").is_file():
            return which
    return None


class PredictScreen(ModalScreen[None]):
    """Enter a path to predict on; escape closes. `state`: idle, predicting, done or failed."""

    CSS_PATH = Path(__file__).with_name("predict.tcss")
    BINDINGS = [Binding("escape", "close", "Close")]

    class Predicted(Message):
        def __init__(self, result: Any) -> None:  # engine.inference.predict.Predictions
            super().__init__()
            self.result = result

    class PredictFailed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, run_dir: Path, which: str | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.which = which or checkpoint_of(self.run_dir) or "best"
        self.state = "idle"
        self.result: Any = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                f"Predict with {self.run_dir.name} ({self.which}.pt) on an image file or a folder of images:",
                classes="question",
            )
            yield Input(placeholder="path/to/image.png, or a folder (read recursively)", id="predict-path")
            yield Static("", id="predict-message")
            yield DataTable(id="predict-table", cursor_type="row", zebra_stripes=True)
            yield Label("enter predicts · escape closes", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("image", *(f"top {i + 1}" for i in range(TOP)))
        table.display = False
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.state == "predicting":
            return
        text = event.value.strip()
        if not text:
            self._say("give a path: an image file, or a folder of them")
            return
        path = Path(text).expanduser()
        if not path.exists():
            self.state = "failed"
            self._say(f"{path}: no such file or folder")
            return
        self.state = "predicting"
        self._say(f"predicting on {path}…", error=False)
        self._predict(path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="predict")
    def _predict(self, path: Path) -> None:
        from engine.experiment.errors import ConfigError
        from engine.inference.errors import InferenceError
        from engine.inference.predict import predict_paths

        try:
            result = predict_paths(self.run_dir, [path], which=self.which, top=TOP)
        except ConfigError as err:
            self.post_message(self.PredictFailed(f"the run's config does not read: {err}"))
        except (InferenceError, OSError) as err:
            self.post_message(self.PredictFailed(str(err)))
        except Exception as err:  # a bug, said where the user looks rather than ending the console
            self.post_message(self.PredictFailed(f"the prediction failed: {type(err).__name__}: {err}"))
        else:
            self.post_message(self.Predicted(result))

    def on_predict_screen_predicted(self, message: Predicted) -> None:
        result = self.result = message.result
        table = self.query_one(DataTable)
        table.clear()
        for p in result.predictions:
            table.add_row(Text(str(p.path)), *(Text(f"{g.name} {g.probability * 100:.1f}%") for g in p.top))
        table.display = bool(result.predictions)
        n = len(result.predictions)
        said = f"{n} image{'s' if n != 1 else ''} predicted with {result.checkpoint} on {result.device}"
        if result.problems:
            more = len(result.problems) - SHOWN_PROBLEMS
            skipped = "\n".join(result.problems[:SHOWN_PROBLEMS]) + (f"\n… and {more} more" if more > 0 else "")
            said = (f"{said}; skipped:\n" if n else "no image could be read:\n") + skipped
        self.state = "done" if n else "failed"
        self._say(said, error=bool(result.problems))

    def on_predict_screen_predict_failed(self, message: PredictFailed) -> None:
        self.state = "failed"
        self._say(message.text)

    def _say(self, text: str, error: bool = True) -> None:
        line = self.query_one("#predict-message", Static)
        line.update(Text(text))  # paths are shown as typed, never read as markup
        line.set_class(error, "error")

    def action_close(self) -> None:
        self.dismiss(None)
