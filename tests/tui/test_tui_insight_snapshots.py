"""Screenshots of the insight views at 80x24, so their look does not drift: the lr finder's curve
and suggestion, a seed group in the runs table and its band in the comparison, a run's mistakes
(top losses with thumbnails), the export box, and the run screen with its device panel and smoothed
curves. Content is fixed (a synthetic range test, run folders with fixed ids and figures); each
waits for the state it shows.

Update after an intended change with `pytest tests/tui/test_tui_insight_snapshots.py --snapshot-update`
and look at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.evaluation.evaluate import thumbnail_png
from engine.events import BatchProgress, EpochFinished, RunFinished, RunStarted
from engine.insight.lr_find import lr_at, smooth, suggest
from tests.console import Harness, quiet_run_screen, screen_text, settled, steady_look, wait_until
from tests.fake_runs import CLASSES, demo_preset, metrics_row, summary_of
from tests.seed_runs import seed_group_runs
from tests.tiny import tiny_experiment
from tui.screens.compare import CompareScreen
from tui.screens.export import ExportScreen
from tui.screens.lr_find import LRFindScreen
from tui.screens.runs import RunsScreen
from tui.widgets.charts import MetricChart

SIZE = (80, 24)


def synthetic_finding() -> dict:
    lrs = [lr_at(i, 100, 1e-7, 10.0) for i in range(90)]
    raw = [
        2.3 - math.tanh(2 * (math.log10(x) + 3)) + (8 * x if x > 0.05 else 0) + 0.05 * math.sin(i)
        for i, x in enumerate(lrs)
    ]
    smoothed = smooth(raw)
    return {
        "lrs": lrs,
        "losses": raw,
        "smoothed": smoothed,
        "batches": 100,
        "start_lr": 1e-7,
        "end_lr": 10.0,
        "rule": "valley",
        "suggestion": suggest(lrs, smoothed, "valley"),
        "stopped_early": "the loss exploded at lr 1.17 (9.81, 4x its best 1.32)",
        "seconds": 7.4,
        "device": "cpu, fp32, channels_last",
        "target": "optim.lr",
        "notes": [],
    }


@pytest.fixture
def group_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # a relative path: the same title on every machine
    seed_group_runs(Path("runs"))
    return Path("runs")


def test_lr_finder_screen(snap_compare, tmp_path):
    screen = LRFindScreen(tiny_experiment(), "shapes-demo", finding=synthetic_finding())
    app = Harness(tmp_path, screen)

    async def shown(pilot) -> None:
        await wait_until(pilot, lambda: screen.is_mounted and screen.finding is not None, what="the finding")
        await pilot.pause()
        steady_look(pilot.app)

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)


def test_runs_table_with_a_seed_group(snap_compare, group_dir):
    app = Harness(group_dir, RunsScreen(group_dir))

    async def shown(pilot) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen), what="the runs screen")
        await wait_until(pilot, lambda: pilot.app.screen.seeds.groups, what="the group")
        steady_look(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)


def test_compare_a_seed_group_as_a_band(snap_compare, group_dir):
    app = Harness(group_dir, RunsScreen(group_dir))

    async def compare(pilot) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen), what="the runs screen")
        await pilot.press("space", "down", "space", "c")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen), what="the comparison")
        chart = pilot.app.screen.query_one(MetricChart)
        await wait_until(pilot, lambda: chart.draws >= 1 and not chart.dirty, what="the chart")
        steady_look(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=compare)


def test_export_box(snap_compare, group_dir):
    app = Harness(group_dir, RunsScreen(group_dir))

    async def export(pilot) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen), what="the runs screen")
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ExportScreen), what="the export box")
        steady_look(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=export)


def top_losses() -> list[dict]:
    out = []
    for i, (true, pred) in enumerate([(0, 3), (1, 3), (2, 3), (4, 3), (5, 3), (6, 3)]):
        image = np.zeros((3, 16, 16), dtype=np.uint8)
        image[i % 3] = 60 + 30 * i
        image[:, 4:12, 4:12] = 240 - 20 * i
        png, w, h = thumbnail_png(image)
        out.append(
            {
                "true": CLASSES[true],
                "pred": CLASSES[pred],
                "prob": 0.99 - i / 20,
                "loss": 6.0 - i / 2,
                "correct": False,
                "png": png,
                "width": w,
                "height": h,
            }
        )
    return out


def test_run_results_at_what_it_gets_most_wrong(snap_compare, tmp_path):
    screen = quiet_run_screen(tiny_experiment(**{"train.epochs": 3}), preset=demo_preset())
    app = Harness(tmp_path, screen)
    summary = {**summary_of(3, collapsed=True), "top_losses": top_losses()}

    async def shown(pilot) -> None:
        screen.model.apply(RunStarted("runs/r", "r", "cpu", "fp32", False, 1, 64, 16, 60, CLASSES, 3, 0, 4, []))
        for e in (1, 2, 3):
            screen.model.apply(EpochFinished(metrics_row(e)))
        screen.model.apply(RunFinished(summary))
        await wait_until(pilot, lambda: screen.state == "finished", what="finished")
        await settled(pilot, screen)
        await pilot.press("w")
        await wait_until(pilot, lambda: "most confused" in screen_text(pilot.app), what="the results at the mistakes")
        steady_look(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)


def test_run_screen_with_device_panel_and_smoothing(snap_compare, tmp_path):
    screen = quiet_run_screen(tiny_experiment(**{"train.epochs": 6}), preset=demo_preset())
    app = Harness(tmp_path, screen)

    async def shown(pilot) -> None:
        started = RunStarted("runs/r", "r", "cpu", "fp32", True, 1, 480, 160, 0, CLASSES, 6, 0, 8, [])
        screen.model.apply(started)
        for e in range(1, 6):
            for b in range(1, 9):
                screen.model.apply(BatchProgress(e, b, 8, 2.3 / e + (0.2 if b % 2 else -0.2), 0.05, 900.0, 60.0))
            screen.model.apply(EpochFinished({**metrics_row(e), "peak_memory_mb": 700.0 + e}))
        await settled(pilot, screen)
        await pilot.press("e", "e")
        await settled(pilot, screen)
        steady_look(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)
