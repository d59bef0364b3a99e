"""The runs on disk: a table to open, compare, resume and delete them.

Everything here reads run folders through engine.runs, so runs started headless, in another
terminal or in an earlier session show up the same way, and a run whose process died reads as
crashed (and resumable). Comparing overlays the selected runs' curves on one chart and lists only
the config fields in which they differ.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.config import ConfigError, flatten
from engine.presets import UnknownPreset, get_preset
from engine.runs import RunFolder, RunInfo, list_runs, user_presets_dir
from tui.screens.run import STATE_STYLES, RunScreen, ScreenActionsProvider
from tui.widgets.charts import MetricChart
from tui.widgets.confirm import ConfirmScreen

_STAMP = re.compile(r"^\d{8}-\d{6}-")
REFRESH_EVERY_S = 3.0  # while a run in the table is running
# What the compare chart can show, in the order the `m` key steps through.
COMPARE_METRICS = (("val_acc", "val accuracy %"), ("val_loss", "val loss"), ("train_acc", "train accuracy %"), ("train_loss", "train loss"), ("lr", "learning rate"))


def short_id(run_id: str) -> str:
    """The run id without its timestamp (the table shows the start time in its own column)."""
    return _STAMP.sub("", run_id)


def started_text(started: str) -> str:
    """'2025-01-22T07:20:31' → '01-22 07:20'."""
    if len(started) >= 16 and started[4] == "-" and started[10] == "T":
        return f"{started[5:10]} {started[11:16]}"
    return started


def differing_fields(configs: list[dict[str, Any]]) -> list[str]:
    """Dotted keys whose value is not the same in every config, in config order."""
    keys: list[str] = []
    for cfg in configs:
        keys.extend(k for k in cfg if k not in keys)
    return [k for k in keys if len({repr(cfg.get(k)) for cfg in configs}) > 1]


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"  # no space: 100.0% fits the column


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


class RunsScreen(Screen):
    """The table of runs in the runs folder."""

    COMMANDS = Screen.COMMANDS | {ScreenActionsProvider}
    BINDINGS = [
        Binding("enter", "open", "Open", priority=True),
        Binding("space", "toggle_select", "Select"),
        Binding("c", "compare", "Compare"),
        Binding("R", "resume", "Resume", key_display="R"),
        Binding("d", "delete", "Delete"),
        Binding("f5", "refresh", "Refresh", show=False),  # and by itself while a run in it trains
        Binding("b,escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    RunsScreen #runs-title {
        height: 1;
        padding: 0 1;
        text-style: bold;
    }
    RunsScreen #runs-table {
        height: 1fr;
    }
    RunsScreen #runs-empty {
        padding: 1 2;
        display: none;
    }
    RunsScreen #run-detail {
        height: 2;
        padding: 0 1;
        color: $text-muted;
    }
    """

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.runs: dict[str, RunInfo] = {}  # by path
        self.selected: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Static(f"Runs in {self.runs_dir}", id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(f"No runs yet in {self.runs_dir}: start one from the picker.", id="runs-empty")
        yield Static(id="run-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # Widths that fit 80 columns; the full id of the highlighted run is shown below the table.
        table.add_column("run", key="run", width=18)
        table.add_column("preset", key="preset", width=10)
        table.add_column("status", key="status", width=8)
        table.add_column("epochs", key="epochs", width=6)
        table.add_column("best", key="best", width=6)
        table.add_column("test", key="test", width=6)
        table.add_column("started", key="started", width=11)
        self.refresh_runs()
        self.set_interval(REFRESH_EVERY_S, self._auto_refresh)
        table.focus()

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    # --- the table --------------------------------------------------------------------------

    def refresh_runs(self) -> None:
        table = self.query_one(DataTable)
        current = self.current_path()
        infos = list_runs(self.runs_dir)
        self.runs = {str(info.path): info for info in infos}
        self.selected &= set(self.runs)
        table.clear()
        for info in infos:
            table.add_row(*self._cells(info), key=str(info.path))
        empty = not infos
        self.query_one("#runs-empty").display = empty
        table.display = not empty
        if current in self.runs:
            table.move_cursor(row=table.get_row_index(current))
        self._show_detail()

    def _auto_refresh(self) -> None:
        if any(info.state == "running" for info in self.runs.values()):
            self.refresh_runs()

    def _cells(self, info: RunInfo) -> list[Any]:
        mark = "● " if str(info.path) in self.selected else "  "
        run = Text(mark + short_id(info.id), style="bold" if mark.strip() else "")
        status = Text(info.state, style=STATE_STYLES.get(info.state, ""))
        return [
            run,
            info.preset or "–",
            status,
            f"{info.epochs_done}/{info.epochs}",
            _pct(info.best_val_acc),
            _pct(info.test_acc),
            started_text(info.started),
        ]

    def current_path(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def current(self) -> RunInfo | None:
        path = self.current_path()
        return self.runs.get(path) if path else None

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open()  # a click on a row

    def _show_detail(self) -> None:
        info = self.current()
        if info is None:
            self.query_one("#run-detail", Static).update("")
            return
        what = " · ".join(p for p in (info.arch, info.dataset) if p)
        text = Text(f"{info.id}  {what}")
        if info.message:
            text.append(f"\n{info.state}: {info.message}", style=STATE_STYLES.get(info.state, ""))
        elif info.resumable:
            text.append("\nR resumes it from its last checkpoint")
        self.query_one("#run-detail", Static).update(text)

    # --- actions ----------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.refresh_runs()

    def action_toggle_select(self) -> None:
        path = self.current_path()
        if path is None:
            return
        self.selected ^= {path}
        self.query_one(DataTable).update_cell(path, "run", self._cells(self.runs[path])[0])

    def action_open(self) -> None:
        info = self.current()
        if info is None:
            return
        active = self.app.active_run
        if active is not None and active.folder_path is not None and Path(active.folder_path) == info.path:
            if active.screen not in self.app.screen_stack:
                self.app.push_screen(active.screen)  # the run this console trains: its live screen
                return
        try:
            screen = RunScreen.of_folder(info.path, runs_dir=self.runs_dir, preset=self._preset(info.preset))
        except (OSError, ValueError) as err:
            self.notify(f"{info.id}: its config does not read ({err})", severity="error")
            return
        self.app.push_screen(screen)

    def action_resume(self) -> None:
        info = self.current()
        if info is None:
            return
        active = self.app.active_run
        if active is not None and active.is_running:
            self.notify("a run is training in this console: stop it first, or wait for it to end", severity="warning")
            return
        if not info.resumable:
            why = "it is still running" if info.state == "running" else (
                "it has done all its epochs" if info.epochs_done >= info.epochs else f"it is {info.state}"
            )
            self.notify(f"{short_id(info.id)} cannot be resumed: {why}", severity="warning")
            return
        try:
            exp = RunFolder(info.path).experiment()
        except (OSError, ValueError) as err:
            self.notify(f"{info.id}: its config does not read ({err})", severity="error")
            return
        self.app.push_screen(RunScreen(exp, preset=self._preset(info.preset), runs_dir=self.runs_dir, resume_dir=info.path))

    def action_compare(self) -> None:
        paths = [p for p in self.runs if p in self.selected]
        if len(paths) < 2:
            self.notify("select two or more runs with space, then press c", severity="warning")
            return
        self.app.push_screen(CompareScreen([self.runs[p] for p in paths]))

    def action_delete(self) -> None:
        targets = [self.runs[p] for p in self.runs if p in self.selected] or ([self.current()] if self.current() else [])
        if not targets:
            return
        active = self.app.active_run
        busy = [
            t for t in targets
            if t.state == "running"
            or (active is not None and active.is_running and active.folder_path is not None and Path(active.folder_path) == t.path)
        ]
        if busy:
            self.notify(f"{short_id(busy[0].id)} is running: stop it before deleting it", severity="warning")
            return
        names = ", ".join(short_id(t.id) for t in targets[:3]) + (f" and {len(targets) - 3} more" if len(targets) > 3 else "")
        question = f"Delete {len(targets)} run{'s' if len(targets) > 1 else ''} ({names})?\nIts metrics, checkpoints and results are removed from disk."

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(targets)

        self.app.push_screen(ConfirmScreen(question, yes="Delete", no="Keep"), answered)

    def _delete(self, targets: list[RunInfo]) -> None:
        root = self.runs_dir.resolve()
        for info in targets:
            path = info.path.resolve()
            if root not in path.parents:  # never remove anything outside the runs folder
                continue
            shutil.rmtree(path, ignore_errors=True)
            self.selected.discard(str(info.path))
        self.notify(f"deleted {len(targets)} run{'s' if len(targets) > 1 else ''}")
        self.refresh_runs()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def _preset(self, name: str) -> Any:
        if not name:
            return None
        try:
            return get_preset(name, user_presets_dir(self.runs_dir))
        except (UnknownPreset, ConfigError):  # renamed or broken: the run still opens, without reference numbers
            return None


class CompareScreen(Screen):
    """Several runs' curves on one chart, and their configs side by side (differing fields only)."""

    COMMANDS = Screen.COMMANDS | {ScreenActionsProvider}
    BINDINGS = [
        Binding("m", "next_metric", "Metric"),
        Binding("b,escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    CompareScreen #compare-chart {
        height: 1fr;
        min-height: 8;
    }
    CompareScreen #compare-configs {
        height: auto;
        max-height: 45%;
    }
    """

    def __init__(self, runs: list[RunInfo]) -> None:
        super().__init__()
        self.runs = runs
        self.metric_index = 0
        self.histories = {str(r.path): RunFolder(r.path).metrics() for r in runs}
        self.labels = self._labels()

    def _labels(self) -> dict[str, str]:
        labels = {}
        for i, run in enumerate(self.runs, 1):
            labels[str(run.path)] = f"{i} {short_id(run.id)}"[:20]
        return labels

    def compose(self) -> ComposeResult:
        with Vertical():
            yield MetricChart("", id="compare-chart")
            yield DataTable(id="compare-configs", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._plot()
        table = self.query_one("#compare-configs", DataTable)
        configs = []
        for run in self.runs:
            try:
                configs.append(flatten(RunFolder(run.path).experiment()))
            except (OSError, ValueError):
                configs.append({})
        table.add_column("field", key="field")
        for run in self.runs:
            table.add_column(self.labels[str(run.path)][:14], key=str(run.path))
        keys = differing_fields(configs)
        for key in keys:
            table.add_row(key, *(_cell(cfg.get(key)) for cfg in configs), key=key)
        if not keys:
            table.add_row("(the same config)", *("" for _ in self.runs))
        table.focus()

    def _plot(self) -> None:
        key, title = COMPARE_METRICS[self.metric_index]
        chart = self.query_one("#compare-chart", MetricChart)
        chart.chart_title = f"{title} (m: next metric)"
        chart.percent = key.endswith("acc")
        chart.log_y = key == "lr"
        chart.clear()
        for run in self.runs:
            rows = self.histories[str(run.path)]
            chart.set_series(self.labels[str(run.path)], [r["epoch"] for r in rows], [r.get(key) for r in rows])
        chart.redraw(force=True)

    def action_next_metric(self) -> None:
        self.metric_index = (self.metric_index + 1) % len(COMPARE_METRICS)
        self._plot()

    def action_back(self) -> None:
        self.app.pop_screen()
