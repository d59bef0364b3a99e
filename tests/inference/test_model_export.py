"""`cnnlab export --format onnx|torchscript`: the exported model answers as the torch model does on
the run's test images, its preprocessing is written beside it, and a folder that cannot take it
(read-only, missing, full) is one line with nothing left behind."""

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
from engine.inference import model_export, onnx_export
from engine.inference.trained import load_trained

pytestmark = pytest.mark.slow  # the exporters trace the model: seconds each


def export(capsys, run: Path, fmt: str, out: Path, *more: str) -> tuple[int, str, str]:
    code = main(["export", str(run), "--format", fmt, "--out", str(out), *more])
    o, e = capsys.readouterr()
    return code, o, e


def reference(run: Path, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The torch model's inputs and logits for uint8 images, on the CPU in fp32 (what was exported)."""
    trained = load_trained(run, "best", cpu=True)
    x = trained.augment.eval(images)
    with torch.no_grad():
        return x, trained.model(x)


def check_sidecar(out: Path, fmt: str, trained_run) -> None:
    doc = json.loads(Path(f"{out}.json").read_text())
    exp_summary = json.loads((trained_run.path / "summary.json").read_text())
    assert doc["format"] == fmt and doc["model"] == out.name and doc["checkpoint"] == "best.pt"
    assert doc["class_names"] == exp_summary["class_names"]
    pre = doc["preprocessing"]
    assert pre["size"] == 32 and pre["channels"] == 3 and pre["color"] == "RGB"
    trained = load_trained(trained_run.path, "best", cpu=True)
    assert pre["mean"] == pytest.approx(list(trained.augment.mean)) and pre["std"] == pytest.approx(
        list(trained.augment.std)
    )
    assert doc["input"]["shape"] == ["batch", 3, 32, 32] and doc["output"]["shape"] == ["batch", 10]


def no_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.skipif(not onnx_export.runtime_available(), reason="onnxruntime is not installed")
def test_onnx_agrees_with_torch_on_the_test_images(trained_run, capsys, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "model.onnx"
    code, o, e = export(capsys, trained_run.path, "onnx", out)
    assert code == 0, e
    assert "checked: same top-1 class as torch on 256 of 256 of the run's test images" in o
    assert no_leftovers(tmp_path) == ["model.onnx", "model.onnx.json"]
    check_sidecar(out, "onnx", trained_run)
    x, logits = reference(trained_run.path, trained_run.test.images)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 7, len(x)):  # the batch axis is dynamic
        got = torch.from_numpy(session.run(["logits"], {"images": x[:n].numpy()})[0])
        assert got.shape == (n, 10)
        assert torch.equal(got.argmax(1), logits[:n].argmax(1))
        assert (got - logits[:n]).abs().max() < 1e-3


def test_torchscript_agrees_with_torch_on_the_test_images(trained_run, capsys, tmp_path):
    out = tmp_path / "model.pt"
    code, o, e = export(capsys, trained_run.path, "torchscript", out, "--checkpoint", "best")
    assert code == 0, e
    assert "checked: same top-1 class as torch on 256 of 256" in o
    assert no_leftovers(tmp_path) == ["model.pt", "model.pt.json"]
    check_sidecar(out, "torchscript", trained_run)
    x, logits = reference(trained_run.path, trained_run.test.images)
    loaded = torch.jit.load(str(out))
    with torch.no_grad():
        for n in (1, 5, len(x)):
            got = loaded(x[:n])
            assert torch.equal(got.argmax(1), logits[:n].argmax(1)) and (got - logits[:n]).abs().max() < 1e-4


def test_without_onnxruntime_the_check_is_skipped_with_a_note(trained_run, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "runtime_available", lambda: False)
    code, o, e = export(capsys, trained_run.path, "onnx", tmp_path / "m.onnx")
    assert code == 0, e
    assert "onnxruntime is not installed" in e and "pip install 'cnnlab[onnx]'" in e and "checked" not in o
    assert no_leftovers(tmp_path) == ["m.onnx", "m.onnx.json"]


def test_without_its_dataset_the_check_uses_random_images(copy_run, tmp_path, monkeypatch):
    import tomllib

    import tomli_w

    from engine.data.splits import DatasetMissing
    from engine.inference import preprocessing
    from engine.inference.errors import InferenceError

    def missing(cfg):
        raise DatasetMissing("the dataset is not here")

    monkeypatch.setattr(preprocessing, "load_splits", missing)
    # shapes' normalisation is measured on its images: without them, or the record of it the trainer
    # keeps in preprocessing.json, it cannot be known
    (copy_run / "preprocessing.json").unlink()
    with pytest.raises(InferenceError, match="cannot be known without its dataset.*computed from its images"):
        model_export.export_model(copy_run, "torchscript", tmp_path / "m.pt")
    assert no_leftovers(tmp_path) == [copy_run.name]
    config = copy_run / "config.toml"
    doc = tomllib.loads(config.read_text())
    doc["data"]["normalize"] = "none"  # a normalisation the config alone gives
    config.write_text(tomli_w.dumps(doc))
    done = model_export.export_model(copy_run, "torchscript", tmp_path / "m.pt")
    assert done.agreement is not None and done.agreement.agrees and done.agreement.images == 8
    assert "random images" in done.agreement.source
    doc = json.loads((tmp_path / "m.pt.json").read_text())
    assert doc["class_names"][0] == "circle" and doc["preprocessing"]["size"] == 32
    assert doc["preprocessing"]["mean"] == [0.0] * 3 and doc["preprocessing"]["std"] == [1.0] * 3


def test_out_is_required_for_a_model_and_one_run_only(trained_run, capsys):
    assert main(["export", str(trained_run.path), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "--out FILE" in err and "Traceback" not in err
    assert (
        main(["export", str(trained_run.path), str(trained_run.path), "--format", "torchscript", "--out", "x.pt"]) == 2
    )
    assert "one RUN_DIR" in capsys.readouterr().err
    assert main(["export", str(trained_run.path), "--format", "csv", "--checkpoint", "last"]) == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_a_missing_folder_is_one_line_and_nothing_is_made(trained_run, capsys, tmp_path):
    out = tmp_path / "not" / "here" / "model.onnx"
    code, o, e = export(capsys, trained_run.path, "onnx", out)
    assert code == 2 and o == "" and len(e.strip().splitlines()) == 1
    assert "does not exist" in e and str(tmp_path / "not" / "here") in e
    assert no_leftovers(tmp_path) == []


def _mount(where: Path, *options: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only or full file system needs a tmpfs, which only root may mount")
    where.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)], capture_output=True)
    if p.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode().strip()}")


def test_a_read_only_folder_is_one_line_and_nothing_is_left(trained_run, capsys, tmp_path):
    disk = tmp_path / "ro"
    _mount(disk, "size=1m", "ro")
    try:
        for fmt in ("onnx", "torchscript"):
            code, o, e = export(capsys, trained_run.path, fmt, disk / "model.bin")
            assert code == 2 and o == "" and len(e.strip().splitlines()) == 1, e
            assert f"{disk / 'model.bin'} is on a read-only file system" in e
            assert no_leftovers(disk) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_full_disk_is_one_line_exit_1_and_nothing_is_left(trained_run, capsys, tmp_path, fmt):
    disk = tmp_path / "small"
    _mount(disk, "size=64k")
    try:
        with open(disk / "filler", "wb", buffering=0) as f:  # all but a few blocks
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as err:
                assert err.errno == errno.ENOSPC
        (disk / "filler").write_bytes(b"\0" * (os.path.getsize(disk / "filler") - 16384))
        code, o, e = export(capsys, trained_run.path, fmt, disk / "model.bin")
        assert code == 1 and len(e.strip().splitlines()) == 1, e
        assert "no space left on" in e and "Traceback" not in e
        assert no_leftovers(disk) == ["filler"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
