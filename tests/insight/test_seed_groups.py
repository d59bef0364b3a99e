"""Seed groups: runs that differ only in train.seed are one group with the mean and sample std of
their best validation and test accuracy (checked against the numbers worked out by hand), a mean
curve with its min-max band, and `cnnlab run … --seeds 3` makes one."""

from __future__ import annotations

import math
from pathlib import Path

from engine.cli import main
from engine.insight.seed_groups import band, seed_groups, spread
from engine.runfolder.table import list_runs, read_run
from tests.seed_runs import seed_group_runs, write_run
from tests.tiny import tiny_sets


def test_three_seeds_are_one_group_with_the_mean_and_std_by_hand(tmp_path):
    seed_group_runs(tmp_path)
    groups = seed_groups(list_runs(tmp_path))
    assert len(groups) == 1  # the run with another lr is not in it, and alone it is no group
    g = groups[0]
    assert g.n == 3 and g.seeds == [0, 1, 2]
    # best val 0.5, 0.6, 0.8: mean 1.9 / 3; sample std sqrt(sum of squared deviations / (3 - 1))
    mean = (0.5 + 0.6 + 0.8) / 3
    std = math.sqrt(((0.5 - mean) ** 2 + (0.6 - mean) ** 2 + (0.8 - mean) ** 2) / 2)
    assert math.isclose(g.best_val.mean, 0.633333333, rel_tol=1e-6) and math.isclose(g.best_val.mean, mean)
    assert math.isclose(g.best_val.std, 0.152752523, rel_tol=1e-6) and math.isclose(g.best_val.std, std)
    # test 0.40, 0.55, 0.70: mean 0.55, std 0.15 exactly
    assert math.isclose(g.test.mean, 0.55) and math.isclose(g.test.std, 0.15)
    assert g.best_val.text() == "63.33 ± 15.28%" and g.test.text() == "55.00 ± 15.00%"
    assert "3 seeds (0, 1, 2)" in g.text()


def test_one_value_has_no_spread_and_missing_ones_are_left_out():
    assert spread([0.5, None]).std is None and spread([0.5, None]).n == 1
    assert spread([]).mean is None and spread([]).text() == "-"


def test_runs_with_the_same_seed_are_no_group(tmp_path):
    write_run(tmp_path, "20250122-072031-a-0001", seed=3)
    write_run(tmp_path, "20250122-072032-a-0002", seed=3)
    assert seed_groups(list_runs(tmp_path)) == []


def test_a_seed_trained_twice_counts_once_and_keeps_the_group(tmp_path):
    # newest first, as list_runs gives them: seed 0 again (a sweep trial of the same config, say)
    write_run(tmp_path, "20250122-072031-a-0001", seed=0, best=0.5)
    write_run(tmp_path, "20250122-082031-a-0002", seed=1, best=0.6, started="2025-01-22T08:20:31")
    again = write_run(tmp_path, "20250122-092031-a-0003", seed=0, best=0.7, started="2025-01-22T09:20:31")
    (g,) = seed_groups(list_runs(tmp_path))
    assert g.n == 2 and g.seeds == [0, 1]
    assert str(again) in {str(r.path) for r in g.runs}  # the newest run of seed 0
    assert math.isclose(g.best_val.mean, 0.65)


def test_the_band_is_the_mean_and_min_max_of_each_epoch():
    histories = [
        [{"epoch": 1, "val_acc": 0.2}, {"epoch": 2, "val_acc": 0.5}],
        [{"epoch": 1, "val_acc": 0.4}, {"epoch": 2, "val_acc": 0.7}, {"epoch": 3, "val_acc": 0.9}],
        [{"epoch": 1, "val_acc": 0.3}, {"epoch": 2, "val_acc": None}],
    ]
    b = band(histories, "val_acc")
    assert b.epochs == [1, 2, 3]
    assert [round(m, 6) for m in b.mean] == [0.3, 0.6, 0.9]
    assert b.low == [0.2, 0.5, 0.9] and b.high == [0.4, 0.7, 0.9]


def test_cli_seeds_3_makes_a_group_and_groups_lists_it(tmp_path, capsys):
    runs = tmp_path / "runs"
    sets = tiny_sets(**{"train.epochs": 1, "data.train_subset": 160, "data.test_split": 0.2, "train.seed": 5})
    assert main(["run", "shapes-demo", *sets, "--seeds", "3", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    infos = list_runs(runs)
    assert len(infos) == 3
    assert sorted(i.id.split("-seed")[1][0] for i in infos) == ["5", "6", "7"]
    (g,) = seed_groups(infos)
    assert g.seeds == [5, 6, 7]
    vals = [read_run(Path(i.path)).best_val_acc for i in infos]
    mean = sum(vals) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / 2)
    assert f"best val acc {100 * mean:.2f} ± {100 * std:.2f}%" in out
    assert main(["groups", "--runs-dir", str(runs)]) == 0
    listed = capsys.readouterr().out
    assert "5,6,7" in listed and f"{100 * mean:.2f} ± {100 * std:.2f}%" in listed
    assert main(["run", "shapes-demo", "--seeds", "0", "--runs-dir", str(runs)]) == 2
