"""The lr range test in the console (engine.insight.lr_find): the loss-vs-lr curve drawn as it grows, then
the suggested lr with its rule; enter puts it in the editor's form (optim.lr, or schedule.max_lr for
one-cycle and cyclic), escape leaves the form as it was and stops a test still running.

The test trains a copy of the model in a thread worker (torch is imported there), so the console
stays responsive; the experiment and its preset are not touched.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Static
from textual_plotext import PlotextPlot

from engine.insight.lr_find_text import suggestion_line, summary_line, where_line

DRAW_EVERY_S = 0.5


class LRCurve(PlotextPlot):
    """The range test's curve (engine.insight.lr_plot draws it, as `cnnlab lr-find` does)."""

    def show(self, finding: dict[str, Any]) -> None:
        from engine.insight.lr_plot import draw_lr_curve

        draw_lr_curve(self.plt, finding)
        self.refresh()


class LRFindScreen(Screen[float | None]):
    """Dismissed with the suggested lr (enter) or None (escape)."""

    CSS_PATH = Path(__file__).with_name("lr_find.tcss")
    BINDINGS = [
        Binding("enter", "use", "Use it", priority=True),
        Binding("escape", "cancel", "Back"),
    ]

    def __init__(self, exp: Any, title: str = "", batches: int = 100, finding: dict[str, Any] | None = None) -> None:
        """`finding`: a range test already run (LRFinding.as_dict()), shown without running another."""
        super().__init__()
        self.exp = exp
        self.title_text = title
        self.batches = batches
        self.finding: dict[str, Any] | None = None
        self._given = finding
        self._left = False  # dismissed: what the worker finishes afterwards is not drawn
        self.error = ""
        self._cancel = threading.Event()
        self._lrs: list[float] = []  # appended by the worker thread as batches finish
        self._smoothed: list[float] = []
        self._drawn = -1

    @property
    def done(self) -> bool:
        return self.finding is not None or bool(self.error)

    def compose(self) -> ComposeResult:
        where = self.exp.model.arch + " on " + self.exp.data.dataset
        yield Static(f"lr range test · {self.title_text or where}", id="lrf-title")
        yield ProgressBar(total=self.batches, show_eta=False, id="lrf-bar")
        yield LRCurve(id="lrf-curve")
        yield Static("loading the data and building a copy of the model…", id="lrf-result")
        yield Footer()

    def on_mount(self) -> None:
        if self._given is not None:
            self._finished(self._given)
            return
        self.set_interval(DRAW_EVERY_S, self._draw_progress)
        self._run()

    @work(thread=True, exclusive=True, exit_on_error=False, group="lr-find")
    def _run(self) -> None:
        try:
            from engine.insight.lr_find import lr_find  # torch loads here, in the worker

            def progress(done: int, total: int, lr: float, loss: float) -> None:
                self._lrs.append(lr)
                self._smoothed.append(loss)

            finding = lr_find(self.exp, batches=self.batches, progress=progress, should_stop=self._cancel.is_set)
        except Exception as err:  # missing data, weights, device: said on the screen, the app goes on
            self.app.call_from_thread(self._failed, str(err) or type(err).__name__)
            return
        self.app.call_from_thread(self._finished, finding.as_dict())

    def _draw_progress(self) -> None:
        n = len(self._lrs)
        if self.done or n == self._drawn:
            return
        self._drawn = n
        self.query_one(ProgressBar).update(progress=n)
        lrs, smoothed = self._lrs[:n], self._smoothed[:n]
        self.query_one(LRCurve).show({"lrs": lrs, "losses": smoothed, "smoothed": smoothed})
        if n:
            self.query_one("#lrf-result", Static).update(f"batch {n} of {self.batches} · lr {lrs[-1]:.2e}")

    def _finished(self, finding: dict[str, Any]) -> None:
        self.finding = finding
        if self._left:  # left with escape while the last batch ran
            return
        self.query_one(ProgressBar).update(total=max(len(finding["lrs"]), 1), progress=len(finding["lrs"]))
        self.query_one(LRCurve).show(finding)
        text = Text(summary_line(finding) + "\n", style="dim")
        text.append(suggestion_line(finding), style="bold")
        if finding.get("suggestion") is not None:
            key = finding.get("target")
            text.append(
                "\n" + (f"enter: put it in {key} · escape: leave the form as it is" if key else where_line(finding))
            )
        self.query_one("#lrf-result", Static).update(text)
        self.refresh_bindings()

    def _failed(self, message: str) -> None:
        self.error = message
        if self._left:
            return
        self.query_one("#lrf-result", Static).update(Text(f"the lr range test cannot run: {message}", style="bold red"))
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "use":
            f = self.finding
            return True if f is not None and f.get("suggestion") is not None and f.get("target") else None
        return True

    def action_use(self) -> None:
        if self.check_action("use", ()) is True:
            self._left = True
            self.dismiss(self.finding["suggestion"])

    def action_cancel(self) -> None:
        self._cancel.set()  # a test still running stops at its next batch
        self._left = True
        self.dismiss(None)
