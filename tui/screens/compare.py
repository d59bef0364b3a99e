"""Several runs side by side: their curves overlaid on one chart (m steps through the metrics),
and their configs, listing only the fields in which they differ. Runs of a seed group are drawn as
the group's mean curve between the min and max of its runs (engine.insight.seed_groups)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from engine.experiment.overrides import flatten
from engine.insight.seed_groups import band, seed_groups
from engine.runfolder.folder import RunFolder
from engine.runfolder.table import RunInfo
from tui.commands import ScreenActionsProvider
from tui.run_view import short_id
from tui.widgets.charts import MetricChart

# What the compare chart can show, in the order the `m` key steps through.
COMPARE_METRICS = (
    ("val_acc", "val accuracy %"),
    ("val_loss", "val loss"),
    ("train_acc", "train accuracy %"),
    ("train_loss", "train loss"),
    ("lr", "learning rate"),
)


def differing_fields(configs: list[dict[str, Any]]) -> list[str]:
    """Dotted keys whose value is not the same in every config, in config order."""
    keys: list[str] = []
    for cfg in configs:
        keys.extend(k for k in cfg if k not in keys)
    return [k for k in keys if len({repr(cfg.get(k)) for cfg in configs}) > 1]


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


class CompareScreen(Screen):
    """Several runs' curves on one chart, and their configs side by side (differing fields only)."""

    CSS_PATH = Path(__file__).with_name("compare.tcss")
    COMMANDS = Screen.COMMANDS | {ScreenActionsProvider}
    BINDINGS = [
        Binding("m", "next_metric", "Metric"),
        Binding("b,escape", "back", "Back"),
    ]

    def __init__(self, runs: list[RunInfo]) -> None:
        super().__init__()
        self.runs = runs
        self.metric_index = 0
        self.histories = {str(r.path): RunFolder(r.path).metrics() for r in runs}
        self.labels = {str(run.path): f"{i} {short_id(run.id)}"[:20] for i, run in enumerate(runs, 1)}
        self.groups = seed_groups(runs)  # drawn as their mean curve in a min-max band, not run by run

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
        for g in self.groups:
            b = band([self.histories[str(r.path)] for r in g.runs], key)
            name = f"{g.runs[-1].preset or 'group'}"[:12] + f" ×{g.n} mean"
            chart.set_series(name, b.epochs, b.mean)
            chart.set_band(name, b.epochs, b.low, b.high)
        grouped = {str(r.path) for g in self.groups for r in g.runs}
        for run in self.runs:
            if str(run.path) in grouped:
                continue
            rows = self.histories[str(run.path)]
            chart.set_series(self.labels[str(run.path)], [r["epoch"] for r in rows], [r.get(key) for r in rows])
        chart.redraw(force=True)

    def action_next_metric(self) -> None:
        self.metric_index = (self.metric_index + 1) % len(COMPARE_METRICS)
        self._plot()

    def action_back(self) -> None:
        self.app.pop_screen()
