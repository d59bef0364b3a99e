"""One trainer per run folder, in the console too: resuming (R) a run that a headless process trains is
refused, naming the process and host that hold it, as a second `cnnlab resume` is; the run trains on
undisturbed. Waits are on the table and the run folder, with a deadline."""

from __future__ import annotations

import socket

import pytest
from textual.widgets import DataTable

from tests.child_processes import cnnlab, kill, start, status, the_run
from tests.console import RecordingApp, wait_until
from tests.tiny import tiny_experiment
from tui.screens.runs import RunsScreen

SIZE = (80, 24)
LONG_S = 120.0


@pytest.mark.slow
async def test_resuming_a_run_another_process_trains_is_refused_naming_it(tmp_path):
    runs = tmp_path / "runs"
    cfg = tmp_path / "exp.toml"
    tiny_experiment(**{"data.train_subset": 2048, "train.batch_size": 32, "train.epochs": 4}).save(cfg)
    proc = start("run", str(cfg), "--runs-dir", str(runs), runs=runs)
    try:
        run_dir = the_run(runs, proc)
        app = RecordingApp(runs)
        async with app.run_test(size=SIZE) as pilot:
            await app.push_screen(RunsScreen(runs))
            table = app.screen.query_one(DataTable)
            await wait_until(pilot, lambda: table.row_count == 1, what="the run in the table")
            await pilot.press("R")
            await wait_until(pilot, lambda: any("cannot be resumed" in t for _, t in app.notes), what="the refusal")
            [(severity, text)] = [n for n in app.notes if "cannot be resumed" in n[1]]
            assert severity == "warning"
            assert f"pid {proc.pid} on {socket.gethostname()}" in text and "stop it first" in text, text
            assert isinstance(app.screen, RunsScreen) and app.active_run is None  # nothing started here
        st = status(run_dir)
        assert st["state"] == "running" and st["pid"] == proc.pid  # the holder trains on
        assert cnnlab("stop", str(run_dir), runs=runs).returncode == 0
    finally:
        kill(proc)
