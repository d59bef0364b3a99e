"""What a run gets most wrong: on a model made to confuse two classes, the highest-loss test images
are those of the confused class, sorted by loss, named with their true and predicted classes; the
pairs count them; a run collapsed to one label (report 002's Adam run) reads so at a glance; and a
real run's summary.json carries its top losses for `cnnlab show` and the console."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from engine.cli import main
from engine.compute.device import Runtime
from engine.data.augment import BatchAugment
from engine.evaluation.evaluate import summarise_test
from engine.evaluation.top_losses import image_losses, top_losses
from engine.experiment.config import AugmentConfig
from engine.insight.top_losses_view import mistakes_report, prediction_shares
from tests.fake_runs import summary_of
from tests.tiny import tiny_sets

NAMES = ["cat", "dog", "ship", "frog"]
LEVEL = 40  # class k's images are grey k * LEVEL, plus noise


class ConfusesCatsWithDogs(nn.Module):
    """Reads the class off an image's grey level, then calls every cat a dog: more surely the
    darker the cat, so their losses differ."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean((1, 2, 3)) * 255
        k = (grey / LEVEL).round().long().clamp(0, 3)
        logits = torch.zeros(len(x), 4)
        logits[torch.arange(len(x)), k] = 3.0
        cats = k == 0
        logits[cats, 1] = 4.0 + (LEVEL / 2 - grey[cats]) / 4  # darker cat, surer dog
        return logits


def data(per_class: int = 6):
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(per_class)
    grey = labels[:, None, None, None] * LEVEL + torch.randint(0, 12, (len(labels), 1, 1, 1), generator=gen)
    return grey.expand(-1, 3, 8, 8).to(torch.uint8).contiguous(), labels


def test_the_confused_class_tops_the_losses_sorted_and_named():
    images, labels = data()
    rt = Runtime(torch.device("cpu"), "fp32", False)
    augment = BatchAugment(AugmentConfig(), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    passed = image_losses(ConfusesCatsWithDogs(), (images, labels), augment, rt)
    top = top_losses(passed, labels, images, NAMES, n=10)
    losses = [t["loss"] for t in top]
    assert losses == sorted(losses, reverse=True)
    assert [(t["true"], t["pred"]) for t in top[:6]] == [("cat", "dog")] * 6  # every cat, first
    assert all(t["correct"] for t in top[6:])
    assert all(0.5 < t["prob"] <= 1 and t["true_prob"] < 0.5 for t in top[:6])
    assert top[0]["png"] and top[0]["width"] == 8
    # The loss of the worst is the cross-entropy of its true class: -log p(true).
    assert abs(top[0]["loss"] + torch.log(torch.tensor(top[0]["true_prob"])).item()) < 1e-3
    summary = summarise_test(passed.preds, labels, NAMES, images)
    assert summary["confusion"][0][1] == 6
    text = render(mistakes_report({**summary, "top_losses": top}))
    assert "cat" in text and "dog" in text and "most confused" in text
    pairs_line = next(line for line in text.splitlines() if line.strip().startswith("cat") and "dog" in line)
    assert pairs_line.split()[-1] == "6"


def render(renderable) -> str:
    console = Console(width=100, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_a_collapse_to_one_label_is_obvious():
    collapsed = summary_of(5, collapsed=True)
    assert prediction_shares(collapsed["confusion"], collapsed["class_names"])[0] == ("class3", 1.0)
    text = render(mistakes_report(collapsed))
    assert "collapsed to one class" in text
    assert "predicted most: class3 100%" in text
    pairs = [line.split() for line in text.splitlines() if line.startswith("class") and line.split()[-1] == "10"]
    assert len(pairs) == 8 and all(p[1] == "class3" for p in pairs)  # every confusion ends in the one label


def test_a_run_keeps_its_top_losses_and_show_prints_them(tmp_path, capsys):
    runs = tmp_path / "runs"
    sets = tiny_sets(**{"train.epochs": 1, "data.train_subset": 256, "data.test_split": 0.25})
    assert main(["run", "shapes-demo", *sets, "--runs-dir", str(runs)]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])
    summary = json.loads((folder / "summary.json").read_text())
    top = summary["top_losses"]
    assert len(top) == 16 and [t["loss"] for t in top] == sorted((t["loss"] for t in top), reverse=True)
    assert top[0]["loss"] >= summary["test_loss"]  # the worst image is at least as bad as the mean
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(r["peak_memory_mb"] > 0 for r in rows)  # each epoch's line: the peak device memory
    assert main(["show", str(folder)]) == 0
    shown = capsys.readouterr().out
    assert "highest-loss test images" in shown and "predicted most:" in shown
