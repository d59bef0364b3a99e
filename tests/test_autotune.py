"""`auto` precision and layout chosen by measuring (engine.autotune): the probe's choice is what the run
trains in and what the next run of the same shape starts with, unmeasured; explicit settings are
obeyed; the probe leaves the run exactly as if the choice had been set by hand.

The probe really trains its candidates here; only the clock it reads them by is the test's, so the
ranking (not a speed) is what is asserted."""

from __future__ import annotations

import json

import pytest
import torch

from engine import autotune
from engine.cli import main as cli_main
from engine.device import Runtime, select_runtime
from engine.events import LogMessage, RunStarted
from engine.trainer import run_experiment
from tests.tiny import tiny_experiment

# Seconds per step of 16 images the fake clock gives each candidate: plain fp32 is the fastest, which is never the
# rule's pick on a CPU (the rule takes channels_last there).
FAKE_STEP_S = {"fp32": 0.010, "fp32, channels_last": 0.020, "bf16": 0.030, "bf16, channels_last": 0.040}


@pytest.fixture
def probing(monkeypatch, tmp_path):
    """The probe on (the suite turns it off), its own cache, and a clock that only FAKE_STEP_S moves:
    every step runs for real, the probe plans and ranks in fake seconds; `calls` counts the steps."""
    monkeypatch.delenv("CNNLAB_AUTOTUNE", raising=False)
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    calls = []
    now = [0.0]
    real_init, real_step = autotune.Probe.__init__, autotune.Probe._time_step

    def fake_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.clock = lambda: now[0]

    def fake_time_step(self, cand, b):
        real_step(self, cand, b)
        calls.append((cand.label, b))
        seconds = FAKE_STEP_S[cand.label] * b / 16  # per 16 images: the plan's cost per image holds
        now[0] += seconds
        return seconds

    monkeypatch.setattr(autotune.Probe, "__init__", fake_init)
    monkeypatch.setattr(autotune.Probe, "_time_step", fake_time_step)
    # Fake seconds: room for the run's own batch (four candidates where bf16 is native, a warm-up, two rounds).
    monkeypatch.setattr(autotune, "PROBE_BUDGET_S", 2.1)
    return calls


def _run(exp, tmp_path, name):
    events = []
    result = run_experiment(exp, runs_dir=tmp_path / "runs", name=name, listener=events.append)
    assert result.state == "finished", result.message
    status = json.loads((result.folder.path / "status.json").read_text())
    return result, status, events


def test_the_probes_choice_is_used_and_kept_for_the_next_run(probing, tmp_path):
    exp = tiny_experiment(**{"train.epochs": 1})
    rule = select_runtime(exp.train)
    assert (rule.precision, rule.channels_last) != ("fp32", False)

    _, status, events = _run(exp, tmp_path, "first")
    assert (status["precision"], status["channels_last"]) == ("fp32", False)
    started = next(e for e in events if isinstance(e, RunStarted))
    assert (started.precision, started.channels_last) == ("fp32", False)
    record = status["autotune"]
    assert record["cached"] is False and record["batch"] == exp.train.batch_size
    assert set(record["measured"]) == {c.label for c in autotune.candidates(exp, rule)}
    assert any("auto: fp32, measured" in e.text for e in events if isinstance(e, LogMessage))
    kept = json.loads(autotune.cache_path().read_text())["choices"]
    assert [(v["precision"], v["channels_last"]) for v in kept.values()] == [("fp32", False)]
    assert probing  # the candidates really trained

    probing.clear()
    _, status, events = _run(exp, tmp_path, "second")
    assert probing == []  # kept: nothing measured
    assert (status["precision"], status["channels_last"]) == ("fp32", False)
    assert status["autotune"]["cached"] is True
    assert any("as measured before" in e.text for e in events if isinstance(e, LogMessage))

    # Another batch is another shape: measured anew.
    _run(tiny_experiment(**{"train.epochs": 1, "train.batch_size": 32}), tmp_path, "third")
    assert probing and len(json.loads(autotune.cache_path().read_text())["choices"]) == 2


def test_again_measures_even_when_a_choice_is_kept(probing, tmp_path, monkeypatch):
    exp = tiny_experiment(**{"train.epochs": 1})
    _run(exp, tmp_path, "first")
    probing.clear()
    monkeypatch.setenv("CNNLAB_AUTOTUNE", "again")
    _, status, _ = _run(exp, tmp_path, "again")
    assert probing and status["autotune"]["cached"] is False


