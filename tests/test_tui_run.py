"""The run dashboard, the runs table and the bridge to the trainer, driven with Pilot at 80x24.

Most tests swap engine.trainer for a fake that emits a fixed run's events from the worker thread
(so the bridge, the messages and the screen are the real ones, without torch); one test runs the
real engine end to end: start, watch, stop, find in the runs table, resume, finish.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.app import App
from textual.widgets import DataTable, ProgressBar, RichLog

import engine
import tui
from engine.events import (
    BatchProgress,
    EpochFinished,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
)
from engine.preset_files import Reference
from engine.presets import Preset
from engine.runs import RunFolder
from tests.tiny import tiny_experiment
from tui.messages import wrap
from tui.screens.run import CHART_EVERY_S, REDRAW_EVERY_S, RunScreen, reference_line
from tui.screens.runs import CompareScreen, RunsScreen, differing_fields, short_id, started_text
from tui.widgets.charts import MetricChart
from tui.widgets.confirm import ConfirmScreen

SIZE = (80, 24)
CLASSES = [f"class{i}" for i in range(10)]


# --- helpers shared with the snapshot tests -----------------------------------------------------


class Harness(App):
    """Stands in for CnnlabApp (its stylesheet, and what the run screens use of the app: runs_dir,
    active_run, notify) without its picker, so these tests start on the screen they test."""

    CSS_PATH = Path(tui.__file__).parent / "app.tcss"

    def __init__(self, runs_dir: Path, first=None) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.active_run = None
        self.first = first
        self.notes: list[tuple[str, str]] = []

    def on_mount(self) -> None:
        if self.first is not None:
            self.push_screen(self.first)

    def notify(self, message, *, title="", severity="information", **kwargs):
        self.notes.append((severity, str(message)))
        super().notify(message, title=title, severity=severity, **kwargs)


def screen_text(app: App) -> str:
    """What the terminal shows, as plain text (the compositor's lines)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def log_text(screen) -> str:
    return "\n".join(line.text for line in screen.query_one("#log", RichLog).lines)


async def wait_until(pilot, predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def metrics_row(epoch: int, *, lr: float = 0.05, val: bool = True) -> dict:
    return {
        "epoch": epoch,
        "train_loss": round(2.3 / epoch, 4),
        "train_acc": round(0.2 * epoch, 4),
        "val_loss": round(2.4 / epoch, 4) if val else None,
        "val_acc": round(0.18 * epoch, 4) if val else None,
        "lr": lr,
        "seconds": 1.5,
        "images_per_sec": 900.0,
    }


def summary_of(epochs: int, *, collapsed: bool = False) -> dict:
    confusion = [[10 if i == j else 0 for j in range(10)] for i in range(10)]
    if collapsed:
        confusion = [[10 if j == 3 else 0 for j in range(10)] for i in range(10)]
    per_class = [row[i] / sum(row) for i, row in enumerate(confusion)]
    return {
        "epochs_done": epochs,
        "seconds": 12.0,
        "class_names": CLASSES,
        "best_val_acc": 0.18 * epochs,
        "best_epoch": epochs,
        "test_acc": sum(per_class) / 10,
        "test_loss": 1.1,
        "per_class_acc": per_class,
        "confusion": confusion,
        "examples": [],
        "collapse_warning": "The model predicts 'class3' for every test image: it has collapsed to one class" if collapsed else None,
    }


def make_run(
    runs_dir: Path,
    run_id: str,
    *,
    state: str = "finished",
    epochs: int = 3,
    done: int = 3,
    lr: float = 0.05,
    started: str = "2025-01-22T07:20:31",
    preset: str = "shapes-demo",
    pid: int = 1,
    summary: dict | None = None,
    message: str = "",
) -> Path:
    """A run folder in the real format, with fixed timestamps (for deterministic views)."""
    exp = tiny_experiment(**{"train.epochs": epochs, "optim.lr": lr})
    path = Path(runs_dir) / run_id
    (path / "checkpoints").mkdir(parents=True)
    folder = RunFolder(path)
    folder.write_config(exp, preset)
    for e in range(1, done + 1):
        row = metrics_row(e, lr=lr)
        row["val_acc"] = round(row["val_acc"] * (0.5 + 5 * lr), 4)  # runs differ, so compare shows two curves
        folder.append_metrics(row)
    status = {"state": state, "message": message, "created": started, "started": started, "updated": started, "pid": pid}
    (path / "status.json").write_text(json.dumps(status))
    if summary is not None:
        folder.write_summary(summary)
    return path


def demo_preset() -> Preset:
    exp = tiny_experiment()
    return Preset(
        name="shapes-demo",
        description="demo",
        report="",
        notes=[],
        reference=Reference(epochs=30, val_acc=0.9012, train_acc=0.95),
        experiment=exp,
        source=Path("shapes-demo.toml"),
        user=False,
        sweep=None,
    )


class FakeTrainer(types.ModuleType):
    """engine.trainer's API, emitting a fixed run from the worker thread and honouring the handle.

    end: "wait" (train `epochs_before_wait` epochs, then wait for a stop), "finish", "fail" (a
    RunFailed event, as for a missing dataset) or "crash" (an exception: a bug the trainer let out).
    """

    def __init__(self, end: str = "wait", epochs_before_wait: int = 2, batches: int = 4) -> None:
        super().__init__("engine.trainer")
        self.end, self.epochs_before_wait, self.batches = end, epochs_before_wait, batches
        self.thread_names: list[str] = []

    def run_experiment(self, exp, *, runs_dir, preset=None, name=None, listener=None, handle=None):
        folder = RunFolder(Path(runs_dir) / "20250122-072031-fake-0001")
        folder.checkpoints.mkdir(parents=True, exist_ok=True)
        folder.write_config(exp, preset)
        return self._train(folder, exp.train.epochs, 0, listener, handle)

    def resume_run(self, run_dir, *, listener=None, handle=None):
        folder = RunFolder(Path(run_dir))
        exp = folder.experiment()
        return self._train(folder, exp.train.epochs, len(folder.metrics()), listener, handle)

    def _train(self, folder, epochs, start, listener, handle):
        self.thread_names.append(threading.current_thread().name)
        if self.end == "crash":
            raise RuntimeError("a bug in the trainer")
        if self.end == "fail":
            msg = "the dataset is missing: expected data/cifar-10-batches-py (set data.download)"
            listener(RunFailed(msg))
            return SimpleNamespace(folder=folder, state="failed", summary={}, message=msg)
        history = folder.metrics()
        listener(RunStarted(str(folder.path), folder.id, "cpu", "fp32", False, 123_456, 192, 64, 100, CLASSES, epochs, start, self.batches, history))
        last = epochs if self.end == "finish" else min(epochs, start + self.epochs_before_wait)
        for e in range(start + 1, last + 1):
            for b in range(1, self.batches + 1):
                listener(BatchProgress(e, b, self.batches, 2.3 / e, 0.05, 500.0, 42.0))
            row = metrics_row(e)
            folder.append_metrics(row)
            listener(EpochFinished(row))
        if self.end == "finish" or last == epochs:
            summary = summary_of(epochs)
            folder.write_summary(summary)
            listener(RunFinished(summary))
            return SimpleNamespace(folder=folder, state="finished", summary=summary, message="")
        deadline = time.monotonic() + 10  # never outlive a test that forgot to stop
        while not handle.stop_requested and time.monotonic() < deadline:
            handle.wait_if_paused()
            time.sleep(0.02)
        msg = f"stopped during epoch {last + 1}"
        listener(RunStopped(last, msg))
        return SimpleNamespace(folder=folder, state="stopped", summary={}, message=msg)


@pytest.fixture
def fake_trainer(monkeypatch):
    def install(**kwargs) -> FakeTrainer:
        fake = FakeTrainer(**kwargs)
        monkeypatch.setitem(sys.modules, "engine.trainer", fake)
        monkeypatch.setattr(engine, "trainer", fake, raising=False)
        return fake

    return install


# --- the pure parts -----------------------------------------------------------------------------


def test_reference_line_puts_the_report_beside_this_run():
    ref = {"epochs": 300, "val_acc": 0.6003, "test_acc": 0.6069}
    rows = [metrics_row(1), {**metrics_row(2), "val_acc": 0.412}]
    assert reference_line(ref, rows, None) == "report test 60.7% · val 60.0% @300 ep │ this run test – · val 41.2% @2 ep"
    assert reference_line(ref, rows, {"test_acc": 0.5}) == "report test 60.7% · val 60.0% @300 ep │ this run test 50.0% · val 41.2% @2 ep"
    assert reference_line(None, rows, None) == "this run val 41.2% · train 40.0% @2 ep"
    assert reference_line({"train_loss": 0.742}, [], None) == "report train loss 0.742 │ this run train loss – @0 ep"


def test_runs_table_helpers():
    assert short_id("20250122-072031-shapes-demo-ab12") == "shapes-demo-ab12"
    assert short_id("my-run") == "my-run"
    assert started_text("2025-01-22T07:20:31") == "01-22 07:20"
    configs = [{"optim.lr": 0.1, "train.epochs": 3, "data.dataset": "shapes"}, {"optim.lr": 0.01, "train.epochs": 3, "data.dataset": "shapes"}]
    assert differing_fields(configs) == ["optim.lr"]
    assert differing_fields([{"a": [1, 2]}, {"a": [1, 2], "b": 1}]) == ["b"]


# --- the run screen with the fake trainer ----------------------------------------------------------


async def test_live_run_fills_charts_bars_and_log_and_stops(tmp_path, fake_trainer):
    fake = fake_trainer(end="wait", epochs_before_wait=2)
    exp = tiny_experiment(**{"train.epochs": 5})
    screen = RunScreen(exp, preset=demo_preset(), runs_dir=tmp_path / "runs")
    app = Harness(tmp_path / "runs", screen)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(screen.rows) == 2, what="two epochs")
        loss = screen.query_one("#loss-chart", MetricChart)
        await wait_until(pilot, lambda: loss.point_count("val") == 2, timeout=5, what="a redraw tick")
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
        assert not active.is_running and active.state == "stopped"
        assert "● stopped" in screen_text(app) and "resumable" in log_text(screen)
        assert screen.check_action("stop", ()) is None  # shown dimmed: nothing left to stop


async def test_a_failed_run_is_shown_and_the_app_stays(tmp_path, fake_trainer):
    fake_trainer(end="fail")
    screen = RunScreen(tiny_experiment(), preset=None, runs_dir=tmp_path / "runs")
    app = Harness(tmp_path / "runs", screen)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: screen.state == "failed", what="failed")
        assert ("error", "the dataset is missing: expected data/cifar-10-batches-py (set data.download)") in app.notes
        assert "failed: the dataset is missing" in log_text(screen)
        assert "● failed" in screen_text(app) and "dataset is missing" in screen_text(app).splitlines()[0]
        await pilot.press("b")
        assert app.is_running and app.screen is not screen
        assert not app.active_run.is_running


