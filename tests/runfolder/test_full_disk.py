"""Out of space, read-only, a path under a file: a message that says so, the run marked, no temporary
file left behind, and every checkpoint written before intact.

The real thing needs a small file system: where this test may mount a tmpfs (root, as in a
container) it fills a real one; elsewhere those tests skip and the simulated full disk below (torch's
own way of failing a write, reproduced) still runs.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.events import EpochFinished
from engine.runfolder.folder import RunFolder
from engine.runfolder.table import list_runs
from engine.training.checkpoint import load_checkpoint
from engine.training.trainer import resume_run, run_experiment
from tests.tiny import tiny_experiment, tiny_sets


def _mount(where: Path, *options: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs a small tmpfs, which only root may mount")
    where.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)], capture_output=True)
    if p.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MB file system: room for a tiny run's first checkpoints, and then none."""
    disk = tmp_path / "disk"
    _mount(disk, "size=32m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> None:
    """Take every free byte of the disk."""
    block = b"\0" * (1 << 20)
    with open(disk / "filler", "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(block[:size])
            except OSError as err:
                assert err.errno == errno.ENOSPC


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp"))


def assert_epoch_one_kept(folder: RunFolder) -> None:
    for name in ("last.pt", "best.pt"):
        assert load_checkpoint(folder.checkpoints / name)["epoch"] == 1


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_fails_the_run_saying_so(small_disk):
    runs = small_disk / "runs"

    def fill_after_epoch_one(event):
        if isinstance(event, EpochFinished) and event.metrics["epoch"] == 1:
            fill(small_disk)

    result = run_experiment(tiny_experiment(**{"train.epochs": 3}), runs_dir=runs, listener=fill_after_epoch_one)
    assert result.state == "failed" and not result.bad_input
    assert result.message.startswith(f"no space left on {result.folder.path}")
    status = json.loads((result.folder.path / "status.json").read_text())
    assert status["state"] == "failed" and status["message"] == result.message  # marked, on a full disk
    assert leftovers(runs) == [] and not (result.folder.path / "error.log").exists()
    assert_epoch_one_kept(result.folder)
    # Epoch 2's metrics line may have fitted in a block the file had; its checkpoint did not: not done.
    assert [r["epoch"] for r in result.folder.metrics()][:1] == [1]
    [info] = list_runs(runs)
    assert info.state == "failed" and info.epochs_done == 1 and info.resumable

    # Resumed while the disk is still full: it fails again, saying so, and leaves no temporary status.
    again = resume_run(result.folder.path)
    assert again.state == "failed" and "no space left" in again.message
    assert leftovers(runs) == []
    assert_epoch_one_kept(result.folder)

    # Space freed: the resume finishes, each epoch once.
    (small_disk / "filler").unlink()
    done = resume_run(result.folder.path)
    assert done.state == "finished" and [r["epoch"] for r in done.folder.metrics()] == [1, 2, 3]
    assert leftovers(runs) == []


def test_cnnlab_run_on_a_full_disk_exits_1_with_the_reason(small_disk, capsys):
    fill(small_disk)
    code = main(["run", "shapes-demo", *tiny_sets(), "--runs-dir", str(small_disk / "runs")])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "no space left on" in out + err and "Traceback" not in out + err
    assert leftovers(small_disk) == []


def test_a_read_only_runs_folder_is_bad_input(tmp_path, capsys):
    disk = tmp_path / "ro"
    _mount(disk, "size=1m", "ro")
    try:
        code = main(["run", "shapes-demo", "--runs-dir", str(disk / "runs")])
        err = capsys.readouterr().err
        assert code == 2 and "read-only file system" in err and "Traceback" not in err
        assert main(["runs", "--runs-dir", str(disk)]) == 0
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# --- simulated, wherever the suite runs ---------------------------------------------------------------


def test_a_checkpoint_write_that_runs_out_of_space_says_so_everywhere(tmp_path, monkeypatch):
    """torch.save fails a full disk's write as "[enforce fail at inline_container.cc] unexpected pos",
    with the OSError only as its context: reproduced here, from epoch 2's checkpoint on."""
    import engine.training.checkpoint as ckpt

    real_save = torch.save
    calls = {"n": 0}

    def save(state, f):
        calls["n"] += 1
        if state.get("epoch", 0) < 2:
            return real_save(state, f)
        f.write(b"PK\x03\x04 half a checkpoint")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    monkeypatch.setattr(ckpt.torch, "save", save)
    result = run_experiment(tiny_experiment(**{"train.epochs": 3}), runs_dir=tmp_path / "runs")
    assert result.state == "failed"
    assert result.message.startswith(f"no space left on {result.folder.checkpoints}"), result.message
    assert "enforce fail" not in result.message
    assert leftovers(tmp_path) == []
    assert_epoch_one_kept(result.folder)
    assert RunFolder(result.folder.path).status()["state"] == "failed"


def test_a_status_write_that_fails_leaves_no_temporary_file(tmp_path, monkeypatch):
    import engine.runfolder.folder as runs_module

    folder = RunFolder.create(tmp_path / "runs", tiny_experiment(), preset="shapes-demo")
    real_replace = os.replace

    def replace(src, dst):
        raise OSError(errno.EIO, "Input/output error", str(dst))

    monkeypatch.setattr(runs_module.os, "replace", replace)
    with pytest.raises(OSError):
        folder.write_status("running")
    monkeypatch.setattr(runs_module.os, "replace", real_replace)
    assert leftovers(tmp_path) == [] and folder.status()["state"] == "created"
