"""The trainer on real (tiny) data: it learns, it is reproducible, it stops, resumes, diverges and
fails with messages, and its run folder follows the contract."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.events import EpochFinished, RunDiverged, RunFailed, RunFinished, RunHandle, RunStarted
from engine.runfolder.table import list_runs
from engine.training.checkpoint import load_checkpoint
from engine.training.dry_run import dry_run
from engine.training.trainer import resume_run, run_experiment
from tests.tiny import tiny_experiment

ROOT = Path(__file__).resolve().parents[2]


def run(exp, tmp_path, **kw):
    events = []
    result = run_experiment(exp, runs_dir=tmp_path / "runs", listener=events.append, **kw)
    return result, events


def test_a_tiny_run_learns_and_writes_the_run_folder(tmp_path):
    result, events = run(tiny_experiment(), tmp_path)
    assert result.state == "finished", result.message
    rows = result.folder.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_acc"] > 0.3  # ten classes: chance is 0.1
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert sum(isinstance(e, EpochFinished) for e in events) == 3
    folder = result.folder.path
    for name in (
        "config.toml",
        "metrics.jsonl",
        "status.json",
        "summary.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (folder / name).exists(), name
    summary = json.loads((folder / "summary.json").read_text())
    assert 0 <= summary["test_acc"] <= 1
    assert len(summary["per_class_acc"]) == 10 and len(summary["confusion"]) == 10
    assert sum(map(sum, summary["confusion"])) > 0
    assert json.loads((folder / "status.json").read_text())["state"] == "finished"
    ckpt = load_checkpoint(folder / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 3 and set(ckpt) >= {"model", "optimizer", "scheduler", "scaler", "rng", "best"}


def test_same_seed_same_metrics_on_cpu(tmp_path):
    exp = tiny_experiment(**{"train.epochs": 1, "data.train_subset": 256})
    a = run(exp, tmp_path / "a")[0].folder.metrics()
    b = run(exp, tmp_path / "b")[0].folder.metrics()
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]


@pytest.mark.slow
def test_stop_then_resume_continues_the_curve_exactly(tmp_path):
    """Stopping mid-epoch 2 and resuming gives the same curve as an uninterrupted run."""
    exp = tiny_experiment(**{"schedule.name": "cosine", "data.train_subset": 384})
    straight = run(exp, tmp_path / "straight")[0].folder.metrics()

    handle = RunHandle()
    batches = []

    def listener(ev):
        if isinstance(ev, EpochFinished) and ev.metrics["epoch"] == 1:
            batches.append("epoch1")
        if batches and type(ev).__name__ == "BatchProgress" and ev.epoch == 2:
            handle.stop()

    first = run_experiment(exp, runs_dir=tmp_path / "runs", listener=listener, handle=handle)
    assert first.state == "stopped"
    assert [r["epoch"] for r in first.folder.metrics()] == [1]
    events = []
    again = resume_run(first.folder.path, listener=events.append)
    assert again.state == "finished", again.message
    resumed = again.folder.metrics()
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    for a, b in zip(straight, resumed, strict=True):
        assert a["lr"] == pytest.approx(b["lr"])
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_acc"] == pytest.approx(b["val_acc"])
    started = events[0]
    assert isinstance(started, RunStarted) and started.start_epoch == 1 and len(started.history) == 1


@pytest.mark.slow
def test_kill_9_mid_epoch_leaves_a_folder_that_reads_and_resumes(tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "CNNLAB_RUNS": str(runs), "OMP_NUM_THREADS": "1"}
    cfg = tmp_path / "exp.toml"
    tiny_experiment(
        **{"data.train_subset": 2048, "train.epochs": 4, "train.batch_size": 32, "schedule.name": "linear"}
    ).save(cfg)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", str(cfg), "--runs-dir", str(runs)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    folder = None
    while time.time() < deadline:
        found = list_runs(runs)
        if found and found[0].epochs_done >= 1:
            folder = found[0].path
            status = json.loads((folder / "status.json").read_text())
            if status.get("progress", {}).get("epoch", 0) >= 2 or found[0].epochs_done >= 1:
                break
        time.sleep(0.05)
    assert folder is not None, "the run never finished an epoch"
    time.sleep(0.3)  # into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    info = list_runs(runs)[0]
    assert info.state == "crashed" and info.resumable
    done = info.epochs_done
    result = resume_run(folder)
    assert result.state == "finished", result.message
    rows = result.folder.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]  # each epoch once
    # The linear schedule continues where it stopped: lr falls epoch by epoch across the resume.
    lrs = [r["lr"] for r in rows]
    assert lrs == sorted(lrs, reverse=True) and len(set(lrs)) == 4
    assert done >= 1


def test_a_nan_loss_ends_the_run_as_diverged_keeping_the_last_good_checkpoint(tmp_path, monkeypatch):
    import torch.nn.functional as F

    real = F.cross_entropy
    calls = {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        out = real(*a, **k)
        # From the 12th training batch on (inside epoch 2), the loss is NaN.
        return out * float("nan") if calls["n"] > 12 and out.requires_grad else out

    monkeypatch.setattr(F, "cross_entropy", poisoned)
    result, events = run(tiny_experiment(**{"train.epochs": 3}), tmp_path)
    assert result.state == "diverged"
    assert isinstance(events[-1], RunDiverged) and "nan" in events[-1].message.lower()
    assert "optim.lr" in events[-1].message
    ckpt = load_checkpoint(result.folder.checkpoints / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert result.folder.status()["state"] == "diverged"


@pytest.mark.slow
def test_lr_too_high_really_diverges(tmp_path):
    exp = tiny_experiment(**{"optim.lr": 10.0, "model.arch": "alexnet32", "train.epochs": 2, "data.train_subset": 256})
    result, events = run(exp, tmp_path)
    assert result.state == "diverged", [r for r in result.folder.metrics()]


def test_missing_dataset_fails_with_a_message_naming_the_path(tmp_path):
    exp = tiny_experiment(**{"data.dataset": "cifar10", "data.root": str(tmp_path / "nowhere")})
    result, events = run(exp, tmp_path)
    assert result.state == "failed"
    assert isinstance(events[-1], RunFailed) and str(tmp_path / "nowhere") in events[-1].message
    assert "Traceback" not in events[-1].message


def test_head_only_phase_freezes_the_body(tmp_path):
    exp = tiny_experiment(
        **{
            "train.epochs": 2,
            "train.phases": [{"epochs": 1, "train": "head", "lr": 0.05}, {"epochs": 1, "train": "all", "lr": 0.01}],
        }
    )
    snapshots = {}

    def listener(ev):
        if isinstance(ev, RunStarted):
            snapshots["folder"] = Path(ev.run_dir)
        if isinstance(ev, EpochFinished):
            snapshots[ev.metrics["epoch"]] = load_checkpoint(snapshots["folder"] / "checkpoints" / "last.pt")["model"]

    torch.manual_seed(0)
    result = run_experiment(exp, runs_dir=tmp_path / "runs", listener=listener)
    assert result.state == "finished", result.message
    from engine.models import build_model

    torch.manual_seed(exp.train.seed)
    init = build_model(exp.model, 10, 32).state_dict()
    after1, after2 = snapshots[1], snapshots[2]
    body = [k for k in init if not k.startswith("head") and k.endswith("weight") and "num_batches" not in k]
    head = [k for k in init if k.startswith("head") and k.endswith("weight")]
    assert body and head
    assert all(torch.equal(init[k], after1[k]) for k in body if init[k].dim() > 1)
    assert any(not torch.equal(init[k], after1[k]) for k in head)
    assert any(not torch.equal(after1[k], after2[k]) for k in body if init[k].dim() > 1)
    rows = result.folder.metrics()
    assert (
        [r["phase"] for r in rows] == [1, 2]
        and rows[0]["lr"] == pytest.approx(0.05)
        and rows[1]["lr"] == pytest.approx(0.01)
    )


def test_early_stop(tmp_path):
    exp = tiny_experiment(**{"train.epochs": 6, "train.early_stop": 1, "optim.lr": 1e-6, "data.train_subset": 256})
    result, events = run(exp, tmp_path)
    assert result.state == "finished"
    assert len(result.folder.metrics()) < 6


def test_dry_run_needs_no_data(tmp_path):
    exp = tiny_experiment(
        **{"data.dataset": "cifar100", "data.root": str(tmp_path / "none"), "model.arch": "mobilenet"}
    )
    info = dry_run(exp)
    assert info["output_shape"] == [2, 100] and info["params"] > 1_000_000
    assert info["weights"] == "none"


def test_dry_run_of_the_pretrained_resnet50_fetches_nothing_and_says_where_the_weights_are(tmp_path, monkeypatch):
    """`cnnlab run resnet50-pretrained-cifar100 --dry-run` offline, with an empty torch hub folder."""
    import torch.hub

    from engine.experiment.presets import get_preset

    def no_network(*args, **kwargs):
        raise AssertionError("a dry run must not download anything")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    exp = get_preset("resnet50-pretrained-cifar100").experiment
    exp = exp.model_copy(update={"train": exp.train.model_copy(update={"device": "cpu"})})
    info = dry_run(exp)
    assert info["output_shape"] == [2, 100] and info["params"] == 23_712_932
    weights_file = tmp_path / "torch-home" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert str(weights_file) in info["weights"] and "fetches them" in info["weights"]

    weights_file.parent.mkdir(parents=True)
    weights_file.write_bytes(b"")  # present: a dry run says so, and still reads nothing
    assert dry_run(exp)["weights"] == f"ImageNet weights (torchvision IMAGENET1K_V2) present at {weights_file}"


def _write_shapes_as_png_folder(root: Path, per_class: int) -> None:
    """Real image files in the `folder` layout (train/<class>/*.png, test/<class>/*.png)."""
    from PIL import Image

    from engine.data.splits import load_splits
    from engine.experiment.config import DataConfig

    splits = load_splits(DataConfig(dataset="shapes", val_split=0, cache=False))
    for split, data, n in (("train", splits.train, per_class), ("test", splits.test, per_class // 4)):
        counts = {}
        for img, label in zip(data.images, data.labels.tolist(), strict=True):
            if counts.get(label, 0) >= n:
                continue
            counts[label] = counts.get(label, 0) + 1
            folder = root / split / splits.class_names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{counts[label]:04d}.png")


@pytest.mark.slow
def test_a_folder_dataset_of_real_images_learns(tmp_path):
    _write_shapes_as_png_folder(tmp_path / "images", per_class=80)
    exp = tiny_experiment(
        **{
            "data.dataset": "folder",
            "data.root": str(tmp_path / "images"),
            "data.train_subset": None,
            "data.val_split": 0.2,
            "train.epochs": 6,
            "train.batch_size": 32,
            "augment.hflip": True,
        }
    )
    result, _ = run(exp, tmp_path)
    assert result.state == "finished", result.message
    assert result.summary["class_names"][0] == "bars"  # sorted folder names, like ImageFolder
    assert result.folder.metrics()[-1]["val_acc"] > 0.4
    assert result.summary["test_acc"] > 0.4


@pytest.mark.parametrize(
    "fast",
    [
        {},  # the default (auto): channels_last on the CPU, bf16 only where the CPU has it
        {"train.precision": "bf16", "train.channels_last": "on"},  # the fast path of a bf16 CPU, emulated here
    ],
    ids=["default", "bf16-channels-last"],
)
@pytest.mark.slow
def test_the_fast_path_learns_as_plain_fp32_does(tmp_path, fast):
    """Same seed, same data: the default runtime and bf16 autocast land within noise of fp32 in NCHW."""
    # Five epochs, not TINY's three: after three, val accuracy sits near 0.3 and the threshold
    # below tells nothing about learning (it hung on thread-count rounding on some CPUs).
    longer = {"train.epochs": 5}
    fp32 = run(tiny_experiment(**{"train.precision": "fp32", "train.channels_last": "off", **longer}), tmp_path / "a")[
        0
    ]
    other = run(tiny_experiment(**fast, **longer), tmp_path / "b")[0]
    assert other.state == fp32.state == "finished"
    a, b = fp32.folder.metrics()[-1], other.folder.metrics()[-1]
    assert a["val_acc"] > 0.3 and b["val_acc"] > 0.3
    assert abs(a["val_acc"] - b["val_acc"]) < 0.15
