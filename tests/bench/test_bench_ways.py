"""`cnnlab bench`'s ways, ceiling and small-batch overhead on tiny settings: pure compute is timed in
exactly the candidates auto's probe weighs, the best of them is the yardstick, FLOPs are counted as by
hand, and a small batch reports its per-step overhead. Nothing here is timed."""

from __future__ import annotations

import io
import json

import pytest
import torch
from rich.console import Console
from torch import nn

from engine.bench import ceiling as bench_ceiling
from engine.bench import machine as bench_machine
from engine.bench import render as bench_render
from engine.bench import targets as bench_targets
from engine.cli import main as cli_main
from engine.compute.device import select_runtime
from engine.models.flops import forward_flops
from engine.training import autotune


def _tiny_bench(capsys, *extra: str) -> dict:
    argv = ["bench", "--model", "simplecnn", "--batch", "4", "--steps", "1", "--repeats", "2", "--warmup", "1"]
    assert cli_main([*argv, *extra, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_pure_compute_in_every_candidate_of_the_probe_and_the_best_of_them(capsys):
    result = _tiny_bench(capsys)
    (row,) = result["models"]
    (target,) = bench_targets.resolve_targets(model="simplecnn", batch=4)
    expected = [c.label for c in autotune.candidates(target.exp, select_runtime(target.exp.train))]
    assert row["candidates"] == expected and not row["failed"]
    assert list(row["pure_ways"]) == expected  # every candidate timed, no other
    assert all(len(s["runs"]) == 2 and s["median"] > 0 for s in row["pure_ways"].values())
    best = max(row["pure_ways"], key=lambda label: row["pure_ways"][label]["median"])
    assert row["pure_best"] == best and row["pure"] == row["pure_ways"][best]
    assert row["engine_vs_pure"] == round(row["engine"]["median"] / row["pure"]["median"], 3)
    # The tests' engine takes the rule (CNNLAB_AUTOTUNE=off): the first candidate, timed in pure too.
    assert row["engine_way"] == row["rule"] == expected[0]
    same = row["pure_ways"][row["engine_way"]]["median"]
    assert row["engine_vs_same_way"] == round(row["engine"]["median"] / same, 3)
    fastest = max(row["engine"]["runs"]) / max(row["pure"]["runs"])
    assert row["engine_vs_pure_fastest"] == pytest.approx(fastest, rel=1e-2)  # the runs are rounded to 0.1

    # The ceiling: FLOPs per image against the measured matmul rate of the candidates' precisions.
    c = row["ceiling"]
    assert c["forward_flops"] > 0 and c["train_flops"] == 3 * c["forward_flops"]
    assert set(c["matmul"]) == {label.split(",")[0] for label in expected}
    assert c["tflops"] == max(c["matmul"].values()) and c["matmul"][c["precision"]] == c["tflops"]
    assert c["ips"] == pytest.approx(c["tflops"] * 1e12 / c["train_flops"], rel=1e-3)
    # Shares are given to four places (a small share's relative error is larger than 1e-3).
    assert c["pure_share"] == round(row["pure"]["median"] / c["ips"], 4)
    assert c["engine_share"] == round(row["engine"]["median"] / c["ips"], 4)
    assert {r["precision"] for r in result["matmul"]} == set(c["matmul"])

    # Batch 4: the engine's milliseconds a step against pure compute's in the same way.
    sb = row["small_batch"]
    assert sb["batch"] == 4 and sb["pure_way"] == row["engine_way"]
    assert sb["engine_ms"] == round(4000 / row["engine"]["median"], 3)
    assert sb["pure_ms"] == round(4000 / same, 3)
    assert sb["overhead"] == pytest.approx(sb["engine_ms"] / sb["pure_ms"] - 1, abs=1e-3)
    assert result["goals"]["engine_vs_pure"] == 0.95 and result["goals"]["small_batch_overhead"] == 0.10
    assert set(result["machine"]["cpu_flags"]) <= set(bench_machine.CPU_FLAGS)
    assert isinstance(result["machine"]["bf16_native"], bool)

    # The tables draw all of it at 80 columns.
    out = io.StringIO()
    Console(file=out, width=80).print(bench_render.render(result))
    text = out.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "eng/pure" in text and "GFLOP/img" in text  # the headers whole, not cut to fit
    text = " ".join(text.split())
    for words in ("the best of auto's candidates", "ceiling", "overhead", "matmul rate", "fastest turns"):
        assert words in text, words


@pytest.mark.slow
def test_the_bench_times_the_candidates_autotune_gives(capsys, monkeypatch):
    """Whatever autotune.candidates says is what the bench times: two fp32 layouts here."""
    two = [autotune.Candidate("fp32", True), autotune.Candidate("fp32", False)]
    monkeypatch.setattr(autotune, "candidates", lambda exp, rule: list(two))
    (row,) = _tiny_bench(capsys, "--repeats", "1")["models"]
    assert row["candidates"] == ["fp32, channels_last", "fp32"] == list(row["pure_ways"])
    assert set(row["ceiling"]["matmul"]) == {"fp32"}


@pytest.mark.slow
def test_a_batch_above_eight_has_no_small_batch_line(capsys):
    argv = ["bench", "--model", "simplecnn", "--batch", "16", "--steps", "1", "--repeats", "1", "--warmup", "0"]
    assert cli_main([*argv, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["models"]
    assert "small_batch" not in row and row["ceiling"]["ips"] > 0


def test_flops_of_one_layer_equal_a_hand_count():
    linear = nn.Sequential(nn.Flatten(), nn.Linear(10, 5))
    assert forward_flops(linear, (10,)) == 2 * 10 * 5  # a multiply-add counts two
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    # Every one of 8x8 outputs of 8 channels sums 3x3x3 products.
    assert forward_flops(conv, (3, 8, 8)) == 2 * (8 * 8 * 8) * (3 * 3 * 3)
    assert conv.training  # the count leaves the model's mode as it found it
    both = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    assert forward_flops(both, (3, 8, 8)) == 2 * 512 * 27 + 2 * 512 * 10


def test_ceiling_takes_the_fastest_precision_and_three_forwards():
    flops = {"forward_flops": 1_000_000, "train_flops": 3_000_000}
    rates = {"fp32": {"precision": "fp32", "tflops": 0.1}, "bf16": {"precision": "bf16", "tflops": 0.3}}
    c = bench_ceiling.ceiling(flops, rates)
    assert c["precision"] == "bf16" and c["ips"] == pytest.approx(0.3e12 / 3e6)
    r = bench_ceiling.matmul_rate(torch.device("cpu"), "fp32", size=64, repeats=2)
    assert r["size"] == 64 and r["repeats"] == 2 and len(r["runs_tflops"]) == 2 and r["tflops"] > 0


def test_models_all_is_every_architecture_at_its_presets_batch():
    targets = bench_targets.resolve_targets(models=["all"])
    assert [t.label for t in targets] == list(bench_targets.ALL_MODELS)
    assert set(bench_targets.ALL_MODELS) == {
        "simplecnn",
        "alexnet32",
        "alexnet64",
        "mobilenet",
        "backbone",
        "resnet34",
        "resnet50",
    }
    by = {t.label: t for t in targets}
    assert (by["alexnet32"].batch, by["alexnet64"].batch, by["backbone"].batch, by["resnet50"].batch) == (
        4,
        12,
        256,
        128,
    )
    assert by["resnet50"].steps <= 3 and by["backbone"].steps == 1  # the slow ones keep their short plans
    assert [t.label for t in bench_targets.resolve_targets()] == list(bench_targets.DEFAULT_MODELS)