async def test_back_leaves_the_run_training_and_its_screen_comes_back(tmp_path, fake_trainer):
    fake_trainer(end="wait", epochs_before_wait=1)
    screen = RunScreen(tiny_experiment(), preset=None, runs_dir=tmp_path / "runs")
    app = Harness(tmp_path / "runs", screen)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(screen.rows) == 1, what="an epoch")
        await pilot.press("b")
        assert app.screen is not screen and app.active_run.is_running
        app.active_run.stop()  # as the app's quit confirmation does, from another screen
        await wait_until(pilot, lambda: screen.state == "stopped", what="the hidden screen to hear the stop")
        await app.push_screen(app.active_run.screen)  # "go to run"
        assert app.screen is screen and "● stopped" in screen_text(app)


async def test_chart_redraws_are_throttled_and_only_when_data_changed(tmp_path):
    screen = QuietRunScreen(tiny_experiment(**{"train.epochs": 50}), preset=None, runs_dir=tmp_path)
    app = Harness(tmp_path, screen)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        loss = screen.query_one("#loss-chart", MetricChart)
        screen.post_message(wrap(RunStarted(str(tmp_path), "r", "cpu", "fp32", False, 1, 1, 1, 1, CLASSES, 50, 0, 500, [])))
        await pilot.pause(0.3)
        before = loss.draws
        for b in range(1, 501):  # a burst far faster than the engine sends
            screen.post_message(wrap(BatchProgress(1, b, 500, 2.0 - b / 1000, 0.05, 1000.0, 60.0)))
        await wait_until(pilot, lambda: loss.point_count("train") == 500, timeout=CHART_EVERY_S + 2, what="the burst on the chart")
        await wait_until(pilot, lambda: screen.query_one("#batch-bar", ProgressBar).progress == 500, timeout=2, what="the bar")
        assert 1 <= loss.draws - before <= 2  # one redraw for the burst, not one per event
        idle = loss.draws
        await pilot.pause(CHART_EVERY_S + REDRAW_EVERY_S + 0.2)
        assert loss.draws == idle  # nothing new: nothing redrawn


