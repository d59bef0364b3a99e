"""The console's sweeps, driven with Pilot at 80x24: a sweep started from the form on two worker
processes and followed live (trials, the best marked, curves, importance, metric by parameter),
paused, continued, a trial opened, then stopped; the form's checks; where sweeps are started and
opened from (picker, editor, runs screen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import Button, DataTable, Input

from engine.sweeps import study as st
from engine.sweeps.folder import Sweep
from engine.sweeps.runner import create_sweep
from tests.console import Harness, RecordingApp, screen_text, wait_until
from tests.tiny import tiny_experiment
from tui.screens.confirm import ConfirmScreen
from tui.screens.edit import EditScreen
from tui.screens.pick import PickScreen
from tui.screens.run import RunScreen
from tui.screens.runs import RunsScreen
from tui.screens.sweep import SweepScreen, short
from tui.screens.sweep_start import SweepStartScreen
from tui.widgets.charts import MetricChart
from tui.widgets.sweep_charts import ImportanceBars, ParamChart, importance_bars
from tui.widgets.sweep_form import SweepForm

SIZE = (80, 24)
SMALL = {
    "data.train_subset": 1024,
    "data.test_split": 0.1,
    "train.epochs": 2,
    "train.batch_size": 64,
    "train.precision": "fp32",
}


def test_pictures_in_words():
    assert short("optim.lr", ["optim.lr", "optim.momentum"]) == "lr"
    assert short("a.lr", ["a.lr", "b.lr"]) == "a.lr"
    bars = importance_bars({"optim.lr": 0.75, "optim.momentum": 0.25}, 60).plain.splitlines()
    long, short_bar = bars[0].count("█"), bars[1].count("█")
    assert bars[0].startswith("optim.lr") and abs(long / short_bar - 3) < 0.3
    assert "0.75" in bars[0] and "fANOVA" in bars[-1]
    assert "two finished" in importance_bars({}, 60, "needs two finished trials").plain


def _form_up(app) -> bool:
    return isinstance(app.screen, SweepStartScreen) and bool(app.screen.query(SweepForm))


async def _table_text(screen: SweepScreen) -> str:
    table = screen.query_one(DataTable)
    return "\n".join(" ".join(str(c) for c in table.get_row_at(i)) for i in range(table.row_count))


@pytest.mark.slow
async def test_a_live_two_worker_sweep_from_the_form_to_its_stop(tmp_path: Path):
    app = Harness(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        app.start_sweep(tiny_experiment(**SMALL))
        await wait_until(pilot, lambda: _form_up(app), what="the sweep form")
        form = app.screen.query_one(SweepForm)
        form.set_value("grid", "optim.lr=0.05,-1")
        await pilot.pause()
        assert form.launch is None and "optim.lr" in form.problems["grid"] and "-1" in form.problems["grid"]
        assert app.screen.query_one("#start", Button).disabled  # nothing starts with a problem
        form.set_value("grid", "optim.lr=0.05,0.02,0.005; optim.momentum=0.9,0.5")
        form.set_value("workers", "2")
        await pilot.pause()
        assert form.launch is not None and form.launch.workers == 2
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen), timeout=30, what="the sweep screen")
        screen: SweepScreen = app.screen
        ss = st.load_study(Sweep.load(screen.sweep_dir))

        workers_seen = set()  # the screen's count of working workers, as it refreshed

        def view_has(check):
            def holds() -> bool:
                if screen.view is None:
                    return False
                workers_seen.add(screen.view.workers)
                return check(screen.view)

            return holds

        await wait_until(pilot, view_has(lambda v: "running" in v.counts()), timeout=60, what="a trial training")
        await pilot.press("p")  # pause the whole sweep
        await wait_until(
            pilot,
            view_has(lambda v: v.state == "paused" and "running" not in v.counts()),
            timeout=30,
            what="every worker paused",
        )
        assert st.sweep_state(ss) == "paused"
        await pilot.press("p")  # and on again
        await wait_until(pilot, view_has(lambda v: v.counts().get("finished", 0) >= 3), timeout=120, what="3 trials")
        view = screen.view
        # Both at once (a fast machine may have finished one worker's last trial by now)
        assert max(workers_seen) == 2, workers_seen
        best = min((t for t in view.trials if t.state == "finished"), key=lambda t: -t.metric)
        assert view.best == best.slot
        text = await _table_text(screen)
        assert f"★{best.slot:>3}" in text and "finished" in text
        chart = screen.query_one("#sweep-curves", MetricChart)
        assert {f"#{t.slot}" for t in view.trials if t.state == "finished"} <= set(chart.names)
        await wait_until(pilot, view_has(lambda v: v.importance), timeout=30, what="parameter importance")
        assert set(screen.view.importance) == {"optim.lr", "optim.momentum"}
        await pilot.press("i")
        await pilot.pause()
        bars = screen.query_one(ImportanceBars).render()
        assert "optim.lr" in str(bars) and "█" in str(bars)
        await pilot.press("v")  # the metric by the first varied parameter, then by the next
        await pilot.pause()
        param = screen.query_one(ParamChart)
        assert param.param == "optim.lr" and len(param.points) >= 3
        await pilot.press("v")
        await pilot.pause()
        assert param.param == "optim.momentum"
        shown = screen_text(app)
        assert screen.sweep_dir.name[:20] in shown and " lr " in shown and "momentum" in shown

        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(str(best.slot)))
        await pilot.press("enter")  # the trial's own run screen
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the trial's run screen")
        assert app.screen.feed.folder.path == best.run  # followed from its folder
        await pilot.press("b")
        await wait_until(pilot, lambda: app.screen is screen, what="back to the sweep")

        await wait_until(pilot, view_has(lambda v: v.state in ("running", "finished")), what="the sweep going")
        if screen.view.state == "running":
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the stop question")
            await pilot.press("y")
            await wait_until(
                pilot,
                view_has(lambda v: v.state == "stopped" and "running" not in v.counts()),
                timeout=60,
                what="the sweep stopped",
            )
            assert st.sweep_state(ss) == "stopped"
        await wait_until(  # the workers have left (a stopped sweep's take no new trial)
            pilot,
            lambda: all(w.get("state") != "working" for w in st.workers_of(ss).values()),
            timeout=60,
            what="the workers to leave",
        )


async def test_the_picker_and_the_editor_start_a_sweep_from_the_presets_own(tmp_path: Path):
    app = RecordingApp(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        pick = app.screen
        assert isinstance(pick, PickScreen)
        names = [p.name for p in pick.shown]
        pick.table.move_cursor(row=names.index("alexnet-tinyimage10"))
        await pilot.press("w")
        await wait_until(pilot, lambda: _form_up(app), what="the sweep form")
        form = app.screen.query_one(SweepForm)
        grid = form.query_one("#sw-grid", Input).value
        assert "optim.lr=0.0001,0.001,0.005" in grid and "optim.momentum=0.9,0.5" in grid
        assert form.launch is not None  # the report's 12-point grid, as the preset has it
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is pick, what="back to the picker")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, EditScreen), what="the editor")
        await pilot.press("ctrl+w")
        await wait_until(pilot, lambda: _form_up(app), what="the form from the editor")
        assert app.screen.preset_name == "alexnet-tinyimage10"
        assert "optim.lr=0.0001" in app.screen.query_one("#sw-grid", Input).value


async def test_the_runs_screen_opens_a_trials_sweep(tmp_path: Path):
    from engine.runfolder.folder import RunFolder

    runs = tmp_path / "runs"
    sweep, _ = create_sweep(tiny_experiment(**SMALL), runs_dir=runs, grid={"optim.lr": [0.05, 0.02]})
    trial = RunFolder.create(sweep.path, sweep.trial_experiment(1), name="trial-001")
    trial.write_status("stopped", message="stopped by the user")
    app = Harness(runs, RunsScreen(runs))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs screen")
        await pilot.pause()
        await pilot.press("w")
        await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen), what="the sweep screen")
        screen = app.screen
        await wait_until(pilot, lambda: screen.view is not None, what="the sweep read")
        assert screen.sweep_dir == sweep.path
        assert [t.state for t in screen.view.trials] == ["stopped", "pending"]
        cell = screen.query_one(DataTable).get_row("1")[1]
        assert isinstance(cell, Text) and cell.plain == "stopped"
