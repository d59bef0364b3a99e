"""Stop loses nothing and resume changes nothing: a run stopped inside an epoch (by the handle, or killed
after a timed checkpoint) and resumed gives the metrics of a run never stopped, each epoch once. And
what a resume trusts is checked first: a best.pt left behind by a kill is set right, the test figures
name the epoch of their weights, and a run that diverges before any checkpoint does not claim one."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from engine.events import BatchProgress, EpochFinished, RunDiverged, RunHandle, RunStarted
from engine.training.checkpoint import load_checkpoint
from engine.training.position import POSITION_FILE
from engine.training.trainer import resume_run, run_experiment
from tests.child_processes import kill, start, status, wait_for
from tests.tiny import tiny_experiment

KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")


def randomised(**overrides):
    """Every random draw a batch makes: crops, flips, colour jitter, mixup; a per-batch schedule."""
    return tiny_experiment(
        **{
            "data.train_subset": 512,
            "train.batch_size": 32,
            "train.precision": "fp32",
            "augment.crop_padding": 4,
            "augment.hflip": True,
            "augment.color_jitter": 0.2,
            "augment.mixup_alpha": 0.2,
            "schedule.name": "cosine",
            "schedule.warmup_epochs": 0.5,
            **overrides,
        }
    )


def same_curve(a: list[dict], b: list[dict]) -> None:
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for x, y in zip(a, b, strict=True):
        for k in KEYS:
            assert x[k] == pytest.approx(y[k], abs=1e-4), (x["epoch"], k)


@pytest.mark.slow
def test_stopped_twice_inside_an_epoch_and_resumed_equals_a_run_never_stopped(tmp_path, monkeypatch):
    from engine.training import trainer

    monkeypatch.setattr(trainer, "PROGRESS_EVERY_S", 0.0)  # a progress event per batch: stops land where asked
    exp = randomised()
    straight = run_experiment(exp, runs_dir=tmp_path / "straight")
    assert straight.state == "finished", straight.message

    def stopper(handle, after_batch):
        def listen(ev):
            if isinstance(ev, BatchProgress) and ev.epoch == 2 and ev.batch == after_batch:
                handle.stop("the test")

        return listen

    handle = RunHandle()
    first = run_experiment(exp, runs_dir=tmp_path / "runs", listener=stopper(handle, 3), handle=handle)
    assert first.state == "stopped" and "at epoch 2, batch" in first.message and "resume continues" in first.message
    folder = first.folder
    held = load_checkpoint(folder.checkpoints / POSITION_FILE)["position"]
    assert (held["epoch"], held["batch"]) == (1, 3)  # inside epoch 2 (0-based 1) of 12 batches, after 3
    assert [r["epoch"] for r in folder.metrics()] == [1]

    # Resumed, and stopped again further into the same epoch: a position continued from a position.
    handle = RunHandle()
    events = []
    later = stopper(handle, held["batch"] + 3)
    second = resume_run(folder.path, listener=lambda ev: (events.append(ev), later(ev)), handle=handle)
    assert second.state == "stopped", second.message
    started = next(e for e in events if isinstance(e, RunStarted))
    assert (started.start_epoch, started.start_batch) == (1, held["batch"])
    assert load_checkpoint(folder.checkpoints / POSITION_FILE)["position"]["batch"] == held["batch"] + 3

    third = resume_run(folder.path)
    assert third.state == "finished", third.message
    same_curve(straight.folder.metrics(), folder.metrics())
    lines = [json.loads(x) for x in (folder.path / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]  # each epoch once
    assert third.summary["test_acc"] == pytest.approx(straight.summary["test_acc"], abs=1e-4)
    assert not (folder.checkpoints / POSITION_FILE).exists()  # a finished run has no place inside an epoch


@pytest.mark.slow
def test_kill_9_after_a_timed_checkpoint_resumes_from_it_exactly(tmp_path):
    exp = randomised(**{"data.train_subset": 2048, "train.checkpoint_minutes": 0.005})  # every 0.3 s
    cfg = tmp_path / "exp.toml"
    exp.save(cfg)
    runs = tmp_path / "runs"
    proc = start("run", str(cfg), "--runs-dir", str(runs), runs=runs)
    try:

        def timed_checkpoint_in_epoch_2():
            for path in runs.glob("*/status.json"):
                place = status(path.parent).get("position") or {}
                if place.get("epoch") == 2 and 0 < place.get("batch", 0) <= 30:
                    return path.parent
            return None

        run_dir = wait_for(timed_checkpoint_in_epoch_2, "a timed checkpoint inside epoch 2", proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        kill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert status(run_dir)["state"] == "crashed"
    held = load_checkpoint(run_dir / "checkpoints" / POSITION_FILE)["position"]
    assert held["epoch"] == 1 and held["batch"] > 0

    events = []
    resumed = resume_run(run_dir, listener=events.append)
    assert resumed.state == "finished", resumed.message
    started = next(e for e in events if isinstance(e, RunStarted))
    assert (started.start_epoch, started.start_batch) == (1, held["batch"])
    straight = run_experiment(exp.model_copy(), runs_dir=tmp_path / "straight")
    same_curve(straight.folder.metrics(), resumed.folder.metrics())


@pytest.mark.slow
def test_a_best_checkpoint_cut_short_by_a_kill_is_set_right_before_the_test_figures(tmp_path):
    """Issue 9.1: killed while best.pt was written at the last, improving epoch, best.pt held an older
    epoch and the resume reported test figures from it."""
    exp = tiny_experiment(**{"train.precision": "fp32"})
    best1, folder = tmp_path / "best1.pt", []

    def keep_best_of_epoch_1(ev):
        if isinstance(ev, RunStarted):
            folder.append(Path(ev.run_dir))
        if isinstance(ev, EpochFinished) and ev.metrics["epoch"] == 1:
            best1.write_bytes((folder[0] / "checkpoints" / "best.pt").read_bytes())

    done = run_experiment(exp, runs_dir=tmp_path / "runs", listener=keep_best_of_epoch_1)
    assert done.state == "finished", done.message
    summary = done.summary
    assert summary["best_epoch"] == 3, "the setting needs a last epoch that improves"
    assert (summary["test_checkpoint"], summary["checkpoint_epoch"]) == ("best", 3)

    # The folder a kill leaves: best.pt still the old one, an empty temporary beside it, no summary.
    ck = done.folder.checkpoints
    (ck / "best.pt").write_bytes(best1.read_bytes())
    (ck / ".best.pt.tmp").write_bytes(b"")
    (done.folder.path / "summary.json").unlink()
    st = json.loads((done.folder.path / "status.json").read_text())
    (done.folder.path / "status.json").write_text(json.dumps({**st, "state": "running", "pid": 2**22 + 1}))

    events = []
    again = resume_run(done.folder.path, listener=events.append)
    assert again.state == "finished", again.message
    said = " ".join(getattr(e, "text", "") for e in events)
    assert "removed .best.pt.tmp" in said and "best.pt held epoch 1" in said
    assert (again.summary["test_checkpoint"], again.summary["checkpoint_epoch"]) == ("best", 3)
    assert again.summary["test_acc"] == summary["test_acc"]
    assert load_checkpoint(ck / "best.pt")["epoch"] == 3
    assert not (ck / ".best.pt.tmp").exists()


def test_a_run_that_diverges_in_its_first_epoch_claims_no_checkpoint(tmp_path, monkeypatch):
    """Issue 9.6: it said "the checkpoint of epoch 0 is kept" when there was none."""
    import torch.nn.functional as F

    real, calls = F.cross_entropy, {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        out = real(*a, **k)
        return out * float("nan") if calls["n"] > 2 and out.requires_grad else out

    monkeypatch.setattr(F, "cross_entropy", poisoned)
    events = []
    result = run_experiment(tiny_experiment(), runs_dir=tmp_path / "runs", listener=events.append)
    assert result.state == "diverged"
    message = events[-1].message
    assert isinstance(events[-1], RunDiverged) and "epoch 1" in message
    assert "no epoch had finished, so no checkpoint is kept" in message and "epoch 0" not in message
    assert not (result.folder.checkpoints / "last.pt").exists()


DAMAGES = {
    "a permutation that is no order of the images": lambda p: {**p, "perm": p["perm"] + 1},
    "a batch past the epoch's end": lambda p: {**p, "batch": 100, "seen": len(p["perm"])},  # of 12
    "a sum that is not a tensor": lambda p: {**p, "loss_sum": 1.5},
    "an epoch of inf": lambda p: {**p, "epoch": float("inf")},
}


@pytest.mark.slow
def test_a_damaged_position_is_named_and_the_run_goes_on_from_the_last_epoch(tmp_path, monkeypatch):
    """A position.pt that cannot be this run's (damaged, foreign) never fails the resume an epoch in, nor
    ends an epoch early: the resume says so and retrains the epoch from last.pt, as a run never stopped."""
    import shutil

    from engine.events import LogMessage
    from engine.training import trainer
    from engine.training.checkpoint import save_checkpoint

    monkeypatch.setattr(trainer, "PROGRESS_EVERY_S", 0.0)
    exp = randomised(**{"train.epochs": 2})
    straight = run_experiment(exp, runs_dir=tmp_path / "straight")
    handle = RunHandle()

    def stop_in_epoch_2(ev):
        if isinstance(ev, BatchProgress) and ev.epoch == 2 and ev.batch == 3:
            handle.stop("the test")

    stopped = run_experiment(exp, runs_dir=tmp_path / "runs", listener=stop_in_epoch_2, handle=handle)
    assert stopped.state == "stopped" and (stopped.folder.checkpoints / POSITION_FILE).exists()
    for i, (damage, change) in enumerate(DAMAGES.items()):
        run = tmp_path / f"damaged-{i}"
        shutil.copytree(stopped.folder.path, run)
        state = load_checkpoint(run / "checkpoints" / POSITION_FILE)
        save_checkpoint(run / "checkpoints" / POSITION_FILE, {**state, "position": change(state["position"])})
        said: list[str] = []
        resumed = resume_run(run, listener=lambda ev, said=said: isinstance(ev, LogMessage) and said.append(ev.text))
        assert resumed.state == "finished", (damage, resumed.message)
        assert any(POSITION_FILE in s and "continuing from the end of epoch 1" in s for s in said), (damage, said)
        same_curve(straight.folder.metrics(), resumed.folder.metrics())  # epoch 2 trained whole, once