def test_explicit_settings_are_obeyed_and_only_auto_is_measured(probing, tmp_path):
    exp = tiny_experiment(**{"train.epochs": 1, "train.precision": "bf16", "train.channels_last": "on"})
    _, status, _ = _run(exp, tmp_path, "fixed")
    assert probing == [] and status["autotune"] is None
    assert (status["precision"], status["channels_last"]) == ("bf16", True)

    # Precision set, layout auto: only the layouts are candidates, and the precision stays.
    exp = tiny_experiment(**{"train.epochs": 1, "train.precision": "bf16"})
    _, status, _ = _run(exp, tmp_path, "layout")
    assert set(status["autotune"]["measured"]) == {"bf16", "bf16, channels_last"}
    assert (status["precision"], status["channels_last"]) == ("bf16", False)


def test_the_probe_leaves_the_run_as_the_same_settings_set_by_hand(probing, tmp_path):
    """The probe trains copies on its own random batches inside fork_rng: the run's weights and random
    streams are untouched, so it learns exactly what the chosen settings set by hand learn."""
    auto, _, _ = _run(tiny_experiment(**{"train.epochs": 2}), tmp_path, "auto")
    assert probing
    by_hand, _, _ = _run(
        tiny_experiment(**{"train.epochs": 2, "train.precision": "fp32", "train.channels_last": "off"}),
        tmp_path,
        "by-hand",
    )
    drop = ("seconds", "images_per_sec", "peak_memory_mb")

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in drop} for r in rows]

    assert strip(auto.folder.metrics()) == strip(by_hand.folder.metrics())
    a = torch.load(auto.folder.checkpoints / "last.pt", weights_only=True)["model"]
    b = torch.load(by_hand.folder.checkpoints / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_candidates_are_the_safe_ones_of_the_device(monkeypatch):
    cpu = Runtime(torch.device("cpu"), "fp32", True)
    exp = tiny_experiment()
    monkeypatch.setattr(autotune, "_cpu_has_fast_bf16", lambda: False)
    assert [c.label for c in autotune.candidates(exp, cpu)] == ["fp32, channels_last", "fp32"]
    monkeypatch.setattr(autotune, "_cpu_has_fast_bf16", lambda: True)
    bf16 = Runtime(torch.device("cpu"), "bf16", True)
    labels = [c.label for c in autotune.candidates(exp, bf16)]
    assert labels[0] == "bf16, channels_last" and sorted(labels) == sorted(FAKE_STEP_S)
    assert not any("fp16" in label for label in labels)  # fp16 autocast is for GPUs
    fixed = tiny_experiment(**{"train.precision": "fp32", "train.channels_last": "off"})
    assert len(autotune.candidates(fixed, Runtime(torch.device("cpu"), "fp32", False))) == 1


def test_choose_keeps_the_rule_within_the_margin_and_takes_a_clear_winner():
    rule, other, cl = (
        autotune.Candidate("bf16", True),
        autotune.Candidate("fp32", False),
        autotune.Candidate("fp32", True),
    )
    cands = [rule, other, cl]
    assert autotune.choose({rule.label: 100, other.label: 102, cl.label: 50}, cands) == rule
    assert autotune.choose({rule.label: 100, other.label: 150, cl.label: 50}, cands) == other
    # Two a noise apart: the one with the rule's layout.
    assert autotune.choose({rule.label: 50, other.label: 150, cl.label: 149}, cands) == cl
    assert autotune.choose({}, cands) == rule


def test_the_probe_times_a_smaller_batch_only_when_the_runs_would_not_fit():
    exp = tiny_experiment(**{"train.batch_size": 256})
    cands = autotune.candidates(exp, Runtime(torch.device("cpu"), "fp32", True))
    probe = autotune.Probe(exp, torch.device("cpu"), torch.nn.Linear(1, 1), (3, 32, 32), 10, cands, budget_s=2.0)
    assert probe.plan(0.001, 16, 2.0) == (256, 2)  # 16 us an image: the run's batch fits
    batch, rounds = probe.plan(0.05, 16, 2.0)  # 3 ms an image: 256 would take seconds a step
    assert 16 <= batch < 256 and batch & (batch - 1) == 0
    assert probe.plan(2.0, 16, 2.0) == (16, 1)  # never below the sizing batch; one round then


def test_bench_forget_empties_the_kept_choices(probing, tmp_path, capsys):
    _run(tiny_experiment(**{"train.epochs": 1}), tmp_path, "first")
    assert autotune.kept_choices()
    assert cli_main(["bench", "--forget"]) == 0
    assert "forgot 1" in capsys.readouterr().out
    assert autotune.kept_choices() == {} and not autotune.cache_path().exists()
    assert cli_main(["bench", "--forget"]) == 0
    assert "nothing" in capsys.readouterr().out