class QuietRunScreen(RunScreen):
    """A run screen that starts no training: tests feed it engine messages directly."""

    def _start(self) -> None:
        self.log_line("fed by the test")


async def test_run_screen_fed_messages_shows_results_and_collapse(tmp_path):
    screen = QuietRunScreen(tiny_experiment(**{"train.epochs": 2}), preset=None, runs_dir=tmp_path)
    app = Harness(tmp_path, screen)
    async with app.run_test(size=SIZE) as pilot:
        for event in (
            RunStarted(str(tmp_path), "r", "cpu", "bf16", True, 1, 1, 1, 1, CLASSES, 2, 0, 4, []),
            EpochFinished(metrics_row(1)),
            EpochFinished(metrics_row(2)),
            RunFinished(summary_of(2, collapsed=True)),
        ):
            screen.post_message(wrap(event))
        await wait_until(pilot, lambda: screen.state == "finished", what="finished")
        await pilot.pause(0.3)
        assert "collapsed to one class" in log_text(screen)
        await pilot.press("r")
        await pilot.pause(0.1)
        shown = screen_text(app)
        assert "test acc 10.0 %" in shown and "'class3' for every test image" in shown
        assert "accuracy per class" in shown
        await pilot.press("r")
        await pilot.pause(0.1)
        assert "learning rate" in screen_text(app)


