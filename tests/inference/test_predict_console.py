"""The console's "predict on a path": from a finished run's screen (and the runs table), i opens a
box for a file or folder; the prediction runs in a worker and fills a table; a bad path is said
under the input."""

from __future__ import annotations

import shutil

import pytest
from textual.widgets import DataTable, Input, Static

from engine.inference.predict import predict_paths
from tests.console import Harness, wait_until
from tui.screens.predict import PredictScreen
from tui.screens.run import RunScreen
from tui.screens.runs import RunsScreen

pytestmark = pytest.mark.slow  # the console, torch and a model in a worker: a few seconds


async def submit(pilot, screen: PredictScreen, text: str) -> None:
    screen.query_one(Input).value = text
    screen.query_one(Input).focus()
    await pilot.press("enter")


async def test_predict_from_the_run_screen_fills_a_table(trained_run, tmp_path):
    images = tmp_path / "mine"
    images.mkdir()
    for i in (0, 1, 2):
        shutil.copy(trained_run.images / f"test-{i:04d}.png", images)
    (images / "bad.png").write_text("not an image")
    run_screen = RunScreen.of_folder(trained_run.path)
    app = Harness(trained_run.path.parent, first=run_screen)
    async with app.run_test(size=(130, 45)) as pilot:
        await wait_until(pilot, lambda: app.screen is run_screen and run_screen.state == "finished", what="the run")
        await pilot.press("r")  # the results
        await wait_until(pilot, lambda: run_screen.query_one("#results-predict", Static).display, what="the offer")
        await pilot.press("i")
        await wait_until(pilot, lambda: isinstance(app.screen, PredictScreen), what="the predict box")
        box = app.screen
        assert box.which == "best"

        await submit(pilot, box, str(tmp_path / "nowhere"))
        await wait_until(pilot, lambda: box.state == "failed", what="the bad path")
        message = box.query_one("#predict-message", Static)
        assert "no such file or folder" in str(message.render()) and message.has_class("error")

        await submit(pilot, box, str(images))
        await wait_until(pilot, lambda: box.state == "done", what="the prediction")
        table = box.query_one(DataTable)
        expected = predict_paths(trained_run.path, [images], top=3)
        assert table.row_count == 3 == len(expected.predictions)
        for r, p in enumerate(expected.predictions):
            row = [str(c) for c in table.get_row_at(r)]
            assert row[0] == str(p.path)
            assert row[1:] == [f"{g.name} {g.probability * 100:.1f}%" for g in p.top]
        said = str(box.query_one("#predict-message", Static).render())
        assert "3 images predicted" in said and "bad.png" in said

        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is run_screen, what="back on the run screen")


async def test_the_runs_table_offers_predict_for_a_run_with_a_checkpoint(trained_run):
    app = Harness(trained_run.path.parent, first=RunsScreen(trained_run.path.parent))
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.current() is not None)
        assert app.screen.check_action("predict", ()) is True
        await pilot.press("i")
        await wait_until(pilot, lambda: isinstance(app.screen, PredictScreen), what="the predict box")
        assert app.screen.run_dir == trained_run.path
