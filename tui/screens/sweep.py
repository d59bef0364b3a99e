"""A sweep, live: its trials in a table (state, the varied values, epoch, the metric, time; the best
marked ★), their curves overlaid, which parameters matter (Optuna's importance evaluator), and the
metric against each varied parameter. Enter opens a trial's run screen; p pauses or continues the
whole sweep, s stops it (every worker, at its next batch), R resumes a stopped one.

Everything is read from the sweep's study and its trials' run folders (engine.sweeps.view), on a
thread every couple of seconds: the workers are other processes, here or on other machines, and
the sweep trains on when this screen or the console closes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from engine.insight.formatting import STATE_STYLES, duration
from engine.insight.formatting import metric as metric_text
from tui.commands import ScreenActionsProvider
from tui.screens.confirm import ConfirmScreen
from tui.widgets.charts import MetricChart
from tui.widgets.sweep_charts import ImportanceBars, ParamChart

REFRESH_EVERY_S = 2.0
MAX_VARIED_COLUMNS = 4  # at 80 columns; the highlighted trial's line below the table has them all


def short(key: str, varied: list[str]) -> str:
    """`optim.lr` → `lr` where that is unambiguous, as report 002's table names its columns."""
    names = [k.split(".")[-1] for k in varied]
    name = key.split(".")[-1]
    return name if names.count(name) == 1 else key


