"""Runs without torch for the console tests: metrics rows, summaries, run folders in the real
format with fixed ids and times, a preset with report numbers, and a fake engine.training.trainer.

The fake trainer emits a fixed run's events from the worker thread and honours the handle, so the
bridge, the app and the screens are the real ones (the `fake_trainer` fixture installs it).
"""

from __future__ import annotations

import json
import threading
import time
import types
from pathlib import Path
from types import SimpleNamespace

from engine.events import BatchProgress, EpochFinished, RunFailed, RunFinished, RunStarted, RunStopped
from engine.experiment.preset_files import Reference
from engine.experiment.presets import Preset
from engine.runfolder.folder import RunFolder
from tests.tiny import tiny_experiment

CLASSES = [f"class{i}" for i in range(10)]


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
    warning = "The model predicts 'class3' for every test image: it has collapsed to one class"
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
        "collapse_warning": warning if collapsed else None,
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
    status = {"state": state, "message": message, "pid": pid}
    status.update(created=started, started=started, updated=started)
    (path / "status.json").write_text(json.dumps(status))
    if summary is not None:
        folder.write_summary(summary)
    return path


def three_runs(runs_dir: Path) -> None:
    make_run(runs_dir, "20250122-072031-shapes-demo-ab12", summary=summary_of(3))
    make_run(
        runs_dir,
        "20250122-081500-shapes-demo-cd34",
        state="stopped",
        epochs=5,
        done=2,
        lr=0.1,
        started="2025-01-22T08:15:00",
        message="stopped during epoch 3",
    )
    # "running" in a process that is gone (no pid is above 2**22): it reads as crashed.
    make_run(
        runs_dir,
        "20250122-091500-shapes-demo-ef56",
        state="running",
        epochs=4,
        done=1,
        lr=0.02,
        started="2025-01-22T09:15:00",
        pid=2**22 + 1,
    )


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
    """engine.training.trainer's API, emitting a fixed run from the worker thread and honouring the handle.

    end: "wait" (train `epochs_before_wait` epochs, then wait for a stop), "finish", "fail" (a
    RunFailed event, as for a missing dataset) or "crash" (an exception: a bug the trainer let out).
    `calls` records what each run was asked: (experiment, runs folder, preset name).
    """

    def __init__(self, end: str = "wait", epochs_before_wait: int = 2, batches: int = 4) -> None:
        super().__init__("engine.training.trainer")
        self.end, self.epochs_before_wait, self.batches = end, epochs_before_wait, batches
        self.thread_names: list[str] = []
        self.calls: list[tuple] = []

    def run_experiment(self, exp, *, runs_dir, preset=None, name=None, listener=None, handle=None):
        self.calls.append((exp, Path(runs_dir), preset))
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
        listener(
            RunStarted(
                str(folder.path),
                folder.id,
                "cpu",
                "fp32",
                False,
                123_456,
                192,
                64,
                100,
                CLASSES,
                epochs,
                start,
                self.batches,
                history,
            )
        )
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
