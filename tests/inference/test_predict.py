"""`cnnlab predict`: the run's model on image files gives what the run's own evaluation gives on
the same images; --json's shape, top-K order, damaged files and missing checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.cli import main
from engine.compute.device import select_runtime
from engine.data.augment import BatchAugment
from engine.data.splits import Split, load_splits
from engine.inference.images import read_image
from engine.inference.predict import top_k
from engine.inference.preprocessing import Preprocessing
from engine.models import build_model
from engine.runfolder.folder import RunFolder
from engine.training.checkpoint import load_checkpoint
from engine.training.predict import predict
from tests.inference.conftest import save_png

FEW = 24


def predict_json(capsys, *args: str) -> list[dict]:
    code = main(["predict", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def training_predictions(run: Path, which: str, split: Split) -> torch.Tensor:
    """What engine.training.predict (the run's validation and test pass) predicts for `split`."""
    exp = RunFolder(run).experiment()
    rt = select_runtime(exp.train)
    splits = load_splits(exp.data)
    images = splits.train.images
    model = build_model(exp.model, splits.num_classes, images.shape[-1], images.shape[1])
    model = model.to(rt.device, memory_format=rt.memory_format)
    model.load_state_dict(load_checkpoint(run / "checkpoints" / f"{which}.pt", rt.device)["model"])
    _, _, preds = predict(model, rt.hold(split), BatchAugment(exp.augment, splits.mean, splits.std), rt)
    return preds.cpu()


def test_predict_gives_the_runs_own_predictions_on_its_test_images(trained_run, capsys, tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    for i in range(FEW):
        shutil.copy(trained_run.images / f"test-{i:04d}.png", few)
    got = predict_json(capsys, trained_run.path, few, "--top", "1")
    assert [Path(p["path"]).name for p in got] == [f"test-{i:04d}.png" for i in range(FEW)]  # sorted, all
    reference = training_predictions(
        trained_run.path, "best", Split(trained_run.test.images[:FEW], trained_run.test.labels[:FEW])
    )
    assert [p["top"][0]["index"] for p in got] == reference.tolist()


def test_without_its_dataset_the_run_predicts_from_the_preprocessing_it_recorded(
    trained_run, capsys, tmp_path, monkeypatch
):
    """A run is used where its dataset is not: the trainer kept what its images went through."""
    import engine.inference.preprocessing as preprocessing
    from engine.data.splits import DatasetMissing

    few = tmp_path / "few"
    few.mkdir()
    for i in range(FEW):
        shutil.copy(trained_run.images / f"test-{i:04d}.png", few)
    here = predict_json(capsys, trained_run.path, few, "--top", "3")
    recorded = RunFolder(trained_run.path).preprocessing()
    assert recorded is not None and recorded["channels"] == 3 and len(recorded["class_names"]) == 10

    def missing(cfg):
        raise DatasetMissing("the dataset is not on this machine")

    monkeypatch.setattr(preprocessing, "load_splits", missing)
    assert predict_json(capsys, trained_run.path, few, "--top", "3") == here
    (trained_run.path / "preprocessing.json").rename(tmp_path / "kept.json")  # shapes' stats come from its images
    try:
        assert main(["predict", str(trained_run.path), str(few)]) == 2
        assert "cannot be known without its dataset" in capsys.readouterr().err
    finally:
        (tmp_path / "kept.json").rename(trained_run.path / "preprocessing.json")


def test_predict_on_the_whole_test_set_scores_the_runs_test_accuracy(trained_run, capsys):
    summary = RunFolder(trained_run.path).summary()
    got = predict_json(capsys, trained_run.path, trained_run.images, "--checkpoint", summary["test_checkpoint"])
    assert len(got) == len(trained_run.test)
    labels = trained_run.test.labels.tolist()
    right = sum(p["top"][0]["index"] == label for p, label in zip(got, labels, strict=True))
    assert right / len(labels) == pytest.approx(summary["test_acc"], abs=1e-9)


def test_json_is_the_top_k_classes_by_name_most_probable_first(trained_run, capsys):
    [one] = predict_json(capsys, trained_run.path, trained_run.images / "test-0003.png", "--top", "4")
    names = RunFolder(trained_run.path).summary()["class_names"]
    assert set(one) == {"path", "top"} and one["path"].endswith("test-0003.png")
    top = one["top"]
    assert len(top) == 4 and all(set(g) == {"class", "index", "probability"} for g in top)
    assert [g["class"] for g in top] == [names[g["index"]] for g in top]
    probs = [g["probability"] for g in top]
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
    assert sum(probs) <= 1 + 1e-6 and len({g["index"] for g in top}) == 4
    # all ten classes: a whole distribution
    [every] = predict_json(capsys, trained_run.path, trained_run.images / "test-0003.png", "--top", "50")
    assert len(every["top"]) == 10 and sum(g["probability"] for g in every["top"]) == pytest.approx(1, abs=1e-5)


def test_the_text_output_is_a_line_per_image(trained_run, capsys):
    files = [trained_run.images / f"test-{i:04d}.png" for i in (5, 1)]
    assert main(["predict", str(trained_run.path), *map(str, files), "--top", "2"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(files[0])) and lines[1].startswith(str(files[1]))
    assert all(line.count("%") == 2 for line in lines)
    assert "best.pt" in err


def test_a_damaged_image_is_named_and_the_others_are_predicted(trained_run, capsys, tmp_path):
    folder = tmp_path / "mixed" / "deeper"
    folder.mkdir(parents=True)
    shutil.copy(trained_run.images / "test-0000.png", folder / "a.png")
    shutil.copy(trained_run.images / "test-0001.png", tmp_path / "mixed" / "b.png")
    good = (trained_run.images / "test-0002.png").read_bytes()
    (folder / "broken.png").write_bytes(good[: len(good) // 2])  # cut in half
    (folder / "notes.png").write_text("not an image at all")
    code = main(["predict", str(trained_run.path), str(tmp_path / "mixed"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err
    assert [Path(p["path"]).name for p in json.loads(out)] == ["b.png", "a.png"]  # b.png sorts before deeper/
    skipped = [line for line in err.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 2 and "broken.png" in skipped[0] and "notes.png" in skipped[1]


def test_when_no_image_reads_it_exits_2_naming_each(trained_run, capsys, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    code = main(["predict", str(trained_run.path), str(tmp_path / "bad.jpg"), str(tmp_path / "missing.png")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    assert "bad.jpg" in err and "missing.png: no such file or folder" in err and "no image could be read" in err


def test_a_missing_checkpoint_names_it_and_what_the_run_has(copy_run, trained_run, capsys):
    (copy_run / "checkpoints" / "best.pt").unlink()
    code = main(["predict", str(copy_run), str(trained_run.images / "test-0000.png")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "no best.pt in" in err and "last.pt" in err and "--checkpoint last" in err
    assert main(["predict", str(copy_run), str(trained_run.images / "test-0000.png"), "--checkpoint", "last"]) == 0


def test_bad_input_is_one_message_and_exit_2(trained_run, capsys, tmp_path):
    image = str(trained_run.images / "test-0000.png")
    assert main(["predict", str(tmp_path), image]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["predict", str(trained_run.path), image, "--top", "0"]) == 2
    assert "--top 0" in capsys.readouterr().err


# --- reading and ranking, without a model -----------------------------------------------------------


def test_images_take_the_runs_channels_and_size(tmp_path):
    Image.new("L", (50, 40), 200).save(tmp_path / "grey.png")
    Image.new("RGB", (32, 32), (255, 0, 0)).save(tmp_path / "red.png")
    rgb = Preprocessing(32, 3, (0.5,) * 3, (0.25,) * 3, ("a", "b"))
    grey = Preprocessing(28, 1, (0.5,), (0.25,), ("a", "b"))
    as_rgb = read_image(tmp_path / "grey.png", rgb)
    assert as_rgb.shape == (3, 32, 32) and as_rgb.dtype == torch.uint8 and as_rgb.unique().tolist() == [200]
    as_grey = read_image(tmp_path / "red.png", grey)
    assert as_grey.shape == (1, 28, 28) and as_grey.unique().tolist() == [76]  # ITU-R 601: 0.299 * 255
    pixels = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    save_png(pixels, tmp_path / "same.png")
    assert torch.equal(read_image(tmp_path / "same.png", rgb), pixels)  # at the run's size: untouched


def test_top_k_is_most_probable_first_ties_by_index():
    probs = torch.tensor([[0.1, 0.4, 0.1, 0.4], [0.7, 0.1, 0.1, 0.1]])
    rows = top_k(probs, 3, ("w", "x", "y", "z"))
    assert [[(g.name, g.index) for g in row] for row in rows] == [
        [("x", 1), ("z", 3), ("w", 0)],
        [("w", 0), ("x", 1), ("y", 2)],
    ]
    assert len(top_k(probs, 99, ("w", "x", "y", "z"))[0]) == 4
