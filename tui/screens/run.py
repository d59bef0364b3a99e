"""The run dashboard: live loss, accuracy and learning-rate charts, progress with ETA, the latest
metrics beside the report's own numbers, a log of events, and after the run its test results.

The screen draws one RunState (tui/run_state.py), whoever feeds it: the run this console trains
(the app starts it, `CnnlabApp.start_run`, and hands the screen its ActiveRun), or a run folder
(`RunScreen.of_folder`), followed every second while another process writes it. The same keys pause,
continue and stop either: the own run through its handle, another process's through the run's
control channel (tui.training.FolderRun). A timer draws
what changed once a second (the charts every two seconds at most, at once when the run starts,
pauses or ends; a key that steers the run draws at once), so a fast engine never makes the
interface stutter nor slows its own training: every millisecond this thread draws holds the GIL
the trainer needs between its ops, and a core its thread pool computes on.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Static

from tui.commands import ScreenActionsProvider
from tui.run_state import FolderFeed, RunState, RunView
from tui.run_view import latest_table, reference_line, status_text
from tui.training import FolderRun
from tui.widgets.charts import MetricChart
from tui.widgets.device_panel import DevicePanel
from tui.widgets.event_log import EventLog
from tui.widgets.in_place import update_in_place
from tui.widgets.run_progress import RunProgress
from tui.widgets.run_results import RunResults

if TYPE_CHECKING:
    from engine.experiment.presets import Preset
    from tui.training import ActiveRun

REDRAW_EVERY_S = 1.0  # bars and figures: once a second (each repaint holds the GIL the trainer needs)
CHART_EVERY_S = 2.0  # a rebuild of the three charts every two seconds at most, for the same reason
FOLLOW_EVERY_S = 1.0  # a run folder written by another process is re-read this often


class RunScreen(Screen):
    """Live dashboard of a run this console trains, or a view of a run folder."""

    CSS_PATH = Path(__file__).with_name("run.tcss")
    COMMANDS = Screen.COMMANDS | {ScreenActionsProvider}
    BINDINGS = [
        Binding("p", "pause", "Pause/resume"),
        Binding("s", "stop", "Stop"),
        Binding("r", "toggle_results", "Results"),
        Binding("l", "focus_log", "Log", show=False),
        Binding("e", "smooth", "Smooth", show=False),  # cycles the EMA strength of the loss and accuracy curves
        Binding("w", "most_wrong", "Wrong"),  # the results at what it gets most wrong (top losses)
        Binding("y", "log_loss", "Log loss", show=False),
        Binding("i", "predict", "Predict"),  # the trained model on a file or folder (tui/screens/predict.py)
        Binding("b,escape", "back", "Back"),
    ]

    def __init__(
        self,
        model: RunState,
        *,
        preset: Preset | None = None,
        run: ActiveRun | FolderRun | None = None,
        feed: FolderFeed | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.preset = preset
        self.run = run  # the run steered from here: this console's own, or a folder's; None for a view
        self.feed = feed  # the folder read into the model; None for the console's own run
        self._drawn = self._drawn_epochs = self._charted = -1  # the versions of the model on screen
        self._charted_state = ""
        self._charted_at = 0.0
        self._drawn_state: tuple[str, str, str, str] | None = None
        self._results_shown = False

    @classmethod
    def of_folder(cls, run_dir: Path, *, preset: Preset | None = None) -> RunScreen:
        """A run folder, followed while its trainer (another process) writes it and steered through its
        control channel (raises ValueError/OSError when its config does not read)."""
        feed = FolderFeed(Path(run_dir))
        model = feed.new_state()
        return cls(model, preset=preset, feed=feed, run=FolderRun(Path(run_dir), model))

    # --- what tests and the app read --------------------------------------------------------

    @property
    def read_only(self) -> bool:
        return self.feed is not None

    @property
    def state(self) -> str:
        return self.model.state

    @property
    def message(self) -> str:
        return self.model.message

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.model.rows

    @property
    def resume_dir(self) -> Path | None:
        return self.run.resume_dir if self.run is not None else None

    @property
    def settled(self) -> bool:
        """Everything the model holds is on screen (the charts included, and their rebuild done)."""
        version = self.model.version
        charts_done = not any(chart.dirty for chart in self.query(MetricChart))
        return self._drawn == version and self._charted == version and charts_done

    # --- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="run-status")
        yield Static(id="run-reference")
        yield RunProgress(self.model.epochs, id="run-progress")
        yield DevicePanel(id="device-panel")
        with ContentSwitcher(initial="live", id="run-body"):
            with Vertical(id="live"):
                with Horizontal(id="charts"):
                    yield MetricChart("loss", id="loss-chart")
                    yield MetricChart("accuracy %", percent=True, id="acc-chart")
                    yield MetricChart("learning rate", log_y=True, id="lr-chart")
                with Horizontal(id="below"):
                    yield Static(id="latest")
                    yield EventLog(id="log", wrap=True, markup=False, max_lines=2000, min_width=20)
            yield RunResults(id="results")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(REDRAW_EVERY_S, self._flush)
        if self.feed is not None and not self.model.ended:  # running, paused, or not yet taken by its process
            self.set_interval(FOLLOW_EVERY_S, self._follow)
        self._flush()

    def _follow(self) -> None:
        self.feed.read(self.model)

    # --- drawing: what changed in the model, at most a few times a second -------------------

    def _flush(self) -> None:
        view = self.model.view()
        log = self.query_one("#log", EventLog)
        for line in self.model.take_log():
            log.write(line)
        if view.version != self._drawn:
            self._drawn = view.version
            self._draw(view)
        now = time.monotonic()
        # Epochs of a fast run end several times a second: their points wait for the next rebuild too.
        due = view.state != self._charted_state or now - self._charted_at >= CHART_EVERY_S
        if view.version != self._charted and due:
            self._charted, self._charted_state, self._charted_at = view.version, view.state, now
            self._feed_charts(view)
        for chart in self.query(MetricChart):
            chart.redraw()

    def _draw(self, view: RunView) -> None:
        # The widgets updated here have fixed sizes: updating them without a layout lets Textual
        # repaint just them instead of laying out and repainting the whole screen.
        status = (view.state, view.message, view.run_id, view.device)
        if status != self._drawn_state:
            self._drawn_state = status
            parts = [self.preset.name if self.preset else "", view.run_id, view.device + self._ranks()]
            text = status_text(view.state, view.message, read_only=self.read_only and not self._live(), parts=parts)
            update_in_place(self.query_one("#run-status", Static), text)
            self.refresh_bindings()
        self.query_one(RunProgress).show(view, ended=self.model.ended)
        self.query_one(DevicePanel).track(view.device, view.rows, self._trainer_pid())
        if view.epoch_version != self._drawn_epochs:
            self._drawn_epochs = view.epoch_version
            self.query_one("#latest", Static).update(latest_table(view.rows, view.images_per_sec), layout=False)
            ref = self.preset.reference if self.preset else None
            reference = {**ref.figures(), "epochs": ref.epochs} if ref else None
            update_in_place(
                self.query_one("#run-reference", Static), reference_line(reference, view.rows, view.summary)
            )
        if view.state == "finished" and not self._results_shown:
            self._results_shown = True
            results = self.query_one(RunResults)
            results.show_summary(view.summary or {})
            results.offer_predict(self._checkpoint() is not None)
            self.refresh_bindings()

    def _feed_charts(self, view: RunView) -> None:
        rows = view.rows
        epochs = [r["epoch"] for r in rows]

        def col(key: str) -> list[Any]:
            return [r.get(key) for r in rows]

        loss = self.query_one("#loss-chart", MetricChart)
        loss.set_series("train", epochs + view.live_loss[0], col("train_loss") + view.live_loss[1])
        loss.set_series("val", epochs, col("val_loss"))
        acc = self.query_one("#acc-chart", MetricChart)
        acc.set_series("train", epochs, col("train_acc"))
        acc.set_series("val", epochs, col("val_acc"))
        lr = self.query_one("#lr-chart", MetricChart)
        batch_xs, batch_ys = view.batch_lr
        if batch_xs:
            # Per-batch points for the epochs seen live, per-epoch points before them (a resume).
            before = [r for r in rows if r["epoch"] <= batch_xs[0]]
            lr.set_series("lr", [r["epoch"] for r in before] + batch_xs, [r.get("lr") for r in before] + batch_ys)
        else:  # per-epoch schedules: the epoch in progress runs at its lr from its first batch
            live = view.live_loss[0] if view.progress is not None else []
            lr.set_series("lr", epochs + live, col("lr") + ([view.progress.lr] * len(live) if live else []))

    # --- keys -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "predict":
            return self._checkpoint() is not None  # hidden until there is a model to load
        if action in ("pause", "stop"):
            if self.read_only and not self._live():
                return False  # a view of a run no process trains: nothing to steer
            if not self._steerable():
                return None  # shown, dimmed
        return True

    def _live(self) -> bool:
        """A followed folder's trainer is at work (the folder says so; the feed reads it every second)."""
        return self.model.state in ("running", "paused", "stopping")

    def _steerable(self) -> bool:
        # The state says the run ended a moment before its thread has returned.
        run, model = self.run, self.model
        if run is None or model.ended or model.state == "stopping":
            return False
        return self._live() if isinstance(run, FolderRun) else run.is_running

    def action_pause(self) -> None:
        if not self._steerable():
            return
        if self.run.paused:
            self.run.resume()
            self.model.resume_asked()
        else:
            self.run.pause()
            self.model.pause_asked()
        self._flush()

    def action_stop(self) -> None:
        if not self._steerable():
            return
        self.run.stop()
        self.model.stop_asked()
        self._flush()

    def action_toggle_results(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "results" if switcher.current == "live" else "live"

    def _run_dir(self) -> Path | None:
        """The folder of the run on screen: the console's own once it started, or the folder followed."""
        if self.model.run_dir is not None:
            return self.model.run_dir
        return self.feed.folder.path if self.feed is not None else None

    def _checkpoint(self) -> str | None:
        from tui.screens.predict import checkpoint_of

        run_dir = self._run_dir()
        return checkpoint_of(run_dir) if run_dir is not None and self.model.ended else None

    def action_predict(self) -> None:
        from tui.screens.predict import PredictScreen

        run_dir = self._run_dir()
        if run_dir is None or self._checkpoint() is None:
            self.notify("this run has no checkpoint yet: predicting needs a trained model", severity="warning")
            return
        self.app.push_screen(PredictScreen(run_dir, self._checkpoint()))

    def action_focus_log(self) -> None:
        self.query_one(ContentSwitcher).current = "live"
        self.query_one("#log", EventLog).focus()

    def action_most_wrong(self) -> None:
        self.query_one(ContentSwitcher).current = "results"
        results = self.query_one(RunResults)
        # After the switch has laid the results out: before it, the section has no place to scroll to.
        self.call_after_refresh(
            results.scroll_to_widget, results.query_one("#results-mistakes"), top=True, animate=False
        )

    def action_smooth(self) -> None:
        from tui.smoothing import next_strength

        for key in ("#loss-chart", "#acc-chart"):
            chart = self.query_one(key, MetricChart)
            chart.set_smoothing(next_strength(chart.smoothing))
            chart.redraw()

    def action_log_loss(self) -> None:
        chart = self.query_one("#loss-chart", MetricChart)
        chart.set_log_y(not chart.log_forced)
        chart.redraw()

    def _ranks(self) -> str:
        """For the status line: the ranks of a run torchrun trains on several devices (status.json's world_size)."""
        n = self.feed.folder.status().get("world_size") if self.feed is not None else None
        return f" × {n} ranks" if isinstance(n, int) and n > 1 else ""

    def _trainer_pid(self):
        """How to find the process training this run, when this console can sample it; None: it cannot."""
        if self.model.ended:
            return None
        if self.feed is None:  # the console's own run: this process, once the trainer has started
            return os.getpid if self.run is not None and self.model.started else None
        if not self._live():
            return None

        def from_status() -> int | None:
            st = self.feed.folder.status()
            return st.get("pid") if st.get("host") in (None, socket.gethostname()) else None

        return from_status

    def action_back(self) -> None:
        """Back to the screen underneath while the run goes on (the app dropped the editor when it started)."""
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
