"""Line charts of training curves on textual-plotext: loss, accuracy, learning rate, and the
overlay of several runs (a seed group as its mean curve between its min and max).

A chart can smooth its curves (an EMA of the strength in `smoothing`, tui/smoothing.py, applied to
the whole series before thinning) and switch its y axis to a log scale (`log_y`); the run screen's
keys set both.

Building a plotext chart is the costly part (tens of milliseconds for a few hundred points), so a
chart only keeps its series and a dirty flag; `redraw()` rebuilds it, with every series thinned to
about the chart's width, and only when something changed. The run screen calls `redraw()` from a
timer a few times a second, whatever the rate of the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from tui.smoothing import ema
from tui.thinning import finite_points, thin

# Distinct on dark and light themes, and in 256-colour tmux.
SERIES_COLORS = ("cyan", "orange", "green", "magenta", "red", "blue", "yellow", "white")


def whole_ticks(lo: float, hi: float, most: int) -> list[int]:
    """Whole-number ticks (epochs) spread over [lo, hi], at most `most` of them; [] below two."""
    first, last = math.ceil(lo), math.floor(hi)
    if last <= first:
        return []
    step = max(1, math.ceil((last - first) / max(most - 1, 1)))
    return list(range(first, last + 1, step))


class MetricChart(PlotextPlot):
    """A chart of named series over epochs; `percent` shows fractions 0..1 as 0..100."""

    DEFAULT_CSS = """
    MetricChart {
        min-width: 20;
        min-height: 6;
    }
    """

    def __init__(
        self,
        title: str,
        *,
        percent: bool = False,
        log_y: bool = False,
        smoothing: float = 0.0,
        xlabel: str = "epoch",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.chart_title = title
        self.percent = percent
        self.log_y = log_y
        self.smoothing = smoothing  # EMA weight, 0: off
        self.log_forced = False  # the user asked for a log scale: not only when the values span 20x
        self.xlabel = xlabel
        self._series: dict[str, tuple[list[float], list[float]]] = {}
        self._bands: dict[str, tuple[list[float], list[float], list[float]]] = {}  # name -> xs, low, high
        self._colors: dict[str, str] = {}
        self.dirty = True
        self.draws = 0  # how many times the chart was rebuilt: the tests and `bench --ui` read it
        self._rendered: tuple[tuple, Text] | None = None

    # --- data -------------------------------------------------------------------------------

    def set_series(
        self, name: str, xs: Sequence[float], ys: Sequence[float | None], *, color: str | None = None
    ) -> None:
        """Replace one series (missing and non-finite values are left out)."""
        points = finite_points(xs, ys)
        if self._series.get(name) != points:
            self._series[name] = points
            self.dirty = True
        if color is not None:
            self._colors[name] = color

    def set_band(self, name: str, xs: Sequence[float], low: Sequence[float], high: Sequence[float]) -> None:
        """The min-max band around the series `name` (a seed group's runs), drawn as two faint lines
        in its colour."""
        band = (list(xs), list(low), list(high))
        if self._bands.get(name) != band:
            self._bands[name] = band
            self.dirty = True

    def set_smoothing(self, weight: float) -> None:
        if weight != self.smoothing:
            self.smoothing = weight
            self.dirty = True

    def set_log_y(self, on: bool) -> None:
        """The user's log scale: on whenever every value is positive (else the axis stays linear)."""
        if on != self.log_forced:
            self.log_y = self.log_forced = on
            self.dirty = True

    def clear(self) -> None:
        if self._series or self._bands:
            self._series.clear()
            self._bands.clear()
            self.dirty = True

    def series(self, name: str) -> tuple[list[float], list[float]]:
        return self._series.get(name, ([], []))

    @property
    def names(self) -> list[str]:
        return list(self._series)

    def point_count(self, name: str | None = None) -> int:
        """Points held (of one series, or all): what the tests wait for."""
        if name is not None:
            return len(self.series(name)[0])
        return sum(len(xs) for xs, _ in self._series.values())

    # --- drawing ----------------------------------------------------------------------------

    def redraw(self, force: bool = False) -> bool:
        """Rebuild the plot from the series if they changed; True when it did."""
        if not (self.dirty or force):
            return False
        self.dirty = False
        self.draws += 1
        plt = self.plt
        plt.clear_figure()
        marks = [f"EMA {self.smoothing:g}"] if self.smoothing else []
        marks += ["log"] if self.log_forced else []
        plt.title(self.chart_title + (f" ({', '.join(marks)})" if marks else ""))
        plt.xlabel(self.xlabel)
        # About one point per column: more cannot be seen and only slows the build.
        budget = max(self.size.width - 8, 16)
        drawn = False
        all_y: list[float] = []
        all_x: list[float] = []
        for i, (name, (xs, ys)) in enumerate(self._series.items()):
            if not xs:
                continue
            color = self._colors.get(name, SERIES_COLORS[i % len(SERIES_COLORS)])
            if name in self._bands:
                bx, low, high = self._bands[name]
                for edge in (low, high):
                    ex, ey = thin(bx, edge, budget)
                    ey = [y * 100 for y in ey] if self.percent else ey
                    if len(ex) > 1:
                        plt.plot(ex, ey, color=color, marker="dot")
                    all_y.extend(ey)
            tx, ty = thin(xs, ema(ys, self.smoothing) if self.smoothing else ys, budget)
            if self.percent:
                ty = [y * 100 for y in ty]
            if len(tx) == 1:
                plt.scatter(tx, ty, label=name, color=color, marker="dot")
            else:
                plt.plot(tx, ty, label=name, color=color, marker="braille")
            all_y.extend(ty)
            all_x.extend((tx[0], tx[-1]))
            drawn = True
        if drawn:
            ticks = whole_ticks(min(all_x), max(all_x), max(self.size.width // 6, 2))
            if ticks:
                plt.xticks(ticks, [str(t) for t in ticks])
        if self.log_y and drawn and min(all_y) > 0 and (self.log_forced or max(all_y) / min(all_y) > 20):
            plt.yscale("log")
        if self.percent and drawn:
            plt.ylim(max(min(all_y) - 5, 0), min(max(all_y) + 5, 100))
        self.refresh()
        return True

    def render(self) -> RenderResult:
        # Textual renders a widget again whenever the screen is laid out (a label changing length,
        # a progress bar moving); plotext's build costs milliseconds, so build once per drawing.
        key = (self.draws, self.size.width, self.size.height, self.app.theme, self.theme)
        if self._rendered is None or self._rendered[0] != key:
            self._rendered = (key, super().render())
        return self._rendered[1]

    def on_resize(self) -> None:
        # The thinning budget follows the width.
        self.dirty = True
        self.redraw()
