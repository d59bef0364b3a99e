"""Screenshots of the run dashboard, its results, the runs table and the comparison at 80x24, so
the look does not drift. Content is fixed: fake events and run folders with fixed ids and times.

Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update` and
look at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.events import BatchProgress, EpochFinished, RunFinished, RunStarted
from tests.test_tui_run import CLASSES, Harness, QuietRunScreen, demo_preset, metrics_row, summary_of, three_runs, wait_until
from tests.tiny import tiny_experiment
from tui.messages import wrap
from tui.screens.runs import RunsScreen

SIZE = (80, 24)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    # A relative path, so the screens show the same folder name on every machine.
    monkeypatch.chdir(tmp_path)
    three_runs(Path("runs"))
    return Path("runs")


def fed_run_screen(tmp_path: Path, *, finish: bool):
    screen = QuietRunScreen(tiny_experiment(**{"train.epochs": 5}), preset=demo_preset(), runs_dir=tmp_path)
    events = [RunStarted("runs/20250122-072031-shapes-demo-ab12", "20250122-072031-shapes-demo-ab12", "cpu", "bf16", True, 620_362, 480, 160, 500, CLASSES, 5, 0, 8, [])]
    for epoch in range(1, 6 if finish else 5):
        events += [BatchProgress(epoch, b, 8, 2.3 / epoch - b / 100, 0.05, 1234.0, 95.0) for b in range(1, 9)]
        events.append(EpochFinished(metrics_row(epoch)))
    if finish:
        events.append(RunFinished(summary_of(5, collapsed=True)))
    else:
        events.append(BatchProgress(5, 3, 8, 0.5, 0.05, 1234.0, 35.0))

    async def feed(pilot) -> None:
        for event in events:
            screen.post_message(wrap(event))
        await wait_until(pilot, lambda: screen.state == ("finished" if finish else "running"), what="the events")
        await pilot.pause(0.5)  # two redraw ticks
        for toast in pilot.app.screen.query("Toast"):
            toast.remove()  # a notification's timing is not part of the look
        await pilot.pause(0.1)

    return Harness(tmp_path, screen), feed


def test_run_screen_live(snap_compare, tmp_path):
    app, feed = fed_run_screen(tmp_path, finish=False)
    assert snap_compare(app, terminal_size=SIZE, run_before=feed)


def test_run_screen_results(snap_compare, tmp_path):
    app, feed = fed_run_screen(tmp_path, finish=True)

    async def feed_then_results(pilot) -> None:
        await feed(pilot)
        await pilot.press("r")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=feed_then_results)


def test_runs_table(snap_compare, runs_dir):
    app = Harness(runs_dir, RunsScreen(runs_dir))

    async def select(pilot) -> None:
        await pilot.press("down", "space")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=select)


def test_compare_screen(snap_compare, runs_dir):
    app = Harness(runs_dir, RunsScreen(runs_dir))

    async def compare(pilot) -> None:
        await pilot.press("down", "space", "down", "space", "c")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=compare)