# --- viewing run folders -------------------------------------------------------------------------


async def test_a_finished_run_folder_opens_with_curves_and_results(tmp_path):
    path = make_run(tmp_path, "20250122-072031-shapes-demo-ab12", summary=summary_of(3))
    screen = RunScreen.of_folder(path, runs_dir=tmp_path)
    app = Harness(tmp_path, screen)
    async with app.run_test(size=SIZE) as pilot:
        acc = screen.query_one("#acc-chart", MetricChart)
        await wait_until(pilot, lambda: acc.point_count("val") == 3, timeout=5, what="the curves")
        assert screen.read_only and screen.state == "finished"
        assert screen.check_action("stop", ()) is False and screen.check_action("pause", ()) is False
        shown = screen_text(app)
        assert "● finished (view)" in shown and "s Stop" not in shown
        assert app.notes == []  # viewing an old run does not announce it
        await pilot.press("r")
        await pilot.pause(0.1)
        assert "test acc 100.0 %" in screen_text(app)


async def test_a_run_written_by_another_process_is_followed(tmp_path):
    path = make_run(tmp_path, "20250122-072031-shapes-demo-ab12", state="running", epochs=4, done=1, pid=os.getpid())
    screen = RunScreen.of_folder(path, runs_dir=tmp_path)
    app = Harness(tmp_path, screen)
    async with app.run_test(size=SIZE) as pilot:
        acc = screen.query_one("#acc-chart", MetricChart)
        await wait_until(pilot, lambda: acc.point_count("val") == 1, timeout=5, what="the first epoch")
        assert screen.state == "running"
        RunFolder(path).append_metrics(metrics_row(2))
        await wait_until(pilot, lambda: acc.point_count("val") == 2, timeout=5, what="the new epoch")
        status = json.loads((path / "status.json").read_text())
        (path / "status.json").write_text(json.dumps({**status, "state": "stopped", "message": "stopped during epoch 3", "updated": "x"}))
        await wait_until(pilot, lambda: screen.state == "stopped", timeout=5, what="the stop")
        assert "ep 2/4" in log_text(screen)


