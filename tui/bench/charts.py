"""The cost of one chart: 40x24 cells (a third of the run screen in a 120x40 terminal) rebuilt
with 2 series x 500 points, thinned to its width as the console does, and unthinned."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

from textual.app import App, ComposeResult

from tui.screens.run import CHART_EVERY_S
from tui.widgets.charts import MetricChart

APP_SIZE = (120, 40)
CHART_SIZE = (40, 24)
CHART_POINTS = 500


class ChartApp(App):
    CSS = f"MetricChart {{ width: {CHART_SIZE[0]}; height: {CHART_SIZE[1]}; }}"

    def compose(self) -> ComposeResult:
        yield MetricChart("loss", id="chart")


def curves(points: int) -> tuple[list[float], list[float], list[float]]:
    """Two noisy, falling loss curves over `points` steps."""
    rng = random.Random(0)
    xs = [i / 10 for i in range(points)]
    train = [2.3 * 0.995**i + rng.gauss(0, 0.05) for i in range(points)]
    val = [2.4 * 0.996**i + rng.gauss(0, 0.03) for i in range(points)]
    return xs, train, val


def _build_once(chart: MetricChart) -> float:
    """One rebuild as the screen's timer does it, plus the render that runs plotext's build."""
    t0 = time.perf_counter()
    chart.redraw(force=True)
    chart.render()
    return time.perf_counter() - t0


async def _chart_cost(repeats: int) -> dict[str, Any]:
    import tui.widgets.charts as charts

    app = ChartApp()
    async with app.run_test(headless=True, size=APP_SIZE) as pilot:
        await pilot.pause()
        chart = app.query_one(MetricChart)
        xs, train, val = curves(CHART_POINTS)
        chart.set_series("train", xs, train)
        chart.set_series("val", xs, val)
        _build_once(chart)
        thinned = [_build_once(chart) for _ in range(repeats)]
        # The same chart with every point drawn: thinning switched off for this measure only.
        keep = charts.thin
        charts.thin = lambda xs, ys, n: (list(xs), list(ys))
        try:
            _build_once(chart)
            unthinned = [_build_once(chart) for _ in range(repeats)]
        finally:
            charts.thin = keep
        width = chart.size.width
    t_ms, u_ms = 1000 * statistics.median(thinned), 1000 * statistics.median(unthinned)
    return {
        "series": 2,
        "points": CHART_POINTS,
        "chart_cells": list(CHART_SIZE),
        "thinned_to": max(width - 8, 16),
        "thinned_ms": round(t_ms, 2),
        "unthinned_ms": round(u_ms, 2),
        "speedup": round(u_ms / t_ms, 1) if t_ms else None,
        # Three charts rebuilt at the run screen's most frequent rate: the share of one core.
        "redraw_share": round(3 * t_ms / 1000 / CHART_EVERY_S, 4),
    }


def chart_cost(repeats: int) -> dict[str, Any]:
    return asyncio.run(_chart_cost(repeats))
