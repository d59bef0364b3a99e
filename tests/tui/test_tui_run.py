"""The run dashboard, the runs table and the bridge to the trainer, driven with Pilot at 80x24.

Most tests swap engine.training.trainer for a fake that emits a fixed run's events from the worker thread
(so the app, the bridge, the run's state and the screen are the real ones, without torch); two
run the real engine: start, watch, stop, find in the runs table, resume, finish; and a stop
before the first epoch ends, whose per-batch curve stays drawn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.widgets import DataTable, ProgressBar

from engine.events import BatchProgress, EpochFinished, RunFinished, RunStarted
from engine.runfolder.folder import RunFolder
from tests.console import Harness, log_text, quiet_run_screen, screen_text, settled, start_run, wait_until
from tests.fake_runs import CLASSES, demo_preset, make_run, metrics_row, summary_of, three_runs
from tests.tiny import tiny_experiment
from tui.run_view import reference_line, short_id, started_text
from tui.screens.compare import CompareScreen, differing_fields
from tui.screens.confirm import ConfirmScreen
from tui.screens.run import CHART_EVERY_S, REDRAW_EVERY_S, RunScreen
from tui.screens.runs import RunsScreen
from tui.widgets.charts import MetricChart

SIZE = (80, 24)


# --- the pure parts -----------------------------------------------------------------------------


def test_reference_line_puts_the_report_beside_this_run():
    ref = {"epochs": 300, "val_acc": 0.6003, "test_acc": 0.6069}
    rows = [metrics_row(1), {**metrics_row(2), "val_acc": 0.412}]
    assert (
        reference_line(ref, rows, None) == "report test 60.7% · val 60.0% @300 ep │ this run test – · val 41.2% @2 ep"
    )
    assert (
        reference_line(ref, rows, {"test_acc": 0.5})
        == "report test 60.7% · val 60.0% @300 ep │ this run test 50.0% · val 41.2% @2 ep"
    )
    assert reference_line(None, rows, None) == "this run val 41.2% · train 40.0% @2 ep"
    assert reference_line({"train_loss": 0.742}, [], None) == "report train loss 0.742 │ this run train loss – @0 ep"


def test_runs_table_helpers():
    assert short_id("20250122-072031-shapes-demo-ab12") == "shapes-demo-ab12"
    assert short_id("my-run") == "my-run"
    assert started_text("2025-01-22T07:20:31") == "01-22 07:20"
    configs = [
        {"optim.lr": 0.1, "train.epochs": 3, "data.dataset": "shapes"},
        {"optim.lr": 0.01, "train.epochs": 3, "data.dataset": "shapes"},
    ]
    assert differing_fields(configs) == ["optim.lr"]
    assert differing_fields([{"a": [1, 2]}, {"a": [1, 2], "b": 1}]) == ["b"]


# --- the run screen with the fake trainer ----------------------------------------------------------


async def test_live_run_fills_charts_bars_and_log_and_stops(tmp_path, fake_trainer):
    fake = fake_trainer(end="wait", epochs_before_wait=2)
    exp = tiny_experiment(**{"train.epochs": 5})
    app = Harness(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_run(pilot, exp, preset=demo_preset())
        await wait_until(pilot, lambda: len(screen.rows) == 2, what="two epochs")
        loss = screen.query_one("#loss-chart", MetricChart)
        await wait_until(pilot, lambda: loss.point_count("val") == 2, timeout=5, what="a redraw tick")
        await settled(pilot, screen)
        active = app.active_run
        assert active is not None and active.is_running and active.screen is screen
        assert active.folder_path == tmp_path / "runs" / "20250122-072031-fake-0001"
        assert fake.thread_names and fake.thread_names[0] != threading.main_thread().name
        loss, acc, lr = (screen.query_one(f"#{n}-chart", MetricChart) for n in ("loss", "acc", "lr"))
        assert loss.series("train")[0] == [1, 2] and loss.point_count("val") == 2
        assert acc.series("val")[1] == [0.18, 0.36]
        assert lr.point_count("lr") == 2
        assert loss.draws >= 1 and not loss.dirty
        assert screen.query_one("#epoch-bar", ProgressBar).progress == 2
        assert screen.query_one("#epoch-bar", ProgressBar).total == 5
        assert screen.query_one("#batch-bar", ProgressBar).total == 4
        log = log_text(screen)
        assert "started on cpu, precision fp32" in log and "ep 2/5" in log and "★" in log
        shown = screen_text(app)
        assert "report val 90.1% · train 95.0% @30 ep │ this run val 36.0% · train 40.0% @2 ep" in shown
        assert "● running" in shown and "img/s" in shown

        await pilot.press("p")
        assert active.paused and "● paused" in screen_text(app)
        await pilot.press("p")
        assert not active.paused

        await pilot.press("s")
        await wait_until(pilot, lambda: screen.state == "stopped", what="stopped")
        await settled(pilot, screen)
        assert not active.is_running and active.state == "stopped"
        assert "● stopped" in screen_text(app) and "resumable" in log_text(screen)
        assert screen.check_action("stop", ()) is None  # shown dimmed: nothing left to stop


async def test_a_failed_run_is_shown_and_the_app_stays(tmp_path, fake_trainer):
    fake_trainer(end="fail")
    app = Harness(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_run(pilot, tiny_experiment())
        await wait_until(pilot, lambda: screen.state == "failed", what="failed")
        msg = "the dataset is missing: expected data/cifar-10-batches-py (set data.download)"
        await wait_until(pilot, lambda: ("error", msg) in app.notes, what="the app's word on the failure")
        await settled(pilot, screen)
        assert "failed: the dataset is missing" in log_text(screen)
        assert "● failed" in screen_text(app) and "dataset is missing" in screen_text(app).splitlines()[0]
        await pilot.press("b")
        assert app.is_running and app.screen is not screen
        assert not app.active_run.is_running


async def test_back_leaves_the_run_training_and_its_screen_comes_back(tmp_path, fake_trainer):
    fake_trainer(end="wait", epochs_before_wait=1)
    app = Harness(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_run(pilot, tiny_experiment())
        await wait_until(pilot, lambda: len(screen.rows) == 1, what="an epoch")
        await pilot.press("b")
        assert app.screen is not screen and app.active_run.is_running
        app.active_run.stop()  # as the app's quit confirmation does, from another screen
        await wait_until(pilot, lambda: screen.state == "stopped", what="the hidden screen to hear the stop")
        await app.push_screen(app.active_run.screen)  # "go to run"
        await settled(pilot, screen)
        assert app.screen is screen and "● stopped" in screen_text(app)


async def test_the_app_hears_the_end_of_its_run_on_any_screen(tmp_path, fake_trainer):
    """The run's end reaches the app (not only its screen): it says so, and the picker's line and
    the footer follow, while the user looks at another screen."""
    fake_trainer(end="wait", epochs_before_wait=1)
    app = Harness(tmp_path / "runs")
    heard = []
    async with app.run_test(size=SIZE) as pilot:
        app.active_run_changed.subscribe(app, heard.append)
        screen = await start_run(pilot, tiny_experiment())
        await wait_until(pilot, lambda: len(screen.rows) == 1, what="an epoch")
        await pilot.press("b")
        app.active_run.stop()
        await wait_until(pilot, lambda: ("information", "stopped during epoch 2") in app.notes, what="the app's word")
        assert app.screen is not screen and heard[-1] is app.active_run and app.active_run.state == "stopped"


@pytest.mark.slow
async def test_chart_redraws_are_throttled_and_only_when_data_changed(tmp_path, monkeypatch):
    ticks = []
    flush = RunScreen._flush
    monkeypatch.setattr(RunScreen, "_flush", lambda self: (ticks.append(1), flush(self)))
    screen = quiet_run_screen(tiny_experiment(**{"train.epochs": 50}))
    app = Harness(tmp_path, screen)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, screen)
        loss = screen.query_one("#loss-chart", MetricChart)
        screen.model.apply(RunStarted(str(tmp_path), "r", "cpu", "fp32", False, 1, 1, 1, 1, CLASSES, 50, 0, 500, []))
        await settled(pilot, screen)
        before = loss.draws
        for b in range(1, 501):  # a burst far faster than the engine sends
            screen.model.apply(BatchProgress(1, b, 500, 2.0 - b / 1000, 0.05, 1000.0, 60.0))
        await wait_until(
            pilot, lambda: loss.point_count("train") == 500, timeout=CHART_EVERY_S + 2, what="the burst on the chart"
        )
        bar = screen.query_one("#batch-bar", ProgressBar)
        await wait_until(pilot, lambda: bar.progress == 500, timeout=2, what="the bar")
        assert 1 <= loss.draws - before <= 2  # one redraw for the burst, not one per event
        idle, seen = loss.draws, len(ticks)
        # Enough of the screen's own ticks for a throttled rebuild to have come due, had anything changed.
        due = int((CHART_EVERY_S + REDRAW_EVERY_S) / REDRAW_EVERY_S) + 1
        await wait_until(pilot, lambda: len(ticks) >= seen + due, what="the screen's timer")
        assert loss.draws == idle  # nothing new: nothing redrawn


async def test_run_screen_fed_messages_shows_results_and_collapse(tmp_path):
    screen = quiet_run_screen(tiny_experiment(**{"train.epochs": 2}))
    app = Harness(tmp_path, screen)
    async with app.run_test(size=SIZE) as pilot:
        for event in (
            RunStarted(str(tmp_path), "r", "cpu", "bf16", True, 1, 1, 1, 1, CLASSES, 2, 0, 4, []),
            EpochFinished(metrics_row(1)),
            EpochFinished(metrics_row(2)),
            RunFinished(summary_of(2, collapsed=True)),
        ):
            screen.model.apply(event)
        await wait_until(pilot, lambda: screen.state == "finished", what="finished")
        await settled(pilot, screen)
        assert "collapsed to one class" in log_text(screen)
        await pilot.press("r")
        await wait_until(pilot, lambda: "test acc 10.0 %" in screen_text(app), what="the results")
        shown = screen_text(app)
        assert "test acc 10.0 %" in shown and "'class3' for every test image" in shown
        assert "accuracy per class" in shown
        await pilot.press("r")
        await wait_until(pilot, lambda: "learning rate" in screen_text(app), what="the charts again")
        assert "learning rate" in screen_text(app)


# --- viewing run folders -------------------------------------------------------------------------


async def test_a_finished_run_folder_opens_with_curves_and_results(tmp_path):
    path = make_run(tmp_path, "20250122-072031-shapes-demo-ab12", summary=summary_of(3))
    screen = RunScreen.of_folder(path)
    app = Harness(tmp_path, screen)
    async with app.run_test(size=SIZE) as pilot:
        acc = screen.query_one("#acc-chart", MetricChart)
        await wait_until(pilot, lambda: acc.point_count("val") == 3, timeout=5, what="the curves")
        await settled(pilot, screen)
        assert screen.read_only and screen.state == "finished"
        assert screen.check_action("stop", ()) is False and screen.check_action("pause", ()) is False
        shown = screen_text(app)
        assert "● finished (view)" in shown and "s Stop" not in shown
        assert app.notes == []  # viewing an old run does not announce it
        await pilot.press("r")
        await wait_until(pilot, lambda: "test acc 100.0 %" in screen_text(app), what="the results")
        assert "test acc 100.0 %" in screen_text(app)


@pytest.mark.slow
async def test_a_run_written_by_another_process_is_followed(tmp_path):
    path = make_run(tmp_path, "20250122-072031-shapes-demo-ab12", state="running", epochs=4, done=1, pid=os.getpid())
    screen = RunScreen.of_folder(path)
    app = Harness(tmp_path, screen)
    async with app.run_test(size=SIZE) as pilot:
        acc = screen.query_one("#acc-chart", MetricChart)
        await wait_until(pilot, lambda: acc.point_count("val") == 1, timeout=5, what="the first epoch")
        assert screen.state == "running"
        RunFolder(path).append_metrics(metrics_row(2))
        await wait_until(pilot, lambda: acc.point_count("val") == 2, timeout=5, what="the new epoch")
        status = json.loads((path / "status.json").read_text())
        stopped = {**status, "state": "stopped", "message": "stopped during epoch 3", "updated": "x"}
        (path / "status.json").write_text(json.dumps(stopped))
        await wait_until(pilot, lambda: screen.state == "stopped", timeout=5, what="the stop")
        await settled(pilot, screen)
        assert "ep 2/4" in log_text(screen)


# --- the runs table --------------------------------------------------------------------------------


async def runs_table(pilot, rows: int) -> DataTable:
    table = pilot.app.screen.query_one(DataTable)
    await wait_until(pilot, lambda: table.row_count == rows, what=f"{rows} runs in the table")
    await pilot.pause()
    return table


async def test_runs_table_lists_selects_and_compares(tmp_path):
    runs = tmp_path / "runs"
    three_runs(runs)
    app = Harness(runs, RunsScreen(runs))
    async with app.run_test(size=SIZE) as pilot:
        table = await runs_table(pilot, 3)
        assert table.row_count == 3
        shown = screen_text(app)
        # newest first; the dead process's run reads as crashed; 80 columns show every column
        lines = [line for line in shown.splitlines() if "shapes-demo-" in line]
        assert "ef56" in lines[0] and "crashed" in lines[0] and "1/4" in lines[0]
        assert "cd34" in lines[1] and "stopped" in lines[1] and "36.0%" in lines[1]
        assert "ab12" in lines[2] and "finished" in lines[2] and "54.0%" in lines[2] and "100.0%" in lines[2]
        assert "01-22 07:20" in lines[2]

        await pilot.press("c")
        assert ("warning", "select two or more runs with space, then press c") in app.notes
        await pilot.press("down", "space", "down", "space")
        assert len(app.screen.selected) == 2
        await pilot.press("c")
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        chart = compare.query_one(MetricChart)
        assert sorted(chart.point_count(n) for n in chart.names) == [2, 3]
        cfg = compare.query_one(DataTable)
        assert [cfg.get_row_at(i)[0] for i in range(cfg.row_count)] == ["optim.lr", "train.epochs"]
        assert cfg.get_row_at(0)[1:] == ["0.1", "0.05"]
        assert chart.chart_title.startswith("val accuracy")
        await pilot.press("m")
        assert chart.chart_title.startswith("val loss") and not chart.percent
        await pilot.press("b")
        assert isinstance(app.screen, RunsScreen)


async def test_runs_delete_asks_first(tmp_path):
    runs = tmp_path / "runs"
    three_runs(runs)
    app = Harness(runs, RunsScreen(runs))
    async with app.run_test(size=SIZE) as pilot:
        await runs_table(pilot, 3)
        await pilot.press("down", "down")  # the finished run
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert (runs / "20250122-072031-shapes-demo-ab12").exists()
        await pilot.press("d")
        await pilot.press("y")
        await wait_until(pilot, lambda: not (runs / "20250122-072031-shapes-demo-ab12").exists(), what="the delete")
        assert not (runs / "20250122-072031-shapes-demo-ab12").exists()
        assert (await runs_table(pilot, 2)).row_count == 2


async def test_runs_open_and_resume(tmp_path, fake_trainer):
    fake_trainer(end="finish")
    runs = tmp_path / "runs"
    three_runs(runs)
    app = Harness(runs, RunsScreen(runs))
    async with app.run_test(size=SIZE) as pilot:
        await runs_table(pilot, 3)
        await pilot.press("down", "down", "R")  # a finished run cannot be resumed
        assert isinstance(app.screen, RunsScreen)
        assert any("cannot be resumed: it has done all its epochs" in text for _, text in app.notes)
        await pilot.press("enter")
        assert isinstance(app.screen, RunScreen) and app.screen.read_only
        await pilot.press("b")
        await pilot.press("up", "R")  # the stopped run, 2 of 5 epochs
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the app to start the resume")
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.resume_dir == runs / "20250122-081500-shapes-demo-cd34"
        await wait_until(pilot, lambda: screen.state == "finished", what="the resumed run to finish")
        assert [r["epoch"] for r in screen.rows] == [1, 2, 3, 4, 5]
        assert [r["epoch"] for r in RunFolder(screen.resume_dir).metrics()] == [1, 2, 3, 4, 5]
        await pilot.press("b")
        assert isinstance(app.screen, RunsScreen)
        await wait_until(pilot, lambda: "5/5" in screen_text(app), what="the table to show the resumed run")
        assert "5/5" in screen_text(app)


# --- speed the user feels --------------------------------------------------------------------------


def test_run_screens_do_not_import_torch(tmp_path):
    make_run(tmp_path, "20250122-072031-shapes-demo-ab12", summary=summary_of(3))
    code = f"""
