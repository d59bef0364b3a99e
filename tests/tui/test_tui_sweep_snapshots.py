"""The sweep views at 80x24 with fixed content: a sweep whose study holds two finished trials, one
its pruner stopped and one waiting, shown on the sweep screen (a pruned trial reads `pruned` there
and in the runs table, the best is marked) and as screenshots of the sweep screen and the sweep
form, so their look does not drift. No training: the study is written through Optuna's own calls,
the trials' run folders in the real format with fixed ids.

Update after an intended change with `pytest tests/tui/test_tui_sweep_snapshots.py --snapshot-update`
and look at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from optuna.trial import TrialState
from textual.widgets import DataTable

from engine.sweeps import study as st
from engine.sweeps.launch import SweepLaunch
from engine.sweeps.runner import create_sweep
from tests.console import Harness, screen_text, steady_look, wait_until
from tests.fake_runs import make_run, summary_of
from tests.tiny import tiny_experiment
from tui.screens.runs import RunsScreen
from tui.screens.sweep import SweepScreen
from tui.screens.sweep_start import SweepStartScreen
from tui.widgets.charts import MetricChart
from tui.widgets.sweep_charts import ParamChart
from tui.widgets.sweep_form import SweepForm

SIZE = (80, 24)
NAME = "20250122-101500-sweep-shapes-demo-3fa2"
# slot: (state, val_acc per epoch)
TRIALS = {1: ("finished", [0.52, 0.71, 0.80]), 2: ("finished", [0.48, 0.62, 0.74]), 3: ("pruned", [0.11])}


def fixed_sweep(runs: Path) -> Path:
    """A 4-point grid on the epoch's metric: slots 1 and 2 finished, 3 pruned after its first epoch,
    4 waiting. The folder is renamed to a fixed name once its study is written (the study keeps
    its own name, in sweep.toml)."""
    exp = tiny_experiment(**{"train.epochs": 3})
    sweep, ss = create_sweep(exp, runs_dir=runs, grid={"optim.lr": [0.05, 0.02, 1e-7, 0.01]}, pruner="median")
    for slot, (state, vals) in TRIALS.items():
        trial = st.pop_trial(ss)
        assert trial.user_attrs[st.SLOT] == slot  # claimed in slot order
        lr = sweep.trials[slot - 1]["optim.lr"]
        run_id = f"20250122-10{slot:02d}00-shapes-demo-trial-{slot:03d}-ab{slot}0"
        path = make_run(
            sweep.path,
            run_id,
            state=state,
            done=len(vals),
            lr=lr,
            started=f"2025-01-22T10:{slot:02d}:00",
            summary=summary_of(len(vals)) if state == "finished" else None,
            message="pruned by the median pruner after epoch 1 (val_acc 0.1100)" if state == "pruned" else "",
        )
        lines = (path / "metrics.jsonl").read_text().splitlines()
        rows = [{**json.loads(line), "val_acc": v} for line, v in zip(lines, vals, strict=True)]
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        trial.set_user_attr(st.RUN, run_id)
        trial.set_user_attr("state", state)
        for epoch, v in enumerate(vals, 1):
            trial.report(v, epoch)
        if state == "finished":
            ss.study.tell(trial, vals[-1])
        else:
            ss.study.tell(trial, state=TrialState.PRUNED)
    fixed = runs / NAME
    sweep.path.rename(fixed)
    return fixed


@pytest.fixture
def sweep_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # a relative runs folder: the same screen on every machine
    return fixed_sweep(Path("runs"))


async def _sweep_read(pilot, screen: SweepScreen) -> None:
    await wait_until(pilot, lambda: screen.is_mounted and screen.view is not None, what="the sweep read")
    chart = screen.query_one("#sweep-curves", MetricChart)
    await wait_until(pilot, lambda: chart.draws >= 1 and not chart.dirty, what="the curves")
    await pilot.pause()


async def test_a_pruned_trial_reads_pruned_on_the_sweep_screen_and_in_the_runs_table(sweep_dir):
    runs = sweep_dir.parent
    app = Harness(runs, SweepScreen(sweep_dir))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen), what="the sweep screen")
        screen = app.screen
        await _sweep_read(pilot, screen)
        view = screen.view
        assert [t.state for t in view.trials] == ["finished", "finished", "pruned", "pending"]
        assert view.best == 1 and view.state == "running"  # one slot still waits
        table = screen.query_one(DataTable)
        row = [str(c) for c in table.get_row("3")]
        assert row[:3] == ["   3", "pruned", "1e-07"] and row[3] == "1/3"
        shown = screen_text(app)
        assert "2 finished" in shown and "1 pruned" in shown and "1 pending" in shown
        table.move_cursor(row=table.get_row_index("3"))
        await pilot.pause()
        assert "pruned by the median pruner" in screen_text(app)  # the highlighted trial's line
        await pilot.press("v")  # the metric by lr: the pruned trial is a point too
        await pilot.pause()
        assert sorted(screen.query_one(ParamChart).points) == [(1e-07, 0.11), (0.02, 0.74), (0.05, 0.8)]

    app = Harness(runs, RunsScreen(runs))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs screen")
        await wait_until(pilot, lambda: "pruned" in screen_text(app), what="the pruned trial in the runs table")


def test_sweep_screen(snap_compare, sweep_dir):
    app = Harness(sweep_dir.parent, SweepScreen(sweep_dir))

    async def shown(pilot) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, SweepScreen), what="the sweep screen")
        await _sweep_read(pilot, pilot.app.screen)
        steady_look(pilot.app)

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)


def test_sweep_form(snap_compare, tmp_path):
    start = SweepLaunch(grid="optim.lr=0.05,0.02,0.01; optim.momentum=0.9,0.5", workers=2, pruner="median")
    app = Harness(tmp_path, SweepStartScreen(tiny_experiment(), preset_name="shapes-demo", start=start))

    async def shown(pilot) -> None:
        await wait_until(
            pilot,
            lambda: isinstance(pilot.app.screen, SweepStartScreen) and bool(pilot.app.screen.query(SweepForm)),
            what="the sweep form",
        )
        await wait_until(pilot, lambda: pilot.app.screen.form.launch is not None, what="the form checked")
        steady_look(pilot.app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)