def value_text(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "–" if v is None else str(v)


class SweepScreen(Screen):
    CSS_PATH = Path(__file__).with_name("sweep.tcss")
    COMMANDS = Screen.COMMANDS | {ScreenActionsProvider}
    BINDINGS = [
        Binding("enter", "open", "Open trial", priority=True),
        Binding("p", "pause", "Pause/continue"),
        Binding("s", "stop", "Stop sweep"),
        Binding("R", "resume", "Resume", key_display="R"),
        Binding("c", "tab('curves')", "Curves", show=False),
        Binding("i", "tab('importance')", "Importance", show=False),
        Binding("v", "by_param", "By param"),
        Binding("f5", "refresh", "Refresh", show=False),
        Binding("b,escape", "back", "Back"),
    ]

    def __init__(self, sweep_dir: Path) -> None:
        super().__init__()
        self.sweep_dir = Path(sweep_dir)
        self.reader = None  # engine.sweeps.view.SweepReader, made on the first read (it imports Optuna)
        self.view = None  # the last SweepView read
        self.reads = 0
        self.param_index = 0
        self._asked = ""  # a pause or stop on its way: what the title says until the study shows it

    def compose(self) -> ComposeResult:
        yield Static(f"sweep {self.sweep_dir.name} · reading…", id="sweep-title", markup=False)
        yield DataTable(id="trials", cursor_type="row", zebra_stripes=True)
        with TabbedContent(id="sweep-tabs", initial="curves"):
            with TabPane("Curves", id="curves"):
                yield MetricChart("trials", id="sweep-curves")
            with TabPane("Importance", id="importance"):
                yield ImportanceBars("", id="sweep-importance")
            with TabPane("By parameter", id="by-param"):
                yield ParamChart(id="sweep-param")
        yield Static("", id="trial-detail", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"sweep {self.sweep_dir.name}"
        self.refresh_sweep()
        self.set_interval(REFRESH_EVERY_S, self.refresh_sweep)
        self.query_one(DataTable).focus()

    # --- reading -------------------------------------------------------------------------------

    def refresh_sweep(self) -> None:
        self._read()

    @work(thread=True, exclusive=True, group="sweep-read", exit_on_error=False)
    def _read(self) -> None:
        from engine.experiment.sweep_plan import SweepError
        from engine.sweeps.view import SweepReader

        try:
            if self.reader is None:
                self.reader = SweepReader(self.sweep_dir)
            view = self.reader.read()
        except (SweepError, ValueError, OSError) as err:
            self.app.call_from_thread(self._unreadable, str(err))
            return
        self.app.call_from_thread(self._show, view)

    def _unreadable(self, message: str) -> None:
        self.query_one("#sweep-title", Static).update(f"sweep {self.sweep_dir.name}: {message}")

    def _show(self, view) -> None:
        first = self.view is None
        self.view = view
        self.reads += 1
        if view.state in ("paused", "stopped", "running", "finished") and self._asked and view.state == self._asked:
            self._asked = ""
        self._title()
        self._table(view, first)
        self._charts(view)
        self._detail()
        self.refresh_bindings()

    def _title(self) -> None:
        view = self.view
        sweep = view.sweep
        counts = " · ".join(f"{n} {state}" for state, n in sorted(view.counts().items()))
        kind = sweep.spec.get("sampler", "grid")
        workers = f"{view.workers} worker{'s' if view.workers != 1 else ''}"
        state = f"{view.state} (asked: {self._asked})" if self._asked else view.state
        # Two lines: at 80 columns the folder's name alone takes half of one, and the counts must show.
        text = Text(f"{sweep.id} · {kind}, {len(sweep.trials)} trials by {sweep.metric}\n")
        text.append(state, style=STATE_STYLES.get(view.state, "bold"))
        text.append(f" · {workers} · {counts}")
        self.query_one("#sweep-title", Static).update(text)

    def _table(self, view, first: bool) -> None:
        table = self.query_one(DataTable)
        varied = view.sweep.varied[:MAX_VARIED_COLUMNS]
        if first:
            table.add_column("trial", key="trial", width=6)
            table.add_column("state", key="state", width=9)
            for key in varied:
                table.add_column(short(key, view.sweep.varied), key=key, width=9)
            table.add_column("epoch", key="epoch", width=5)
            table.add_column(view.sweep.metric, key="metric", width=8)
            table.add_column("time", key="time", width=6)
        for t in view.trials:
            mark = "★" if t.slot == view.best else " "
            cells = [
                Text(f"{mark}{t.slot:>3}", style="bold green" if mark == "★" else ""),
                Text(t.state, style=STATE_STYLES.get(t.state, "")),
                *[Text(value_text(t.values.get(k))) for k in varied],
                f"{t.epochs_done}/{t.epochs}",
                metric_text(view.sweep.metric, t.metric, missing="–"),
                duration(t.seconds),
            ]
            key = str(t.slot)
            if key in table.rows:
                for column, cell in zip(table.columns, cells, strict=True):
                    table.update_cell(key, column, cell)
            else:
                table.add_row(*cells, key=key)

    def _charts(self, view) -> None:
        metric = view.sweep.metric
        chart = self.query_one("#sweep-curves", MetricChart)
        chart.chart_title = f"{metric} per trial (★ #{view.best})" if view.best else f"{metric} per trial"
        chart.percent = metric.endswith("_acc")
        for t in view.trials:
            if t.curve:
                chart.set_series(f"#{t.slot}", [e for e, _ in t.curve], [v for _, v in t.curve])
        chart.redraw()
        self.query_one(ImportanceBars).show(view.importance, view.importance_note)
        self._param_chart()

    def _param_chart(self) -> None:
        view = self.view
        varied = view.sweep.varied
        param = varied[self.param_index % len(varied)] if varied else ""
        ended = ("finished", "pruned")
        points = [(t.values.get(param), t.metric) for t in view.trials if t.state in ended and t.metric is not None]
        self.query_one(ParamChart).show(param, view.sweep.metric, points)

    # --- the highlighted trial -------------------------------------------------------------

    def current(self):
        table = self.query_one(DataTable)
        if self.view is None or not table.row_count:
            return None
        slot = int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        return next((t for t in self.view.trials if t.slot == slot), None)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._detail()

    def _detail(self) -> None:
        t = self.current()
        if t is None:
            return
        values = ", ".join(f"{k}={value_text(v)}" for k, v in t.values.items()) or "drawn when it starts"
        where = t.run.name if t.run else (f"on {t.worker}" if t.worker else "not started")
        # the message (why it was pruned, how it failed) before the long run id, which 80 columns cut
        text = f"#{t.slot} {values} · " + (f"{t.message} · " if t.message else "") + where
        self.query_one("#trial-detail", Static).update(text)

    # --- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.view.state if self.view is not None else ""
        if action in ("pause", "stop"):
            return state in ("running", "paused")
        if action == "resume":
            return state == "stopped"
        return True

    def action_refresh(self) -> None:
        self.refresh_sweep()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_by_param(self) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.active == "by-param" and self.view is not None and self.view.sweep.varied:
            self.param_index = (self.param_index + 1) % len(self.view.sweep.varied)
        tabs.active = "by-param"
        if self.view is not None:
            self._param_chart()

    def action_open(self) -> None:
        t = self.current()
        if t is None:
            return
        if t.run is None:
            self.notify(f"trial {t.slot} has no run folder here yet ({t.state})", severity="warning")
            return
        from engine.experiment.presets import find_preset
        from tui.screens.run import RunScreen

        try:
            screen = RunScreen.of_folder(t.run, preset=find_preset(self.view.sweep.preset, self.app.user_presets_dir))
        except (OSError, ValueError) as err:
            self.notify(f"{t.run.name}: its config does not read ({err})", severity="error", markup=False)
            return
        self.app.push_screen(screen)

    def action_pause(self) -> None:
        command = "continue" if self.view is not None and self.view.state == "paused" else "pause"
        self._order(command)

    def action_stop(self) -> None:
        question = (
            f"Stop the sweep {self.sweep_dir.name}?\n\n"
            "Every worker stops its trial at the next batch, with a checkpoint, and takes no new one. "
            "R (or cnnlab sweep --resume) carries it on."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._order("stop")

        self.app.push_screen(ConfirmScreen(question, yes="Stop the sweep", no="Keep going"), answered)

    def _order(self, command: str) -> None:
        self._asked = {"pause": "paused", "continue": "running", "stop": "stopped"}[command]
        if self.view is not None:
            self._title()
        self._send(command)

    @work(thread=True, group="sweep-order", exit_on_error=False)
    def _send(self, command: str) -> None:
        from engine.sweeps.control import order_sweep

        try:
            done = order_sweep(self.sweep_dir, command)
        except (ValueError, OSError) as err:
            self.app.call_from_thread(self.notify, str(err), title=f"{command} failed", severity="error")
            return
        n = len(done.runs)
        said = f"sweep {done.state}: {n} running trial{'s' if n != 1 else ''} told"
        self.app.call_from_thread(self.notify, said)
        self.app.call_from_thread(self.refresh_sweep)

    def action_resume(self) -> None:
        self._resume()

    @work(thread=True, group="sweep-order", exit_on_error=False)
    def _resume(self) -> None:
        from engine.sweeps.launch import resume_detached

        workers = max(1, self.view.workers if self.view is not None else 1)
        resume_detached(self.sweep_dir, workers)
        self.app.call_from_thread(self.notify, f"resuming the sweep with {workers} worker(s)")
        self.app.call_from_thread(self.refresh_sweep)

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