# --- the runs table --------------------------------------------------------------------------------


def three_runs(runs_dir: Path) -> None:
    make_run(runs_dir, "20250122-072031-shapes-demo-ab12", summary=summary_of(3))
    make_run(runs_dir, "20250122-081500-shapes-demo-cd34", state="stopped", epochs=5, done=2, lr=0.1, started="2025-01-22T08:15:00", message="stopped during epoch 3")
    # "running" in a process that is gone (no pid is above 2**22): it reads as crashed.
    make_run(runs_dir, "20250122-091500-shapes-demo-ef56", state="running", epochs=4, done=1, lr=0.02, started="2025-01-22T09:15:00", pid=2**22 + 1)


async def test_runs_table_lists_selects_and_compares(tmp_path):
    runs = tmp_path / "runs"
    three_runs(runs)
    app = Harness(runs, RunsScreen(runs))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 3
        shown = screen_text(app)
        # newest first; the dead process's run reads as crashed; 80 columns show every column
        lines = [line for line in shown.splitlines() if "shapes-demo-" in line]
        assert "ef56" in lines[0] and "crashed" in lines[0] and "1/4" in lines[0]
        assert "cd34" in lines[1] and "stopped" in lines[1] and "36.0%" in lines[1]
        assert "ab12" in lines[2] and "finished" in lines[2] and "54.0%" in lines[2] and "100.0%" in lines[2] and "01-22 07:20" in lines[2]

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
        await pilot.pause(0.2)
        await pilot.press("down", "down")  # the finished run
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert (runs / "20250122-072031-shapes-demo-ab12").exists()
        await pilot.press("d")
        await pilot.press("y")
        await pilot.pause(0.1)
        assert not (runs / "20250122-072031-shapes-demo-ab12").exists()
        assert app.screen.query_one(DataTable).row_count == 2


async def test_runs_open_and_resume(tmp_path, fake_trainer):
    fake_trainer(end="finish")
    runs = tmp_path / "runs"
    three_runs(runs)
    app = Harness(runs, RunsScreen(runs))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press("down", "down", "R")  # a finished run cannot be resumed
        assert isinstance(app.screen, RunsScreen)
        assert any("cannot be resumed: it has done all its epochs" in text for _, text in app.notes)
        await pilot.press("enter")
        assert isinstance(app.screen, RunScreen) and app.screen.read_only
        await pilot.press("b")
        await pilot.press("up", "R")  # the stopped run, 2 of 5 epochs
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.resume_dir == runs / "20250122-081500-shapes-demo-cd34"
        await wait_until(pilot, lambda: screen.state == "finished", what="the resumed run to finish")
        assert [r["epoch"] for r in screen.rows] == [1, 2, 3, 4, 5]
        assert [r["epoch"] for r in RunFolder(screen.resume_dir).metrics()] == [1, 2, 3, 4, 5]
        await pilot.press("b")
        assert isinstance(app.screen, RunsScreen)
        assert "5/5" in screen_text(app)


# --- speed the user feels --------------------------------------------------------------------------


