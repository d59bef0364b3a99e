"""The learning-rate range test: it trains a copy (the weights and the preset stay as they were),
its suggestion lies inside the range it tried, it stops when the loss explodes, and the CLI draws
the curve, prints `suggested lr: …` and exits 2 with a clear message when the data is missing."""

from __future__ import annotations

import json
import math

import torch

from engine.cli import main
from engine.data.splits import describe
from engine.experiment.overrides import apply_overrides
from engine.experiment.presets import find_preset
from engine.insight.lr_find import lr_at, lr_find, smooth, suggest
from engine.insight.lr_find_text import target_field
from engine.models import build_model
from tests.tiny import tiny_experiment, tiny_sets

SMALL = {"data.train_subset": 256, "train.batch_size": 32}


def test_lrs_rise_exponentially_and_the_ema_is_debiased():
    lrs = [lr_at(i, 5, 1e-4, 1.0) for i in range(5)]
    assert lrs[0] == 1e-4 and math.isclose(lrs[-1], 1.0)
    assert all(math.isclose(b / a, 10.0) for a, b in zip(lrs, lrs[1:], strict=False))
    assert all(math.isclose(s, 2.0) for s in smooth([2.0, 2.0, 2.0]))  # no pull towards 0 at the start


def test_both_rules_point_into_the_fall_of_the_curve():
    # A loss flat at 2.3, falling between lr 1e-4 and 1e-2 (steepest at 1e-3), then exploding.
    lrs = [lr_at(i, 100, 1e-7, 10.0) for i in range(100)]
    loss = [2.3 - math.tanh(2 * (math.log10(x) + 3)) + (5 * x if x > 0.1 else 0) for x in lrs]
    for rule in ("valley", "steepest"):
        lr = suggest(lrs, loss, rule)
        assert 1e-4 < lr < 1e-2, (rule, lr)
    assert math.isclose(math.log10(suggest(lrs, loss, "steepest")), -3, abs_tol=0.15)
    assert suggest(lrs[:5], loss[:5]) is None  # too short to read


def test_the_finder_trains_a_copy_and_suggests_an_lr_it_tried():
    preset = find_preset("shapes-demo")
    before = preset.experiment.model_dump()
    exp = apply_overrides(preset.experiment, {**SMALL, "train.device": "cpu"})
    classes, channels, size = describe(exp.data)
    model = build_model(exp.model, classes, size, channels)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    finding = lr_find(exp, batches=40, model=model)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items()), "the model's weights changed"
    assert find_preset("shapes-demo").experiment.model_dump() == before == preset.experiment.model_dump()
    assert len(finding.lrs) == len(finding.losses) == len(finding.smoothed) >= 30
    assert finding.lrs == sorted(finding.lrs) and finding.lrs[0] == 1e-7
    assert finding.suggestion is not None and finding.lrs[0] <= finding.suggestion <= finding.lrs[-1]
    assert finding.target == "optim.lr"


def test_the_finder_stops_when_the_loss_explodes():
    exp = tiny_experiment(**SMALL, **{"optim.momentum": 0.99})
    finding = lr_find(exp, batches=60, start_lr=1e-3, end_lr=1e4)
    assert finding.stopped_early and ("exploded" in finding.stopped_early or "became" in finding.stopped_early)
    assert len(finding.lrs) < 60


def test_the_suggestion_goes_where_the_schedule_reads_it():
    assert target_field(tiny_experiment()) == "optim.lr"
    assert target_field(tiny_experiment(**{"schedule.name": "onecycle", "schedule.max_lr": 0.1})) == "schedule.max_lr"
    assert target_field(tiny_experiment(**{"schedule.name": "cyclic", "schedule.max_lr": 0.1})) == "schedule.max_lr"


def test_cli_draws_the_curve_and_names_the_rule(capsys):
    code = main(["lr-find", "shapes-demo", *tiny_sets(**SMALL), "--batches", "40"])
    out = capsys.readouterr().out
    assert code == 0
    assert "learning rate (log scale)" in out and "1e-07" in out  # the curve, its log x-axis
    line = next(x for x in out.splitlines() if x.startswith("suggested lr: "))
    assert "valley rule" in line
    assert "use it: --set optim.lr=" in out
    assert main(["lr-find", "shapes-demo", *tiny_sets(**SMALL), "--batches", "30", "--json", "--rule", "steepest"]) == 0
    finding = json.loads(capsys.readouterr().out)
    assert finding["rule"] == "steepest" and finding["lrs"][0] <= finding["suggestion"] <= finding["lrs"][-1]


def test_cli_says_clearly_when_the_data_cannot_be_loaded(tmp_path, capsys):
    code = main(["lr-find", "simplecnn-cifar100", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot load its data" in err and "CIFAR-100 was not found" in err and "Traceback" not in err
    assert main(["lr-find", "shapes-demo", "--batches", "3"]) == 2
    assert "--batches 3" in capsys.readouterr().err
