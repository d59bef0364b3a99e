"""The console steers runs it does not train and runs that outlive it, driven with Pilot: it pauses
and stops a run a headless process trains (from its run screen and from the runs table), starts a run
detached (ctrl+o) that goes on after the console closes, hands its own thread run over to a detached
process on quitting, and trains a finished run on (E). Every wait is on a state in the run folder or
on the screen, with a deadline."""

from __future__ import annotations

import json
import os
import re

import pytest
from textual.widgets import DataTable, Input

from engine.runfolder import control
from engine.runfolder.lock import is_held
from engine.runfolder.table import read_run
from engine.training.trainer import run_experiment
from tests.child_processes import kill, progress, start, status, the_run, wait_for
from tests.console import RecordingApp, screen_text, wait_until
from tests.tiny import tiny_experiment
from tui.screens.edit import EditScreen
from tui.screens.extend import ExtendScreen
from tui.screens.pick import PickScreen
from tui.screens.quit import QuitScreen
from tui.screens.run import RunScreen
from tui.screens.runs import RunsScreen

SIZE = (80, 24)
LONG_S = 120.0  # deadline for a real run's states on a busy machine

PRESET = """\
name = "shapes-long"
description = "Shapes, long enough to steer"

[data]
dataset = "shapes"
train_subset = 2048
val_split = 0.25

[optim]
lr = 0.05

[train]
epochs = {epochs}
batch_size = 32
device = "cpu"
precision = "fp32"
"""


def headless(tmp_path, runs, epochs: int = 4):
    cfg = tmp_path / "exp.toml"
    tiny_experiment(**{"data.train_subset": 2048, "train.batch_size": 32, "train.epochs": epochs}).save(cfg)
    proc = start("run", str(cfg), "--runs-dir", str(runs), runs=runs)
    return proc, the_run(runs, proc)


def with_long_preset(tmp_path, epochs: int):
    """A runs folder whose presets hold shapes-long, of `epochs` epochs."""
    runs = tmp_path / "runs"
    (runs / "presets").mkdir(parents=True)
    (runs / "presets" / "shapes-long.toml").write_text(PRESET.format(epochs=epochs))
    return runs


async def open_long_preset(pilot) -> None:
    """From the picker, shapes-long in the editor."""
    pick = pilot.app.screen
    pick.table.move_cursor(row=[p.name for p in pick.shown].index("shapes-long"))
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, EditScreen), what="the editor")


def _log(run_dir) -> str:
    path = run_dir / "output.log"
    return path.read_text(errors="replace")[-2000:] if path.exists() else "no output.log"


def paused(run_dir) -> bool:
    return bool(status(run_dir).get("paused"))


@pytest.mark.slow
async def test_the_run_screen_pauses_and_stops_a_run_a_headless_process_trains(tmp_path):
    runs = tmp_path / "runs"
    proc, run_dir = headless(tmp_path, runs)
    try:
        screen = RunScreen.of_folder(run_dir)
        app = RecordingApp(runs)
        async with app.run_test(size=SIZE) as pilot:
            await app.push_screen(screen)
            await wait_until(pilot, lambda: screen.state == "running", timeout=LONG_S, what="the run followed")
            assert screen.check_action("pause", ()) is True and screen.check_action("stop", ()) is True
            await pilot.press("p")
            await wait_until(pilot, lambda: paused(run_dir), timeout=LONG_S, what="the trainer's pause")
            await wait_until(pilot, lambda: screen.state == "paused", timeout=LONG_S, what="the screen to say paused")
            assert status(run_dir)["control"]["by"].startswith("the console on ")
            await pilot.press("p")
            await wait_until(pilot, lambda: not paused(run_dir), timeout=LONG_S, what="the trainer's continue")
            await pilot.press("s")
            await wait_until(pilot, lambda: screen.state == "stopped", timeout=LONG_S, what="the stop, on screen")
            assert proc.wait(timeout=LONG_S) == 130
    finally:
        kill(proc)
    st = status(run_dir)
    assert st["state"] == "stopped" and "stopped by the console on" in st["message"]


