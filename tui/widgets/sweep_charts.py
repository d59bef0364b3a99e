"""A sweep's pictures: parameter importance as bars, and the metric against one varied parameter.

The trials' curves overlaid are tui/widgets/charts.MetricChart's, one series per trial.
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.widgets import Static
from textual_plotext import PlotextPlot

BAR = "█"


def importance_bars(importance: dict[str, float], width: int, note: str = "") -> Text:
    """One line per parameter, most important first: its name, a bar, the share (0..1)."""
    if not importance:
        return Text(note or "no importance yet", style="dim")
    name_w = min(max(len(k) for k in importance), max(width // 3, 8))
    bar_w = max(width - name_w - 8, 4)
    out = Text()
    top = max(importance.values()) or 1.0
    for key, share in sorted(importance.items(), key=lambda kv: -kv[1]):
        n = max(1, round(share / top * bar_w)) if share > 0 else 0  # the most important fills the bar
        out.append(f"{key[:name_w]:<{name_w}} ")
        out.append(BAR * n, style="bold cyan")
        out.append(f"{' ' * (bar_w - n)} {share:5.2f}\n")
    out.append("Optuna's importance evaluator (fANOVA) over the finished trials", style="dim")
    return out


class ImportanceBars(Static):
    def show(self, importance: dict[str, float], note: str = "") -> None:
        self.update(importance_bars(importance, max(self.size.width, 40), note))


def numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


class ParamChart(PlotextPlot):
    """The metric of each finished trial against one varied parameter: numbers on their axis (a log
    axis when they span decades), choices side by side."""

    DEFAULT_CSS = "ParamChart { min-height: 6; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.param, self.metric = "", ""
        self.points: list[tuple[Any, float]] = []
        self.draws = 0

    def show(self, param: str, metric: str, points: list[tuple[Any, float]]) -> None:
        if (param, metric, points) == (self.param, self.metric, self.points):
            return
        self.param, self.metric, self.points = param, metric, list(points)
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.title(f"{self.metric} by {self.param}" if self.param else "no parameter varies")
        pct = self.metric.endswith("_acc")
        ys = [y * 100 if pct else y for _, y in self.points]
        xs_raw = [x for x, _ in self.points]
        if self.points and numeric(xs_raw):
            xs = [float(x) for x in xs_raw]
            positive = min(xs) > 0
            if positive and max(xs) / min(xs) >= 20:
                xs = [math.log10(x) for x in xs]
                plt.xlabel(f"log10 {self.param}")
            else:
                plt.xlabel(self.param)
            plt.scatter(xs, ys, marker="dot", color="cyan")
        elif self.points:
            labels = list(dict.fromkeys(str(x) for x in xs_raw))
            plt.scatter([labels.index(str(x)) + 1 for x in xs_raw], ys, marker="dot", color="cyan")
            plt.xticks(list(range(1, len(labels) + 1)), labels)
            plt.xlabel(self.param)
        plt.ylabel(self.metric + (" %" if pct else ""))
        self.draws += 1
        self.refresh()
