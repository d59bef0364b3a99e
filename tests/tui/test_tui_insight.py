"""The console's insight views with Pilot, waiting for states: the lr finder from the editor writes
its suggestion into the form (and leaves it alone when cancelled, or says why it cannot run); the
device panel samples a CPU run; the chart keys smooth and log-scale the curves; the lr chart has
points from the first batch; a run's results jump to what it gets most wrong; the runs table folds a
seed group into one row, compares it as a band and exports the selected runs."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from engine.events import BatchProgress, RunFinished, RunStarted
from engine.experiment.presets import Preset
from tests.console import Harness, quiet_run_screen, screen_text, settled, start_run, wait_until
from tests.fake_runs import CLASSES, demo_preset, summary_of
from tests.seed_runs import seed_group_runs
from tests.tiny import tiny_experiment
from tui.screens.compare import CompareScreen
from tui.screens.edit import EditScreen
from tui.screens.export import ExportScreen
from tui.screens.lr_find import LRFindScreen
from tui.screens.runs import RunsScreen
from tui.widgets.charts import MetricChart
from tui.widgets.device_panel import DevicePanel

SIZE = (80, 24)


def small_preset(**overrides) -> Preset:
    p = demo_preset()
    exp = tiny_experiment(**{"data.train_subset": 256, "train.batch_size": 32, **overrides})
    return Preset(**{**p.__dict__, "experiment": exp})


@pytest.mark.slow
async def test_editor_lr_finder_writes_its_suggestion_into_the_form(tmp_path):
    preset = small_preset()
    app = Harness(tmp_path / "runs", EditScreen(preset))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, EditScreen), what="the editor")
        editor = app.screen
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: isinstance(app.screen, LRFindScreen), what="the lr finder")
        finder = app.screen
        await wait_until(pilot, lambda: finder.done, timeout=120, what="the range test")
        assert not finder.error, finder.error
        lr = finder.finding["suggestion"]
        assert finder.finding["lrs"][0] <= lr <= finder.finding["lrs"][-1]
        shown = screen_text(app)
        assert "suggested lr: " in shown and "valley rule" in shown and "enter: put it in optim.lr" in shown
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is editor, what="back in the editor")
        exp = editor.current_experiment()
        assert exp is not None and math.isclose(exp.optim.lr, float(f"{lr:.3g}"))
        assert "optim.lr" in editor.form.changed
        assert preset.experiment.optim.lr == 0.05  # the preset itself is untouched
        assert any("from the lr range test" in t for t in app.told)


async def test_escape_leaves_the_form_and_a_missing_dataset_is_said(tmp_path):
    preset = small_preset(**{"data.dataset": "cifar10", "data.root": str(tmp_path / "nothing-here")})
    app = Harness(tmp_path / "runs", EditScreen(preset))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, EditScreen), what="the editor")
        editor = app.screen
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: isinstance(app.screen, LRFindScreen) and app.screen.done, timeout=60)
        assert "CIFAR-10 was not found" in app.screen.error
        assert "the lr range test cannot run" in screen_text(app)
        assert app.screen.check_action("use", ()) is None  # nothing to use: enter is dimmed
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is editor, what="back in the editor")
        assert editor.form.changed == set()


async def test_the_one_cycle_suggestion_goes_to_max_lr(tmp_path, monkeypatch):
    import engine.insight.lr_find
    from engine.insight.lr_find import LRFinding

    preset = small_preset(**{"schedule.name": "onecycle", "schedule.max_lr": 0.1})
    found = LRFinding([1e-5, 1e-3, 1e-1], [2.3, 2.0, 3.0], [2.3, 2.0, 3.0], 3, 1e-5, 0.1, "valley", 0.00123)
    found.target = "schedule.max_lr"
    monkeypatch.setattr(
        engine.insight.lr_find, "lr_find", lambda exp, **kw: found
    )  # the range test itself is tested above
    app = Harness(tmp_path / "runs", EditScreen(preset))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, EditScreen), what="the editor")
        editor = app.screen
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: isinstance(app.screen, LRFindScreen) and app.screen.done, what="the finding")
        assert "enter: put it in schedule.max_lr" in screen_text(app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is editor, what="back in the editor")
        assert editor.current_experiment().schedule.max_lr == 0.00123


@pytest.mark.slow
async def test_device_panel_samples_a_cpu_run(tmp_path, fake_trainer):
    fake_trainer(end="wait", epochs_before_wait=1)
    app = Harness(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_run(pilot, tiny_experiment(), preset=demo_preset())
        panel = screen.query_one(DevicePanel)
        await wait_until(pilot, lambda: panel.samples >= 2, timeout=10, what="two samples")
        text = str(panel.render())
        assert text.startswith("cpu (") and "cpu " in text and " MB (peak " in text
        await pilot.press("s")
        await wait_until(pilot, lambda: screen.state == "stopped", what="stopped")
        await settled(pilot, screen)
        assert panel.monitor is None and str(panel.render()).startswith("cpu")  # the record, no more sampling


@pytest.mark.slow
async def test_chart_keys_smooth_and_log_scale_and_lr_from_the_first_batch(tmp_path):
    screen = quiet_run_screen(tiny_experiment(**{"train.epochs": 3}), preset=demo_preset())
    app = Harness(tmp_path, screen)
    async with app.run_test(size=SIZE) as pilot:
        screen.model.apply(RunStarted("runs/x", "x", "cpu", "fp32", False, 1, 64, 16, 16, CLASSES, 3, 0, 4, []))
        for b in range(1, 4):
            screen.model.apply(BatchProgress(1, b, 4, 2.3 - b / 10, 0.05, 100.0, 9.0))
        await settled(pilot, screen)
        lr = screen.query_one("#lr-chart", MetricChart)
        assert lr.series("lr") == ([0.25, 0.5, 0.75], [0.05, 0.05, 0.05])  # before any epoch has ended
        loss = screen.query_one("#loss-chart", MetricChart)
        await pilot.press("e")
        assert loss.smoothing == 0.6 and screen.query_one("#acc-chart", MetricChart).smoothing == 0.6
        assert "(EMA 0.6)" in screen_text(app)
        await pilot.press("y")
        assert loss.log_forced and "log" in screen_text(app)
        await pilot.press("e", "e", "e")
        assert loss.smoothing == 0.0


async def test_results_jump_to_what_it_gets_most_wrong(tmp_path):
    screen = quiet_run_screen(tiny_experiment(), preset=demo_preset())
    app = Harness(tmp_path, screen)
    summary = summary_of(3, collapsed=True)
    summary["top_losses"] = [
        {"true": "class0", "pred": "class3", "prob": 0.97, "loss": 5.1, "correct": False, "png": ""},
    ]
    async with app.run_test(size=SIZE) as pilot:
        screen.model.apply(RunStarted("runs/x", "x", "cpu", "fp32", False, 1, 64, 16, 16, CLASSES, 3, 0, 4, []))
        screen.model.apply(RunFinished(summary))
        await wait_until(pilot, lambda: screen.state == "finished", what="finished")
        await settled(pilot, screen)
        await pilot.press("w")
        await wait_until(pilot, lambda: "most confused" in screen_text(app), what="the results at the mistakes")
        shown = screen_text(app)
        assert "most confused" in shown and "✗ class3 97%" in shown and "loss 5.10" in shown
        shares = screen.query_one("#results-shares").render()  # under the headline: a collapse at a glance
        assert "predicted most: class3 100%" in str(shares)


async def rows_of(pilot, screen) -> list[str]:
    from textual.widgets import DataTable

    table = screen.query_one(DataTable)
    await pilot.pause()
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_runs_table_folds_a_seed_group_compares_it_and_exports(tmp_path):
    runs = tmp_path / "runs"
    paths = seed_group_runs(runs)
    app = Harness(runs, RunsScreen(runs))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs screen")
        screen = app.screen
        rows = await rows_of(pilot, screen)
        assert len(rows) == 2 and "3 seeds" in rows[0]  # the group, then the run with another lr
        shown = screen_text(app)
        assert "63.3%" in shown and "55.0%" in shown  # the means in the row
        assert "best val acc 63.33 ± 15.28%, test acc 55.00 ± 15.00%" in shown  # the spread under the table
        await pilot.press("enter")
        assert len(await rows_of(pilot, screen)) == 5  # unfolded into its three runs
        await pilot.press("enter")
        assert len(await rows_of(pilot, screen)) == 2
        await pilot.press("space")
        assert screen.selected == {str(p) for p in paths}
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), what="the comparison")
        chart = app.screen.query_one(MetricChart)
        (name,) = chart.names
        assert "×3 mean" in name
        assert [round(v, 4) for v in chart.series(name)[1]] == [0.35, 0.5833, 0.6267]
        assert chart._bands[name][1] == [0.30, 0.45, 0.50] and chart._bands[name][2] == [0.40, 0.70, 0.80]
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back")
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportScreen), what="the export box")
        export = app.screen
        assert len(export.paths) == 3
        await pilot.press("enter")  # the first format: CSV
        await wait_until(pilot, lambda: export.written is not None, timeout=20, what="the export")
        (path,) = export.written
        assert path == runs / "exports" / "csv" / "metrics.csv"
        with open(path) as f:
            assert len(list(csv.DictReader(f))) == 9
        assert any(t.startswith("Exported:") for t in app.told)
        assert isinstance(app.screen, RunsScreen)


def test_seed_rows_keep_runs_outside_groups(tmp_path):
    from engine.runfolder.table import list_runs
    from tui.seed_rows import SeedRows

    seed_group_runs(tmp_path)
    rows = SeedRows().table_rows(list_runs(tmp_path), lambda info: [info.id], set())
    assert [key.startswith("group:") for key, _ in rows] == [True, False]
    assert Path(rows[1][0]).name == "20250121-101010-shapes-demo-c0d0"
