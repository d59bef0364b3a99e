"""What a finished run's test set says: the headline figures, a collapse warning, per-class
accuracy, the confusion matrix, what it gets most wrong (the classes it predicts most, the most
confused pairs, the highest-loss test images) and predicted examples, read from the run's summary.json.

Report 002's Adam run predicted one label for every image and its overall accuracy hid it; the
per-class table and the collapse warning (in red) make such a run visible at a glance. The tables
and thumbnails are engine.insight.show's, the same the `cnnlab show` command prints. A run with a
checkpoint offers its model for images of the user's own (`offer_predict`: the run screen's i key,
tui/screens/predict.py).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.insight.formatting import num, pct


def headline(summary: dict[str, Any]) -> Text:
    parts = []
    if summary.get("test_acc") is not None:
        parts.append(f"test acc {pct(summary['test_acc'])}")
    if summary.get("test_loss") is not None:
        parts.append(f"test loss {num(summary['test_loss'])}")
    if summary.get("best_val_acc") is not None:
        at = f" (epoch {summary['best_epoch']})" if summary.get("best_epoch") else ""
        parts.append(f"best val acc {pct(summary['best_val_acc'])}{at}")
    if summary.get("epochs_done") is not None:
        parts.append(f"{summary['epochs_done']} epochs")
    if summary.get("seconds") is not None:
        parts.append(f"{summary['seconds']:.0f} s")
    return Text(" · ".join(parts) or "no test figures in this run's summary", style="bold")


class RunResults(VerticalScroll):
    """The results of a finished run; `show_summary` fills it."""

    DEFAULT_CSS = """
    RunResults {
        height: 1fr;
        padding: 0 1;
    }
    RunResults > Static {
        width: 100%;
        margin-bottom: 1;
    }
    RunResults #results-predict {
        color: $text-muted;
        display: none;
    }
    RunResults #collapse-warning {
        color: $error;
        text-style: bold;
        display: none;
    }
    """

    def compose(self) -> ComposeResult:
        yield Static("No results yet: they appear when the run finishes.", id="results-headline")
        yield Static(
            "i  predict on a path: classify an image file or a folder of them with this model", id="results-predict"
        )
        yield Static("", id="collapse-warning")
        yield Static("", id="results-shares")
        yield Static("", id="results-per-class")
        yield Static("", id="results-confusion")
        yield Static("", id="results-mistakes")
        yield Static("", id="results-examples")

    def offer_predict(self, offered: bool) -> None:
        """Say that the model can classify the user's images (the run has a checkpoint to load)."""
        self.query_one("#results-predict", Static).display = offered

    def show_summary(self, summary: dict[str, Any]) -> None:
        # Imported here: engine.insight.show pulls in numpy, which the console's first screen does not need.
        from engine.insight.show import confusion_table, examples_grid, per_class_table
        from engine.insight.top_losses_view import mistakes_report, shares_line

        self.query_one("#results-headline", Static).update(headline(summary))
        warning = self.query_one("#collapse-warning", Static)
        if summary.get("collapse_warning"):
            warning.update(f"⚠ {summary['collapse_warning']}")
            warning.display = True
        else:
            warning.display = False
        has_test = bool(summary.get("confusion"))
        for wid, renderable in (
            ("#results-shares", shares_line(summary) if has_test else None),  # a one-label collapse, at a glance
            ("#results-per-class", per_class_table(summary) if summary.get("per_class_acc") else None),
            ("#results-confusion", confusion_table(summary) if has_test else None),
            ("#results-mistakes", mistakes_report(summary, False, False) if has_test else None),
            ("#results-examples", examples_grid(summary) if summary.get("examples") else None),
        ):
            static = self.query_one(wid, Static)
            static.update(renderable if renderable is not None else "")
            static.display = renderable is not None
