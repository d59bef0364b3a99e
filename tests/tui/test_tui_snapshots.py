"""Screenshots of the run dashboard, its results, the runs table and the comparison at 80x24, so
the look does not drift. Content is fixed: fake events and run folders with fixed ids and times.
Each waits for the state it shows (the run drawn, the table filled), never for a length of time.

Update after an intended change with `pytest tests/tui/test_tui_snapshots.py --snapshot-update` and
look at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.events import BatchProgress, EpochFinished, RunFinished, RunStarted
from tests.console import Harness, quiet_run_screen, settled, steady_look, wait_until
from tests.fake_runs import CLASSES, demo_preset, metrics_row, summary_of, three_runs
from tests.tiny import tiny_experiment
from tui.screens.compare import CompareScreen
from tui.screens.runs import RunsScreen
from tui.widgets.charts import MetricChart

SIZE = (80, 24)
RUN_ID = "20250122-072031-shapes-demo-ab12"


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    # A relative path, so the screens show the same folder name on every machine.
    monkeypatch.chdir(tmp_path)
    three_runs(Path("runs"))
    return Path("runs")


def fed_run_screen(tmp_path: Path, *, finish: bool):
    screen = quiet_run_screen(tiny_experiment(**{"train.epochs": 5}), preset=demo_preset())
    started = RunStarted(f"runs/{RUN_ID}", RUN_ID, "cpu", "bf16", True, 620_362, 480, 160, 500, CLASSES, 5, 0, 8, [])
    events = [started]
    for epoch in range(1, 6 if finish else 5):
        events += [BatchProgress(epoch, b, 8, 2.3 / epoch - b / 100, 0.05, 1234.0, 95.0) for b in range(1, 9)]
        events.append(EpochFinished(metrics_row(epoch)))
    if finish:
        events.append(RunFinished(summary_of(5, collapsed=True)))
    else:
        events.append(BatchProgress(5, 3, 8, 0.5, 0.05, 1234.0, 35.0))

    async def feed(pilot) -> None:
        for event in events:
            screen.model.apply(event)
        await wait_until(pilot, lambda: screen.state == ("finished" if finish else "running"), what="the events")
        await settled(pilot, screen)
        steady_look(pilot.app)

    return Harness(tmp_path, screen), feed


def test_run_screen_live(snap_compare, tmp_path):
    app, feed = fed_run_screen(tmp_path, finish=False)
    assert snap_compare(app, terminal_size=SIZE, run_before=feed)


def test_run_screen_results(snap_compare, tmp_path):
    app, feed = fed_run_screen(tmp_path, finish=True)

    async def feed_then_results(pilot) -> None:
        await feed(pilot)
        await pilot.press("r")
        await wait_until(pilot, lambda: pilot.app.screen.query_one("#run-body").current == "results", what="results")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=feed_then_results)


def test_runs_table(snap_compare, runs_dir):
    app = Harness(runs_dir, RunsScreen(runs_dir))

    async def select(pilot) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen), what="the runs screen")
        screen = pilot.app.screen
        await pilot.press("down", "space")
        await wait_until(pilot, lambda: len(screen.selected) == 1, what="the selection")
        steady_look(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=select)


def test_compare_screen(snap_compare, runs_dir):
    app = Harness(runs_dir, RunsScreen(runs_dir))

    async def compare(pilot) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen), what="the runs screen")
        await pilot.press("down", "space", "down", "space", "c")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen), what="the comparison")
        chart = pilot.app.screen.query_one(MetricChart)
        await wait_until(pilot, lambda: chart.draws >= 1 and not chart.dirty, what="the chart")
        steady_look(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=compare)
