"""The evaluation views: confusion matrix and per-class accuracy on cases with a known answer, the
collapse warning (report 002's Adam failure), prediction examples, and `cnnlab show` drawing them."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from engine.cli import main
from engine.evaluation.evaluate import (
    collapse_warning,
    confused_pairs,
    confusion_matrix,
    per_class_accuracy,
    prediction_examples,
    summarise_test,
    worst_classes,
)
from engine.experiment.config import Experiment
from engine.insight import show
from engine.runfolder.folder import RunFolder

NAMES = ["cat", "dog", "frog"]


def text_of(renderable, width=140) -> str:
    console = Console(record=True, width=width, color_system="truecolor")
    console.print(renderable)
    return console.export_text()


def test_confusion_and_per_class_on_a_known_case():
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    preds = [0, 0, 1, 1, 0, 2, 2, 1, 2]
    m = confusion_matrix(preds, labels, 3)
    # rows: true class, columns: predicted
    assert m == [[2, 1, 0], [1, 1, 0], [0, 1, 3]]
    assert per_class_accuracy(m) == pytest.approx([2 / 3, 1 / 2, 3 / 4])
    assert summarise_test(np.array(preds), np.array(labels), NAMES, np.zeros((9, 3, 8, 8), np.uint8))[
        "test_acc"
    ] == pytest.approx(6 / 9)


def test_a_class_without_test_images_has_no_accuracy_and_bad_indices_are_refused():
    m = confusion_matrix([0, 1], [0, 1], 3)
    assert per_class_accuracy(m) == [1.0, 1.0, None]
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError):
        confusion_matrix([0], [0, 1], 3)


def test_worst_classes_and_most_confused_pairs():
    m = [[5, 0, 0], [4, 1, 0], [0, 2, 3]]
    assert worst_classes(m, NAMES, 2) == [("dog", 0.2), ("frog", 0.6)]
    assert confused_pairs(m, NAMES, 5) == [("dog", "cat", 4), ("frog", "dog", 2)]


def test_collapse_warning_fires_on_a_one_class_predictor_and_not_on_a_good_one():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 50)
    names = [f"class{i}" for i in range(10)]
    one_class = np.full_like(labels, 7)
    warning = collapse_warning(confusion_matrix(one_class, labels, 10), names)
    assert warning is not None and "'class7'" in warning and "every test image" in warning and "10.0%" in warning

    nearly = one_class.copy()
    nearly[:40] = labels[:40]  # 92 % of predictions still one class
    assert "92%" in collapse_warning(confusion_matrix(nearly, labels, 10), names)

    good = labels.copy()
    wrong = rng.choice(len(labels), 150, replace=False)
    good[wrong] = rng.integers(0, 10, 150)
    assert collapse_warning(confusion_matrix(good, labels, 10), names) is None


def test_no_collapse_warning_when_the_data_itself_is_one_class():
    labels = np.array([0] * 95 + [1] * 5)
    assert collapse_warning(confusion_matrix(np.zeros(100, int), labels, 2), ["a", "b"]) is None


def test_prediction_examples_are_small_pngs_with_labels_and_a_seeded_draw():
    torch = pytest.importorskip("torch")
    images = torch.randint(0, 256, (40, 3, 64, 64), dtype=torch.uint8)
    labels = torch.arange(40) % 3
    preds = torch.zeros(40, dtype=torch.long)
    ex = prediction_examples(images, labels, preds, NAMES, n=8, seed=1)
    assert len(ex) == 8 and ex == prediction_examples(images, labels, preds, NAMES, n=8, seed=1)
    assert ex != prediction_examples(images, labels, preds, NAMES, n=8, seed=2)
    for e in ex:
        assert e["correct"] == (e["true_index"] == 0) and e["pred"] == "cat" and e["true"] == NAMES[e["true_index"]]
        img = Image.open(io.BytesIO(base64.b64decode(e["png"])))
        assert img.size == (32, 32) == (e["width"], e["height"])
    # a 32x32 image is stored as it is, pixel for pixel
    small = np.arange(3 * 32 * 32, dtype=np.uint8).reshape(1, 3, 32, 32)
    e = prediction_examples(small, [1], [1], NAMES, n=16)[0]
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(e["png"])))).transpose(2, 0, 1)
    assert np.array_equal(back, small[0]) and e["correct"]


def test_summary_is_plain_json_with_every_figure():
    labels = np.repeat(np.arange(3), 4)
    s = summarise_test(np.full(12, 2), labels, NAMES, np.zeros((12, 3, 32, 32), np.uint8))
    assert set(s) >= {"test_acc", "per_class_acc", "confusion", "examples", "collapse_warning", "class_names"}
    assert s["collapse_warning"] and "frog" in s["collapse_warning"]
    assert json.loads(json.dumps(s)) == s


# --- the rich views --------------------------------------------------------------------------------------


def test_render_thumbnail_draws_half_blocks_with_the_pixel_colours():
    img = np.zeros((3, 4, 4), np.uint8)
    img[0, :2] = 255  # top half red, bottom half black
    e = prediction_examples(img[None], [0], [1], NAMES)[0]
    console = Console(record=True, width=40, color_system="truecolor")
    console.print(show.render_thumbnail(e, width=4))
    ansi = console.export_text(clear=False, styles=True)
    out = console.export_text()
    assert out.splitlines() == ["▀▀▀▀", "▀▀▀▀", "✗ dog", "true: cat"]
    assert "38;2;255;0;0;48;2;255;0;0m▀" in ansi  # the red top rows: red above red
    assert "38;2;0;0;0;48;2;0;0;0m▀" in ansi  # the black bottom rows
    assert "31m✗ dog" in ansi  # a wrong prediction in red


def test_tables_per_class_and_confusion_small_and_large():
    labels = np.repeat(np.arange(3), 4)
    preds = labels.copy()
    preds[0] = 1
    s = summarise_test(preds, labels, NAMES, np.zeros((12, 3, 8, 8), np.uint8))
    per_class = text_of(show.per_class_table(s))
    assert "cat" in per_class and "75.00%" in per_class and "100.00%" in per_class and "█" in per_class
    conf = text_of(show.confusion_table(s))
    assert "0 cat" in conf and "true" in conf

    names = [f"c{i}" for i in range(100)]
    labels = np.repeat(np.arange(100), 3)
    preds = labels.copy()
    preds[labels == 42] = 17
    big = summarise_test(preds, labels, names, np.zeros((300, 3, 8, 8), np.uint8))
    out = text_of(show.confusion_table(big))
    assert "worst classes" in out and "most confused" in out and "c42" in out and "c17" in out
    assert len(out.splitlines()) < 40  # not a 100x100 table


def test_reference_table_puts_the_report_beside_the_run():
    from engine.experiment.presets import get_preset

    preset = get_preset("mobilenet-cifar100-mixup")
    metrics = [{"epoch": 1, "train_loss": 3.0, "train_acc": 0.2, "val_loss": 3.1, "val_acc": 0.25}]
    out = text_of(show.reference_table(preset, metrics, {"test_acc": 0.3, "best_val_acc": 0.25, "best_epoch": 1}))
    assert "report @300 ep" in out and "this run @1 ep" in out
    assert "60.03%" in out and "25.00%" in out and "60.69%" in out and "-35.03 pts" in out
    alone = text_of(show.reference_table(None, metrics, {}))
    assert "this run" in alone and "report" not in alone


def _fake_run(runs_dir, preset="alexnet-tinyimage10", collapsed=False):
    exp = Experiment()
    folder = RunFolder.create(runs_dir, exp, preset)
    labels = np.repeat(np.arange(10), 5)
    preds = np.full(50, 3) if collapsed else labels
    names = [f"label{i}" for i in range(10)]
    for e in (1, 2):
        folder.append_metrics(
            {
                "epoch": e,
                "train_loss": 1.0 / e,
                "train_acc": 0.5,
                "val_loss": 1.2,
                "val_acc": 0.4 + 0.1 * e,
                "lr": 0.01,
                "seconds": 1.0,
                "images_per_sec": 100.0,
            }
        )
    summary = {"epochs_done": 2, "seconds": 2.0, "best_val_acc": 0.6, "best_epoch": 2, "test_loss": 1.1}
    summary.update(
        summarise_test(preds, labels, names, np.random.default_rng(0).integers(0, 255, (50, 3, 32, 32), dtype=np.uint8))
    )
    folder.write_summary(summary)
    folder.write_status("finished")
    return folder


def _show(argv, capsys):
    code = main(["show", *argv])
    return code, capsys.readouterr()


def test_cnnlab_show_prints_config_figures_reference_classes_and_examples(tmp_path, capsys):
    folder = _fake_run(tmp_path / "runs")
    code, out = _show([str(folder.path)], capsys)
    assert code == 0, out.err
    text = out.out
    assert "alexnet-tinyimage10" in text and "finished" in text
    assert "report @35 ep" in text and "54.60%" in text  # the report's test accuracy beside this run's
    assert "label9" in text and "accuracy per class" in text and "confusion matrix" in text
    assert "▀" in text and "✓ label" in text
    assert "collapsed" not in text


def test_cnnlab_show_makes_a_collapse_obvious_and_refuses_a_non_run(tmp_path, capsys):
    folder = _fake_run(tmp_path / "runs", collapsed=True)
    code, out = _show([str(folder.path)], capsys)
    assert (
        code == 0 and "collapsed to one class" in " ".join(out.out.split()) and "'label3'" in out.out and "✗" in out.out
    )
    code, out = _show([str(tmp_path)], capsys)
    assert code == 2 and "not a run folder" in " ".join(out.err.split())
    code, out = _show([str(folder.path), "--checkpoint", "best"], capsys)
    assert code == 2 and "no best checkpoint" in " ".join(out.err.split())


def test_cnnlab_show_finds_a_run_by_its_id_in_the_runs_folder(tmp_path, capsys):
    folder = _fake_run(tmp_path / "runs", preset="")
    code, out = _show([folder.id, "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 0 and folder.id in out.out and "report" not in out.out
