"""A headless run obeys commands from other processes: `cnnlab pause` holds every batch while the
heartbeat goes on, `continue` lets it go on, `stop` leaves it stopped with its exact position, and
`resume` finishes it. One trainer per run: a second resume is refused, naming the holder. A detached
run outlives its starter; a finished run is trained on with `resume --epochs`."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from engine.runfolder.lock import RunLocked, is_held
from engine.training.trainer import resume_run, run_experiment
from tests.child_processes import cnnlab, kill, progress, start, status, the_run, wait_for
from tests.tiny import tiny_experiment


def long_enough(tmp_path, **overrides):
    """48 batches an epoch: commands land inside an epoch on any machine."""
    exp = tiny_experiment(**{"data.train_subset": 2048, "train.batch_size": 32, "train.epochs": 4, **overrides})
    cfg = tmp_path / "exp.toml"
    exp.save(cfg)
    return cfg


@pytest.mark.slow
def test_pause_continue_stop_from_another_process_then_resume_finishes(tmp_path):
    runs = tmp_path / "runs"
    proc = start("run", str(long_enough(tmp_path)), "--runs-dir", str(runs), runs=runs)
    try:
        run_dir = the_run(runs, proc)
        paused = cnnlab("pause", str(run_dir), runs=runs)
        assert paused.returncode == 0, paused.stderr
        assert "paused at epoch" in paused.stdout
        st = status(run_dir)
        assert st["paused"] is True and st["control"]["command"] == "pause" and st["state"] == "running"
        held, beat = st["progress"], st["beat"]

        # No batch while paused, for as long as two heartbeats take: the process lives and says so.
        beats = [beat]

        def two_more_heartbeats():
            now = status(run_dir)
            assert now["progress"] == held and now["paused"] is True, "a batch ran while paused"
            if now["beat"] != beats[-1]:
                beats.append(now["beat"])
            return len(beats) >= 3

        wait_for(two_more_heartbeats, "two heartbeats while paused", proc)
        assert beats[-1] - beats[0] >= 2.0

        went_on = cnnlab("continue", str(run_dir), runs=runs)
        assert went_on.returncode == 0, went_on.stderr
        wait_for(lambda: progress(run_dir) != held, "a batch after continue", proc)
        assert status(run_dir)["paused"] is False

        stopped = cnnlab("stop", str(run_dir), runs=runs)
        assert stopped.returncode == 0, stopped.stderr
        words = " ".join(stopped.stdout.split())
        inside_an_epoch = "resume continues at batch" in words
        assert inside_an_epoch or "resume starts it" in words, words
        assert proc.wait(timeout=60) == 130
    finally:
        kill(proc)
    st = status(run_dir)
    assert st["state"] == "stopped" and "`cnnlab stop`" in st["message"]
    assert is_held(run_dir) is False and (run_dir / "checkpoints" / "position.pt").exists()

    again = cnnlab("stop", str(run_dir), runs=runs)
    assert again.returncode == 2 and "is not running (it is stopped" in again.stderr
    done = cnnlab("resume", str(run_dir), runs=runs)
    assert done.returncode == 0, done.stdout + done.stderr
    # A stop that lands between epochs (the command arrived during validation) resumes after that epoch.
    said = " ".join(done.stdout.split())
    assert ("resumed at epoch" if inside_an_epoch else "resumed after epoch") in said, said
    st = status(run_dir)
    assert st["state"] == "finished"
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]  # each epoch once


@pytest.mark.slow
def test_a_second_resume_is_refused_naming_the_process_that_holds_the_run(tmp_path):
    runs = tmp_path / "runs"
    exp = tiny_experiment(**{"data.train_subset": 2048, "train.batch_size": 32, "train.epochs": 1})
    run_dir = run_experiment(exp, runs_dir=runs).folder.path
    # One process resumes it (trains it on to 6 epochs) while a second resume is tried.
    first = start("resume", str(run_dir), "--epochs", "6", runs=runs)
    try:
        wait_for(lambda: progress(run_dir).get("epoch", 0) >= 2, "the first resume to train", first)
        second = cnnlab("resume", str(run_dir), "--epochs", "6", runs=runs)
        assert second.returncode == 2
        assert f"pid {first.pid} on {os.uname().nodename}" in second.stderr and "stop it first" in second.stderr
        try:  # in-process too, past the CLI's check: the lock itself refuses, writing nothing
            resume_run(run_dir)
            raise AssertionError("a second trainer was let in")
        except RunLocked as err:
            assert f"pid {first.pid}" in str(err)
        assert status(run_dir)["pid"] == first.pid
        assert cnnlab("stop", str(run_dir), runs=runs).returncode == 0
    finally:
        kill(first)
    assert status(run_dir)["state"] == "stopped"


def test_commands_to_a_run_that_is_not_running_say_so(tmp_path):
    runs = tmp_path / "runs"
    done = run_experiment(tiny_experiment(**{"train.epochs": 1, "data.train_subset": 256}), runs_dir=runs)
    for command in ("pause", "continue", "stop", "checkpoint"):
        out = cnnlab(command, str(done.folder.path), runs=runs)
        assert out.returncode == 2 and "is not running (it is finished" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    out = cnnlab("pause", str(tmp_path), runs=runs)
    assert out.returncode == 2 and "not a run folder" in out.stderr


@pytest.mark.slow
def test_a_detached_run_outlives_its_starter_and_obeys_the_channel(tmp_path):
    runs = tmp_path / "runs"
    out = cnnlab("run", str(long_enough(tmp_path)), "--runs-dir", str(runs), "--detach", runs=runs)
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    pid = status(run_dir)["pid"]
    try:
        assert "detached" in out.stderr and str(pid) in out.stderr
        assert os.getsid(pid) == pid  # a session of its own: no terminal's hangup reaches it
        wait_for(lambda: progress(run_dir), "the detached run to train")
        checkpoint = cnnlab("checkpoint", str(run_dir), runs=runs)
        assert checkpoint.returncode == 0 and "checkpoint written" in checkpoint.stdout, checkpoint.stderr
        assert status(run_dir)["position"] and (run_dir / "checkpoints" / "position.pt").exists()
        stop = cnnlab("stop", str(run_dir), runs=runs)
        assert stop.returncode == 0, stop.stderr
    finally:
        if status(run_dir).get("state") == "running":
            os.kill(pid, 9)
    assert status(run_dir)["state"] == "stopped"
    assert "stop asked by `cnnlab stop`" in " ".join((run_dir / "output.log").read_text().split())


@pytest.mark.slow
def test_a_finished_run_is_trained_on_and_the_config_says_what_became_of_the_schedule(tmp_path):
    runs = tmp_path / "runs"
    exp = tiny_experiment(**{"data.train_subset": 256, "schedule.name": "cosine"})
    done = run_experiment(exp, runs_dir=runs)
    run_dir = done.folder.path
    refused = cnnlab("resume", str(run_dir), runs=runs)
    assert refused.returncode == 2 and "--epochs 13 trains it on" in refused.stderr
    fewer = cnnlab("resume", str(run_dir), "--epochs", "2", runs=runs)
    assert fewer.returncode == 2 and "has done 3 epochs already" in fewer.stderr

    longer = cnnlab("resume", str(run_dir), "--epochs", "6", runs=runs)
    assert longer.returncode == 0, longer.stdout + longer.stderr
    said = " ".join(longer.stdout.split())
    assert "extended from 3 to 6 epochs: the cosine schedule is recomputed over 6 epochs" in said
    rows = done.folder.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[3]["lr"] > rows[2]["lr"]  # the longer curve: the lr rises again at epoch 4
    doc = tomllib.loads((run_dir / "config.toml").read_text())
    assert doc["train"]["epochs"] == 6
    [ext] = doc["run"]["extended"]
    assert (ext["from_epochs"], ext["to_epochs"]) == (3, 6) and "recomputed over 6 epochs" in ext["schedule"]
    assert ext["finished_before"]["test_acc"] == done.summary["test_acc"]
    assert done.folder.summary()["epochs_done"] == 6 and status(run_dir)["state"] == "finished"
