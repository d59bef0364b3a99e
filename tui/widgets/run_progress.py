"""The run screen's two progress rows: epochs (with the ETA) and batches of the epoch in progress
(with images/s and the running loss), drawn from a RunView.

Both rows have fixed sizes, so their labels update without a layout: Textual repaints just them
instead of laying out and repainting the whole screen, which matters at a few updates a second.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar

from tui.run_state import RunView
from tui.run_view import batch_text, epoch_text


class RunProgress(Vertical):
    DEFAULT_CSS = """
    RunProgress {
        height: auto;
    }
    RunProgress .bar-row {
        height: 1;
        padding: 0 1;
    }
    RunProgress .bar-row > Label.bar-name {
        width: 6;
    }
    RunProgress .bar-row > ProgressBar {
        width: auto;
    }
    RunProgress .bar-row > ProgressBar > Bar {
        width: 24;
    }
    RunProgress .bar-row > Label.bar-text {
        width: 1fr;
        height: 1;
        padding-left: 1;
    }
    """

    def __init__(self, epochs: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.epochs = epochs

    def compose(self) -> ComposeResult:
        with Horizontal(classes="bar-row"):
            yield Label("Epoch", classes="bar-name")
            yield ProgressBar(total=self.epochs, show_eta=False, id="epoch-bar")
            yield Label("", id="epoch-text", classes="bar-text")
        with Horizontal(classes="bar-row"):
            yield Label("Batch", classes="bar-name")
            yield ProgressBar(total=None, show_eta=False, id="batch-bar")
            yield Label("", id="batch-text", classes="bar-text")

    def show(self, view: RunView, ended: bool) -> None:
        epoch_bar = self.query_one("#epoch-bar", ProgressBar)
        batch_bar = self.query_one("#batch-bar", ProgressBar)
        epoch_bar.update(total=view.epochs, progress=view.epoch_done)
        total = view.batches
        if total is None and ended:
            total = 1  # ended before its first batch: no more "working" animation
        batch_bar.update(total=total, progress=view.batch_done)
        ev = view.progress
        epoch_label = self.query_one("#epoch-text", Label)
        if ev is not None:
            epoch_label.update(epoch_text(ev.epoch, view.epochs, ev.eta_seconds), layout=False)
            text = batch_text(ev.batch, ev.batches, ev.images_per_sec, ev.loss)
            self.query_one("#batch-text", Label).update(text, layout=False)
        else:  # between epochs, before the first, after the last: the batch row keeps its last words
            epoch_label.update(epoch_text(len(view.rows), view.epochs), layout=False)