import asyncio, sys
from pathlib import Path
from tests.console import Harness, wait_until
from tui.screens.runs import RunsScreen
from tui.screens.run import RunScreen

async def main():
    runs = Path({str(tmp_path)!r})
    app = Harness(runs, RunsScreen(runs))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs table")
        await pilot.press("enter", "r")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.settled, what="the run")
        assert isinstance(app.screen, RunScreen), app.screen

asyncio.run(main())
print("torch" in sys.modules, "torchvision" in sys.modules)
"""
    repo = Path(__file__).parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=repo)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["False", "False"]


# --- the real engine, end to end through the UI ---------------------------------------------------


@pytest.mark.slow
async def test_real_run_stop_find_resume_finish(tmp_path, monkeypatch):
    """Shapes data, tiny: start, see the charts fill, stop (s), find it in the runs table, resume
    it (R), and it finishes with the epochs continuing, each epoch once in metrics.jsonl."""
    from engine.events import EpochFinished as Epoch
    from tui.training import ActiveRun

    # Pause the real trainer right after its first epoch (from the training thread, before it goes
    # on), so the stop below lands mid-run however fast this machine is.
    note = ActiveRun._note

    def pause_after_first_epoch(self, event):
        note(self, event)
        if self.resume_dir is None and isinstance(event, Epoch) and event.metrics["epoch"] == 1:
            self.handle.pause()

    monkeypatch.setattr(ActiveRun, "_note", pause_after_first_epoch)
    runs = tmp_path / "runs"
    exp = tiny_experiment(**{"data.train_subset": 256, "train.epochs": 2, "train.precision": "fp32"})
    app = Harness(runs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_run(pilot, exp)
        await wait_until(pilot, lambda: len(screen.rows) == 1, timeout=120, what="the first epoch")
        acc = screen.query_one("#acc-chart", MetricChart)
        # The next redraw (at most REDRAW_EVERY_S later) plots the epoch.
        await wait_until(pilot, lambda: acc.point_count("val") == 1, timeout=5, what="the epoch on the chart")
        await settled(pilot, screen)
        assert acc.draws >= 1
        assert screen.query_one("#loss-chart", MetricChart).point_count("train") >= 1
        active = app.active_run
        assert active.paused and active.is_running

        await pilot.press("s")
        await wait_until(pilot, lambda: screen.state == "stopped", timeout=30, what="the stop")
        await wait_until(pilot, lambda: not active.is_running, timeout=30, what="the training thread to return")
        run_dir = active.folder_path
        assert not active.is_running and (run_dir / "checkpoints" / "last.pt").exists()
        assert json.loads((run_dir / "status.json").read_text())["state"] == "stopped"

        await pilot.press("b")
        await app.push_screen(RunsScreen(runs))
        table = await runs_table(pilot, 1)
        assert table.row_count == 1
        row = [str(c) for c in table.get_row_at(0)]
        assert "stopped" in row and "1/2" in row

        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the app to start the resume")
        resumed = app.screen
        assert isinstance(resumed, RunScreen) and resumed.resume_dir == run_dir
        await wait_until(pilot, lambda: resumed.state == "finished", timeout=120, what="the resumed run to finish")
        await settled(pilot, resumed)
        assert "continuing at epoch 2 of 2" in log_text(resumed)
        assert [r["epoch"] for r in resumed.rows] == [1, 2]
        lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        assert [r["epoch"] for r in lines] == [1, 2]
        assert RunFolder(run_dir).summary()["epochs_done"] == 2
        await pilot.press("b")
        first_row = lambda: [str(c) for c in app.screen.query_one(DataTable).get_row_at(0)]  # noqa: E731
        await wait_until(pilot, lambda: "finished" in first_row(), what="the table")
        assert "finished" in first_row()


async def test_stopping_before_the_first_epoch_ends_keeps_the_curve_drawn(tmp_path, monkeypatch):
    """Rough edge 6: a stop in the first epoch used to blank the charts; the per-batch loss curve the
    user watched stays drawn."""
    from tui.training import ActiveRun

    note = ActiveRun._note

    def pause_mid_epoch(self, event):  # so the stop lands inside the first epoch however fast this machine is
        note(self, event)
        if isinstance(event, BatchProgress) and event.epoch == 1 and event.batch < event.batches:
            self.handle.pause()

    monkeypatch.setattr(ActiveRun, "_note", pause_mid_epoch)
    exp = tiny_experiment(**{"train.batch_size": 16, "train.epochs": 2, "train.precision": "fp32"})
    app = Harness(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_run(pilot, exp)
        loss = screen.query_one("#loss-chart", MetricChart)
        await wait_until(pilot, lambda: loss.point_count("train") >= 1, timeout=120, what="the batch points")
        await settled(pilot, screen)
        drawn = loss.series("train")
        assert screen.rows == [] and app.active_run.paused and loss.draws >= 1
        await pilot.press("s")
        await wait_until(pilot, lambda: screen.state == "stopped", timeout=30, what="the stop")
        await settled(pilot, screen)
        assert screen.rows == []  # no epoch ended
        assert loss.series("train") == drawn and loss.point_count("train") >= 1 and not loss.dirty


# --- two runs, and the app closing -------------------------------------------------------------------


async def test_a_second_run_waits_for_the_first_and_closing_the_app_stops_a_run(tmp_path, fake_trainer):
    fake_trainer(end="wait", epochs_before_wait=1)
    runs = tmp_path / "runs"
    app = Harness(runs)
    async with app.run_test(size=SIZE) as pilot:
        first = await start_run(pilot, tiny_experiment())
        await wait_until(pilot, lambda: len(first.rows) == 1, what="an epoch")
        assert app.start_run(tiny_experiment()) is None  # refused: one run trains at a time
        assert app.screen is first and app.active_run.screen is first
        assert ("warning", "A run is already training: stop it first (g goes to it).") in app.notes
        await pilot.press("s")
        await wait_until(pilot, lambda: first.state == "stopped", what="the stop")
        await wait_until(pilot, lambda: not app.active_run.is_running, what="the training thread to return")
        await pilot.press("b")
        second = await start_run(pilot, tiny_experiment())
        await wait_until(pilot, lambda: len(second.rows) == 1, what="the second run's epoch")
        assert app.active_run.screen is second and not first.is_attached  # the first screen was let go
        handle = app.active_run.handle
    assert handle.stop_requested  # the app closed while it trained: stopped, not left running


async def test_the_command_palette_offers_the_screen_actions(tmp_path, fake_trainer):
    fake_trainer(end="wait", epochs_before_wait=1)
    app = Harness(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = await start_run(pilot, tiny_experiment())
        await wait_until(pilot, lambda: len(screen.rows) == 1, what="an epoch")
        await pilot.press("ctrl+p")
        await pilot.press(*"stop")
        await wait_until(pilot, lambda: "Stop" in screen_text(app) and "key: s" in screen_text(app), what="the hit")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.state == "stopped", what="the stop from the palette")


# --- the bridge alone ---------------------------------------------------------------------------


def start_bridge(tmp_path):
    from tui.training import ActiveRun

    posted = []
    run = ActiveRun(tiny_experiment(), runs_dir=tmp_path, preset_name="p")
    target = SimpleNamespace(post_message=posted.append)
    thread = threading.Thread(target=run.train, kwargs={"target": target})
    thread.start()
    return run, posted, thread


async def test_active_run_stops_and_waits_without_blocking(tmp_path, fake_trainer):
    fake_trainer(end="wait", epochs_before_wait=0)
    run, posted, thread = start_bridge(tmp_path)
    assert run.is_running
    assert await run.stop_and_wait(5)
    thread.join(1)
    assert run.state == "stopped" and not run.is_running
    assert run.folder_path == tmp_path / "20250122-072031-fake-0001"
    assert [type(m).__name__ for m in posted] == ["TrainingStarted", "TrainingEnded"]
    assert posted[-1].state == "stopped"


def test_a_trainer_that_raises_ends_as_a_failed_run(tmp_path, fake_trainer):
    fake_trainer(end="crash")
    run, posted, thread = start_bridge(tmp_path)
    thread.join(5)
    assert not run.is_running and run.state == "failed"
    said = "the trainer could not run: RuntimeError: a bug in the trainer"
    assert [(m.state, m.message) for m in posted] == [("failed", said)]
