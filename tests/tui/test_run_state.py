"""The run's state as the run screen shows it (tui/run_state.py), without the app: fed engine events,
or a run folder read into the same events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from engine.events import (
    BatchProgress,
    EpochFinished,
    LogMessage,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
)
from engine.runfolder.folder import RunFolder
from tests.fake_runs import CLASSES, make_run, metrics_row, summary_of
from tests.tiny import tiny_experiment
from tui.run_state import END_STATES, FolderFeed, RunState, StatusRead


def started(epochs: int = 3, start: int = 0, history: list | None = None) -> RunStarted:
    sizes = (1_000_000, 480, 160, 0)  # params, train, val and test images
    return RunStarted("runs/r", "r", "cpu", "fp32", False, *sizes, CLASSES, epochs, start, 4, history or [])


def texts(model: RunState) -> list[str]:
    return [line.plain for line in model.take_log()]


def test_the_end_states_are_the_end_events_and_a_crash():
    assert set(END_STATES) == {"finished", "stopped", "failed", "diverged", "crashed"}


def test_events_fill_the_state_the_bars_the_curves_and_the_log():
    model = RunState(3)
    assert (model.state, model.epochs, model.batches) == ("starting", 3, None)
    model.apply(started())
    assert model.state == "running" and model.run_dir == Path("runs/r") and model.device == "cpu · fp32"
    assert model.batches == 4 and model.epoch_done == 0
    model.apply(BatchProgress(1, 2, 4, 2.0, 0.1, 300.0, 50.0))
    view = model.view()
    assert view.progress.batch == 2 and view.epoch_done == 0.5 and view.batch_done == 2
    assert view.live_loss == ([0.5], [2.0]) and view.batch_lr == ([], [])  # constant lr: no per-batch points
    model.apply(EpochFinished(metrics_row(1)))
    view = model.view()
    assert view.rows == [metrics_row(1)] and view.live_loss == ([], []) and view.progress is None
    assert view.epoch_done == 1
    model.apply(LogMessage("data cached", "warning"))
    lines = texts(model)
    assert lines[0].startswith("started on cpu, precision fp32, 1.00 M params")
    assert lines[1].startswith("ep 1/3 loss 2.300/2.400 acc 20.0/18.0%") and lines[1].endswith("★")
    assert lines[2] == "data cached" and texts(model) == []  # each line is taken once


def test_a_view_is_a_copy_and_versions_count_changes():
    model = RunState(2)
    model.apply(started(2))
    view = model.view()
    model.apply(BatchProgress(1, 1, 4, 2.0, 0.1, 300.0, 50.0))
    assert view.live_loss == ([], []) and model.view().live_loss[0] == [0.25]
    assert model.view().version == view.version + 1
    assert model.view().epoch_version == view.epoch_version  # a batch is no epoch news
    model.apply(EpochFinished(metrics_row(1)))
    assert model.view().epoch_version == view.epoch_version + 1


def test_per_batch_lr_is_kept_when_the_schedule_moves_it_within_an_epoch():
    flat = RunState.for_experiment(tiny_experiment())
    cyclic = RunState.for_experiment(tiny_experiment(**{"schedule.name": "onecycle", "schedule.max_lr": 0.3}))
    assert not flat.per_batch_lr and cyclic.per_batch_lr and cyclic.epochs == 3
    cyclic.apply(BatchProgress(1, 2, 4, 2.0, 0.3, 300.0, 50.0))
    assert cyclic.view().batch_lr == ([0.5], [0.3])


def test_a_stop_keeps_what_was_drawn():
    """Rough edge 6, in the model: a stop in the first epoch keeps its per-batch curve and bars."""
    model = RunState(3)
    model.apply(started())
    model.apply(BatchProgress(1, 1, 4, 2.0, 0.1, 300.0, 50.0))
    model.apply(BatchProgress(1, 2, 4, 1.9, 0.1, 300.0, 50.0))
    model.apply(RunStopped(0, "stopped during epoch 1"))
    view = model.view()
    assert view.state == "stopped" and view.message == "stopped during epoch 1"
    assert view.live_loss == ([0.25, 0.5], [2.0, 1.9]) and view.epoch_done == 0.5 and view.batch_done == 2
    assert texts(model)[-1] == "stopped: stopped during epoch 1 (resumable from the runs screen)"


def test_each_end_says_its_last_words():
    finished = RunState(1)
    finished.apply(started(1))
    finished.apply(EpochFinished(metrics_row(1)))
    finished.apply(RunFinished(summary_of(1, collapsed=True)))
    assert finished.state == "finished" and finished.summary["test_acc"] == 0.1
    assert finished.epoch_done == 1 and finished.batch_done == 4
    last = texts(finished)[-2:]
    assert last[0] == "finished: test acc 10.0 %, best val acc 18.0 %; r shows the per-class results"
    assert last[1].startswith("⚠ The model predicts 'class3'")
    for event, line in (
        (RunFailed("no data"), "failed: no data"),
        (RunDiverged(2, "the loss became nan"), "diverged: the loss became nan"),
        (StatusRead("crashed", "the process that ran it is gone"), "crashed: the process that ran it is gone"),
    ):
        model = RunState(3)
        model.apply(event)
        assert model.ended and texts(model) == [line]


def test_what_the_user_asks_shows_at_once():
    model = RunState(3)
    model.pause_asked()
    assert model.state == "paused"
    model.apply(started())
    assert model.state == "paused"  # the trainer starting does not un-pause it
    model.resume_asked()
    model.stop_asked()
    assert (model.state, model.message) == ("stopping", "stopping at the next batch…")
    model.apply(started())
    assert model.state == "stopping"
    lines = texts(model)
    assert lines[0] == "paused: p resumes, s stops" and "resumed" in lines
    assert "stopping at the next batch (a checkpoint is written)…" in lines


def test_a_resume_starts_from_its_history():
    model = RunState(4)
    model.apply(started(4, start=2, history=[metrics_row(1), metrics_row(2)]))
    assert [r["epoch"] for r in model.rows] == [1, 2] and model.epoch_done == 2
    assert texts(model)[-1] == "continuing at epoch 3 of 4"


def test_events_from_another_thread_never_tear_a_view():
    model = RunState(1)
    model.apply(started(1))

    def train() -> None:
        for b in range(1, 20_001):
            model.apply(BatchProgress(1, b, 20_000, 1.0, 0.1, 1.0, 1.0))

    thread = threading.Thread(target=train)
    thread.start()
    while thread.is_alive():
        xs, ys = model.view().live_loss
        assert len(xs) == len(ys)
    thread.join()
    assert len(model.view().live_loss[0]) == 20_000


# --- a run folder read into the same events -------------------------------------------------------


def test_a_finished_folder_reads_as_its_events(tmp_path):
    path = make_run(tmp_path, "20250122-072031-shapes-demo-ab12", summary=summary_of(3))
    feed = FolderFeed(path)
    model = feed.new_state()
    assert model.state == "finished" and model.run_id == "20250122-072031-shapes-demo-ab12"
    assert [r["epoch"] for r in model.rows] == [1, 2, 3] and model.summary["test_acc"] == 1.0
    assert model.epoch_done == 3
    lines = texts(model)
    assert [line[:6] for line in lines[:3]] == ["ep 1/3", "ep 2/3", "ep 3/3"]
    assert lines[3].startswith("finished: test acc 100.0 %")
    assert feed.read(model) is False  # nothing new


def test_a_followed_folder_brings_only_what_is_new(tmp_path):
    path = make_run(tmp_path, "r", state="running", epochs=4, done=1, pid=os.getpid())
    status = json.loads((path / "status.json").read_text())
    (path / "status.json").write_text(json.dumps({**status, "progress": {"epoch": 2, "batch": 3, "batches": 8}}))
    feed = FolderFeed(path)
    model = feed.new_state()
    assert model.state == "running" and (model.batch_done, model.batches) == (3, 8) and len(texts(model)) == 1
    RunFolder(path).append_metrics(metrics_row(2))
    assert feed.read(model) is True
    assert [r["epoch"] for r in model.rows] == [1, 2] and [line[:6] for line in texts(model)] == ["ep 2/4"]
    (path / "status.json").write_text(json.dumps({**status, "state": "stopped", "message": "stopped", "updated": "x"}))
    assert feed.read(model) is True and model.state == "stopped"
    assert texts(model) == ["stopped: stopped (resumable from the runs screen)"]


def test_a_folder_whose_process_is_gone_reads_as_crashed(tmp_path):
    path = make_run(tmp_path, "r", state="running", epochs=4, done=1, pid=2**22 + 1)
    model = FolderFeed(path).new_state()
    assert model.state == "crashed" and model.ended


def test_the_run_state_needs_no_textual():
    code = "import sys, tui.run_state, tui.run_view; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]