def test_run_screens_do_not_import_torch(tmp_path):
    make_run(tmp_path, "20250122-072031-shapes-demo-ab12", summary=summary_of(3))
    code = f"""
import asyncio, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_tui_run import Harness
from tui.screens.runs import RunsScreen
from tui.screens.run import RunScreen
from pathlib import Path

async def main():
    runs = Path({str(tmp_path)!r})
    app = Harness(runs, RunsScreen(runs))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("enter", "r")
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunScreen), app.screen

asyncio.run(main())
print("torch" in sys.modules, "torchvision" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["False", "False"]


# --- the real engine, end to end through the UI ---------------------------------------------------


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
    screen = RunScreen(exp, preset=None, runs_dir=runs)
    app = Harness(runs, screen)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(screen.rows) == 1, timeout=120, what="the first epoch")
        acc = screen.query_one("#acc-chart", MetricChart)
        # The next redraw (at most REDRAW_EVERY_S later) plots the epoch.
        await wait_until(pilot, lambda: acc.point_count("val") == 1, timeout=5, what="the epoch on the chart")
        await pilot.pause(0.1)
        assert acc.draws >= 1
        assert screen.query_one("#loss-chart", MetricChart).point_count("train") >= 1
        active = app.active_run
        assert active.paused and active.is_running

        await pilot.press("s")
        await wait_until(pilot, lambda: screen.state == "stopped", timeout=30, what="the stop")
        run_dir = active.folder_path
        assert not active.is_running and (run_dir / "checkpoints" / "last.pt").exists()
        assert json.loads((run_dir / "status.json").read_text())["state"] == "stopped"

        await pilot.press("b")
        await app.push_screen(RunsScreen(runs))
        await pilot.pause(0.2)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1
        row = [str(c) for c in table.get_row_at(0)]
        assert "stopped" in row and "1/2" in row

        await pilot.press("R")
        resumed = app.screen
        assert isinstance(resumed, RunScreen) and resumed.resume_dir == run_dir
        await wait_until(pilot, lambda: resumed.state == "finished", timeout=120, what="the resumed run to finish")
        assert "continuing at epoch 2 of 2" in log_text(resumed)
        assert [r["epoch"] for r in resumed.rows] == [1, 2]
        lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        assert [r["epoch"] for r in lines] == [1, 2]
        assert RunFolder(run_dir).summary()["epochs_done"] == 2
        await pilot.press("b")
        await pilot.pause(0.2)
        assert "finished" in [str(c) for c in app.screen.query_one(DataTable).get_row_at(0)]


async def test_a_second_run_takes_over_and_closing_the_app_stops_a_run(tmp_path, fake_trainer):
    fake_trainer(end="wait", epochs_before_wait=1)
    runs = tmp_path / "runs"
    first = RunScreen(tiny_experiment(), preset=None, runs_dir=runs)
    app = Harness(runs, first)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(first.rows) == 1, what="an epoch")
        await app.push_screen(RunScreen(tiny_experiment(), preset=None, runs_dir=runs))
        assert app.screen.state == "failed" and "another run is training" in app.screen.message
        app.pop_screen()
        await pilot.press("s")
        await wait_until(pilot, lambda: first.state == "stopped", what="the stop")
        await pilot.press("b")
        second = RunScreen(tiny_experiment(), preset=None, runs_dir=runs)
        await app.push_screen(second)
        await wait_until(pilot, lambda: len(second.rows) == 1, what="the second run's epoch")
        assert app.active_run.screen is second and not first.is_attached  # the first screen was let go
        handle = app.active_run.handle
    assert handle.stop_requested  # the app closed while it trained: stopped, not left running


async def test_the_command_palette_offers_the_screen_actions(tmp_path, fake_trainer):
    fake_trainer(end="wait", epochs_before_wait=1)
    screen = RunScreen(tiny_experiment(), preset=None, runs_dir=tmp_path / "runs")
    app = Harness(tmp_path / "runs", screen)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(screen.rows) == 1, what="an epoch")
        await pilot.press("ctrl+p")
        await pilot.press(*"stop")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.state == "stopped", what="the stop from the palette")


# --- the bridge alone ---------------------------------------------------------------------------


def start_bridge(tmp_path):
    from tui.training import ActiveRun

    posted = []
    run = ActiveRun(screen=None)
    target = SimpleNamespace(post_message=posted.append)
    thread = threading.Thread(target=run.train, args=(tiny_experiment(),), kwargs={"runs_dir": tmp_path, "preset_name": "p", "target": target})
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
    assert [(m.state, m.message) for m in posted] == [("failed", "the trainer could not run: RuntimeError: a bug in the trainer")]