@pytest.mark.slow
async def test_the_runs_table_pauses_and_stops_any_running_run(tmp_path):
    runs = tmp_path / "runs"
    proc, run_dir = headless(tmp_path, runs)
    try:
        app = RecordingApp(runs)
        async with app.run_test(size=SIZE) as pilot:
            await app.push_screen(RunsScreen(runs))
            table = app.screen.query_one(DataTable)
            await wait_until(pilot, lambda: table.row_count == 1, what="the run in the table")
            row = lambda: [str(c) for c in table.get_row_at(0)]  # noqa: E731
            assert "running" in row() and app.screen.check_action("stop", ()) is True
            await pilot.press("p")
            await wait_until(pilot, lambda: paused(run_dir), timeout=LONG_S, what="the trainer's pause")
            await wait_until(pilot, lambda: "paused" in row(), timeout=LONG_S, what="the table to say paused")
            await pilot.press("p")
            await wait_until(pilot, lambda: not paused(run_dir), timeout=LONG_S, what="the trainer's continue")
            await pilot.press("s")
            await wait_until(pilot, lambda: status(run_dir)["state"] == "stopped", timeout=LONG_S, what="the stop")
            await wait_until(pilot, lambda: "stopped" in row(), timeout=LONG_S, what="the table to say stopped")
            assert app.screen.check_action("stop", ()) is False  # nothing running to stop now
    finally:
        kill(proc)


