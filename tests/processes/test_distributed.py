"""One run over two processes on the CPU: torchrun, gloo, DistributedDataParallel, a thread per rank.

Two ranks with a global batch B learn what one process with batch B learns (to float tolerance, for a
model with no BatchNorm or dropout at work: a head-only phase, whose frozen body keeps its BatchNorm in
eval mode), and every rank ends with the same weights; `cnnlab run --set train.devices=2` learns as well
as one process, is stopped inside an epoch by `cnnlab stop` and resumed, one metrics line per epoch; a
rank killed mid-run ends the run as failed within seconds, resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.experiment.errors import ConfigError
from engine.export.csv_rows import write_csv
from engine.export.records import read_record
from engine.runfolder.folder import RunFolder
from engine.runfolder.table import read_run
from engine.training.trainer import run_experiment
from tests.child_processes import ROOT, cnnlab, env, kill, progress, start, status, wait_for
from tests.tiny import TINY, tiny_experiment
from tui.widgets.device_panel import recorded_text

FIXED = {"train.precision": "fp32", "train.channels_last": "on", "train.threads": 1}  # no probe; a thread each


def test_the_global_batch_must_split_evenly_over_the_devices():
    with pytest.raises(ConfigError, match="train.batch_size.*3 devices"):
        tiny_experiment(**{"train.devices": 3})  # a batch of 64
    bench = cnnlab("bench", "--devices", "1", runs=Path("."))
    assert bench.returncode == 2 and "2 or more" in bench.stderr


def two_ranks(script_args: list[str], runs: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *script_args]
    return subprocess.run(argv, cwd=ROOT, env=env(runs), capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_two_ranks_equal_one_process_with_the_same_global_batch(tmp_path):
    head_only = [{"epochs": 2, "train": "head", "lr": 0.1}]
    exp = tiny_experiment(**FIXED, **{"train.epochs": 2, "train.phases": head_only})
    one = run_experiment(exp, runs_dir=tmp_path / "one")
    assert one.state == "finished", one.message
    exp.save(tmp_path / "exp.toml")
    (tmp_path / "out").mkdir()
    ran = two_ranks(
        ["tests/ddp_rank.py", str(tmp_path / "exp.toml"), str(tmp_path / "two"), str(tmp_path / "out")],
        tmp_path / "two",
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    digests = {(tmp_path / "out" / f"rank{r}.txt").read_text() for r in (0, 1)}
    assert len(digests) == 1 and digests.pop().startswith("finished "), "the ranks ended with different weights"

    two = next((tmp_path / "two").glob("*ddp*"))
    rows_one, rows_two = one.folder.metrics(), RunFolder(two).metrics()
    assert [r["epoch"] for r in rows_two] == [1, 2]
    for a, b in zip(rows_one, rows_two, strict=True):
        for key in ("train_loss", "val_loss", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
        assert b["val_acc"] == pytest.approx(a["val_acc"], abs=1.5 / 160)  # one image either way
        assert b["train_acc"] == pytest.approx(a["train_acc"], abs=1.5 / 480)
    s1, s2 = one.folder.summary(), RunFolder(two).summary()
    assert s2["test_images"] == s1["test_images"]  # every test image, once, in the confusion matrix
    assert sum(map(sum, s2["confusion"])) == s1["test_images"]
    assert s2["test_acc"] == pytest.approx(s1["test_acc"], abs=2.5 / s1["test_images"])
    assert RunFolder(two).status()["world_size"] == 2
    # every rank's peak memory, each epoch: the run screen's device line and the exports show it per rank
    for row in rows_two:
        peaks = row["peak_memory_mb_ranks"]
        assert len(peaks) == 2 and all(p > 0 for p in peaks) and row["peak_memory_mb"] == peaks[0]
    assert recorded_text("cpu", rows_two).plain.startswith("cpu · peak memory per rank ")
    header = write_csv([read_record(two)], tmp_path / "runs.csv").read_text().splitlines()[0].split(",")
    assert {"peak_memory_mb_rank0", "peak_memory_mb_rank1"} <= set(header)


@pytest.mark.slow
def test_two_devices_stop_inside_an_epoch_resume_and_learn_as_one(tmp_path):
    # Five epochs: at three, one process's val accuracy was still 0.36 on one CPU and 0.52 on two ranks
    # (the climb from chance starts at epoch 3 here), too early to compare how far each learned.
    learn = {**FIXED, "data.train_subset": 1280, "train.batch_size": 16, "train.epochs": 5, "optim.lr": 0.02}
    learn.update({"augment.hflip": True, "augment.crop_padding": 2})  # each rank its own draws
    one = run_experiment(tiny_experiment(**learn), runs_dir=tmp_path / "one")
    assert one.state == "finished", one.message
    sets = [a for k, v in {**TINY, **learn, "train.devices": 2}.items() for a in ("--set", f"{k}={v}")]
    # SyncBatchNorm is CUDA's: asked for on a CPU, the run says so and trains on
    straight = cnnlab("run", "shapes-demo", *sets, "--set", "train.sync_bn=true", runs=tmp_path / "straight")
    assert straight.returncode == 0, straight.stdout + straight.stderr
    assert "SyncBatchNorm is not available on a CPU" in straight.stdout + straight.stderr
    straight_rows = RunFolder(Path(straight.stdout.split()[-1])).metrics()

    runs = tmp_path / "runs"
    proc = start("run", "shapes-demo", *sets, runs=runs)
    try:
        path = wait_for(lambda: next((p for p in runs.glob("*") if progress(p).get("batch")), None), "a batch", proc)
        assert cnnlab("pause", str(path), runs=runs).returncode == 0  # lands between two batches
        stopped = cnnlab("stop", str(path), runs=runs)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert proc.wait(timeout=60) == 130
    finally:
        kill(proc)
    st = status(path)
    assert st["state"] == "stopped" and st["world_size"] == 2
    assert st["position"]["batch"] > 0, st["message"]  # inside the epoch, its place saved
    assert (path / "checkpoints" / "position.pt").exists()

    resumed = cnnlab("resume", str(path), runs=runs, timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = RunFolder(path).metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    for a, b in zip(rows, straight_rows, strict=True):  # every rank's sums and draws went on where they were
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert a[key] == pytest.approx(b[key], abs=1e-4), (a["epoch"], key)
    val_two, val_one = rows[-1]["val_acc"], one.folder.metrics()[-1]["val_acc"]
    assert val_one > 0.4 and abs(val_two - val_one) < 0.15, (val_one, val_two)


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(c) for c in text.split()]


@pytest.mark.slow
def test_a_rank_killed_mid_run_fails_the_run_within_seconds_resumable(tmp_path):
    runs = tmp_path / "runs"
    long = {**TINY, **FIXED, "train.epochs": 50, "train.batch_size": 16, "train.devices": 2}
    sets = [a for k, v in long.items() for a in ("--set", f"{k}={v}")]
    detached = cnnlab("run", "shapes-demo", *sets, "--detach", runs=runs)  # as the console starts it
    assert detached.returncode == 0, detached.stdout + detached.stderr
    path = Path(detached.stdout.split()[-1])
    wait_for(lambda: progress(path).get("epoch", 0) >= 2, "a finished epoch")
    st = status(path)
    launcher = st["launcher_pid"]
    rank1 = next(p for p in _children(launcher) if p != st["pid"])
    os.kill(rank1, signal.SIGKILL)
    t0 = time.monotonic()
    try:
        wait_for(lambda: status(path)["state"] == "failed", "the run to fail", timeout=30)
        took = time.monotonic() - t0
        wait_for(lambda: not Path(f"/proc/{launcher}").exists(), "torchrun to end", timeout=60)
    finally:
        for pid in (launcher, st["pid"]):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert took < 10, f"{took:.1f} s to notice a lost rank"
    st = status(path)
    assert "lost" in st["message"] and "resume" in st["message"], st["message"]
    info = read_run(path)
    assert info.resumable and info.epochs_done >= 1
