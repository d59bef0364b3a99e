"""SIGTERM (a scheduler's preemption) and SIGHUP (a closed terminal, a dropped SSH session) stop a
headless run like a stop: the exact position saved, status `stopped` naming the signal, the process
gone, and a resume that finishes with each epoch once."""

from __future__ import annotations

import json
import signal

import pytest

from engine.runfolder.lock import is_held
from engine.runfolder.table import read_run
from tests.child_processes import cnnlab, kill, progress, start, status, the_run, wait_for
from tests.tiny import tiny_experiment


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_leaves_a_stopped_resumable_run(tmp_path, sig):
    runs = tmp_path / "runs"
    cfg = tmp_path / "exp.toml"
    tiny_experiment(**{"data.train_subset": 2048, "train.batch_size": 32, "train.epochs": 2}).save(cfg)
    proc = start("run", str(cfg), "--runs-dir", str(runs), runs=runs)
    try:
        run_dir = the_run(runs, proc)
        wait_for(lambda: progress(run_dir).get("batch", 0) > 0, "a batch done", proc)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 130  # stopped, as after Ctrl+C
    finally:
        kill(proc)
    st = status(run_dir)
    assert st["state"] == "stopped" and f"stopped by {sig.name} at" in st["message"], st
    assert is_held(run_dir) is False
    assert read_run(run_dir).resumable
    place = st["position"]
    assert (run_dir / "checkpoints" / "position.pt").exists() and place["batch"] >= 0

    done = cnnlab("resume", str(run_dir), runs=runs)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


@pytest.mark.slow
def test_a_signal_while_paused_stops_too(tmp_path):
    runs = tmp_path / "runs"
    cfg = tmp_path / "exp.toml"
    tiny_experiment(**{"data.train_subset": 2048, "train.batch_size": 32, "train.epochs": 2}).save(cfg)
    proc = start("run", str(cfg), "--runs-dir", str(runs), runs=runs)
    try:
        run_dir = the_run(runs, proc)
        assert cnnlab("pause", str(run_dir), runs=runs).returncode == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 130
    finally:
        kill(proc)
    st = status(run_dir)
    assert st["state"] == "stopped" and "SIGTERM" in st["message"]
    assert st["position"]["batch"] == st["progress"]["batch"]  # where the pause held it