@pytest.mark.slow
async def test_ctrl_o_starts_a_detached_run_that_outlives_the_console(tmp_path):
    runs = with_long_preset(tmp_path, epochs=50)
    app = RecordingApp(runs)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, PickScreen)
        await open_long_preset(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the detached run's screen")
        screen = app.screen
        assert screen.read_only and app.active_run is None  # nothing trains on the console's thread
        await wait_until(pilot, lambda: screen.state == "running", timeout=LONG_S, what="the detached run training")
        run_dir = screen.run.path
        pid = status(run_dir)["pid"]
        assert pid != os.getpid() and os.getsid(pid) == pid
        await pilot.press("q")  # nothing of the console's own trains: it quits at once
    try:
        assert status(run_dir)["state"] == "running" and is_held(run_dir)  # the console is gone, the run is not
        sent = control.send(run_dir, "stop")
        wait_for(lambda: status(run_dir)["state"] == "stopped", "the detached run to stop")
        assert status(run_dir)["control"]["id"] == sent.id
    finally:
        if status(run_dir)["state"] == "running":
            os.kill(pid, 9)


@pytest.mark.slow
async def test_a_run_on_two_devices_starts_under_torchrun_and_is_followed_and_stopped(tmp_path):
    runs = with_long_preset(tmp_path, epochs=50)
    app = RecordingApp(runs)
    async with app.run_test(size=SIZE) as pilot:
        await open_long_preset(pilot)
        app.screen.form.set_values({"train.devices": 2, "train.threads": 1})
        await pilot.press("ctrl+s")  # a start, not ctrl+o: two devices are torchrun's, detached
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the run's screen")
        screen = app.screen
        assert screen.read_only and app.active_run is None  # nothing trains on the console's thread
        run_dir = screen.feed.folder.path
        try:
            await wait_until(pilot, lambda: screen.state == "running", timeout=LONG_S, what="the ranks training")
            st = status(run_dir)
            assert st["world_size"] == 2 and st["launcher_pid"] != st["pid"], st
            await wait_until(pilot, lambda: "× 2 ranks" in screen_text(app), what="the world size on screen")
            await wait_until(pilot, lambda: progress(run_dir).get("batch"), timeout=LONG_S, what="a batch trained")
            await pilot.press("s")
            await wait_until(pilot, lambda: screen.state == "stopped", timeout=LONG_S, what="the stop, on screen")
            wait_for(lambda: not is_held(run_dir), "the ranks to let go of the run")
            st = status(run_dir)
            assert st["state"] == "stopped" and "stopped by the console on" in st["message"], st
            assert read_run(run_dir).resumable
            # R in the runs table resumes it on its two devices, under torchrun again
            await app.push_screen(RunsScreen(runs))
            table = app.screen.query_one(DataTable)
            await wait_until(pilot, lambda: table.row_count == 1, what="the run in the table")
            await pilot.press("R")
            await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the resumed run's screen")
            assert app.active_run is None
            resumed = app.screen
            await wait_until(pilot, lambda: resumed.state == "running", timeout=LONG_S, what="the ranks again")
            again = status(run_dir)
            assert again["world_size"] == 2 and again["pid"] != st["pid"], again  # new ranks took it
            said = lambda: (run_dir / "output.log").read_text(errors="replace")  # noqa: E731
            await wait_until(
                pilot, lambda: "resumed" in said(), timeout=LONG_S, what="the ranks to say where they resumed"
            )
            await pilot.press("s")
            await wait_until(pilot, lambda: resumed.state == "stopped", timeout=LONG_S, what="the second stop")
        finally:
            if status(run_dir).get("state") == "running":
                control.send(run_dir, "stop")
            wait_for(lambda: not is_held(run_dir), "the ranks to let go of the run")


@pytest.mark.slow
async def test_quitting_hands_the_thread_run_to_a_detached_process_at_its_exact_position(tmp_path):
    runs = with_long_preset(tmp_path, epochs=2)
    app = RecordingApp(runs)
    async with app.run_test(size=SIZE) as pilot:
        await open_long_preset(pilot)
        await pilot.press("ctrl+s")

        def running() -> bool:
            run = app.active_run
            return run is not None and run.state == "running" and run.model.view().batch_done > 0

        await wait_until(pilot, running, timeout=LONG_S, what="the run's first batches on the console's thread")
        run_dir = app.active_run.folder_path
        # Paused, so that this short run cannot finish before the question is answered (a fast machine
        # trains it in seconds); the hand-over stops a paused run as it stops a running one.
        await pilot.press("p")
        await wait_until(pilot, lambda: app.active_run.state == "paused", timeout=LONG_S, what="the run to pause")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), what="the question")
        await pilot.press("h")
        errors = lambda: [m for severity, m in app.notes if severity == "error"]  # noqa: E731
        await wait_until(pilot, lambda: app.farewell != "" or errors(), timeout=LONG_S, what="the hand-over")
    assert "goes on in process" in app.farewell and str(run_dir) in app.farewell, (
        app.farewell,
        app.told,
        _log(run_dir),
    )
    wait_for(lambda: status(run_dir)["state"] == "finished", "the detached process to finish the run")
    log = " ".join((run_dir / "output.log").read_text().split())
    # The detached process went on from where the thread paused and stopped (mid-epoch, or an epoch's start).
    assert re.search(r"resumed (at epoch [12], batch \d+ of 48: the exact position saved|after epoch 1)", log), log
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]  # each epoch once


@pytest.mark.slow
async def test_e_trains_a_finished_run_on_from_the_runs_table(tmp_path):
    runs = tmp_path / "runs"
    done = run_experiment(tiny_experiment(**{"train.epochs": 1, "data.train_subset": 256}), runs_dir=runs)
    app = RecordingApp(runs)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunsScreen(runs))
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 1, what="the run in the table")
        await pilot.press("E")
        await wait_until(pilot, lambda: isinstance(app.screen, ExtendScreen), what="the question")
        field = app.screen.query_one(Input)
        assert field.value == "11"
        field.value = "1"
        await pilot.press("enter")
        assert "above 1" in str(app.screen.query_one("#extend-problem").render())
        field.value = "2"
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the run trained on")
        screen = app.screen
        await wait_until(pilot, lambda: screen.state == "finished", timeout=LONG_S, what="the longer run to finish")
        assert [r["epoch"] for r in screen.rows] == [1, 2]
    assert done.folder.experiment().train.epochs == 2
    assert [r["epoch"] for r in done.folder.metrics()] == [1, 2]
