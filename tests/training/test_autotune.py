"""`auto` precision and layout chosen by measuring (engine.training.autotune): the probe's choice is what the run
trains in and what the next run of the same shape starts with, unmeasured; explicit settings are
obeyed; the probe leaves the run exactly as if the choice had been set by hand.

The probe really trains its candidates here; only the clock it reads them by is the test's, so the
ranking (not a speed) is what is asserted."""

from __future__ import annotations

import json
import os

import pytest
import torch

from engine.cli import main as cli_main
from engine.compute.device import Runtime, select_runtime
from engine.events import LogMessage, RunStarted
from engine.training import autotune
from engine.training.trainer import run_experiment
from tests.tiny import tiny_experiment

# Seconds per step of 16 images the fake clock gives each candidate: plain fp32 is the fastest, which is never the
# rule's pick on a CPU (the rule takes channels_last there).
FAKE_STEP_S = {"fp32": 0.010, "fp32, channels_last": 0.020, "bf16": 0.030, "bf16, channels_last": 0.040}


def fake_seconds(label: str, batch: int) -> float:
    """What the fake clock gives a step: FAKE_STEP_S per 16 images, nothing fixed (a test may swap it)."""
    return FAKE_STEP_S[label] * batch / 16


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
        seconds = globals()["fake_seconds"](cand.label, b)
        now[0] += seconds
        return seconds

    monkeypatch.setattr(autotune.Probe, "__init__", fake_init)
    monkeypatch.setattr(autotune.Probe, "_time_step", fake_time_step)
    # Fake seconds: room for the run's own batch (four candidates where bf16 is native, a warm-up, two rounds).
    monkeypatch.setattr(autotune, "PROBE_BUDGET_S", 2.1)
    return calls


def bf16_native(monkeypatch):
    """A CPU with native bf16 whatever this one is: the rule picks bf16 channels_last, four candidates."""
    from engine.compute import device

    monkeypatch.setattr(device, "_cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(autotune, "_cpu_has_fast_bf16", lambda: True)


def _run(exp, tmp_path, name):
    events = []
    result = run_experiment(exp, runs_dir=tmp_path / "runs", name=name, listener=events.append)
    assert result.state == "finished", result.message
    status = json.loads((result.folder.path / "status.json").read_text())
    return result, status, events


@pytest.mark.slow
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


@pytest.mark.slow
def test_again_measures_even_when_a_choice_is_kept(probing, tmp_path, monkeypatch):
    exp = tiny_experiment(**{"train.epochs": 1})
    _run(exp, tmp_path, "first")
    probing.clear()
    monkeypatch.setenv("CNNLAB_AUTOTUNE", "again")
    _, status, _ = _run(exp, tmp_path, "again")
    assert probing and status["autotune"]["cached"] is False


@pytest.mark.slow
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


@pytest.mark.slow
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
    assert probe.plan({16: 0.001, 64: 0.004}, 2.0) == (256, 2)  # 62 us an image: the run's batch fits
    batch, rounds = probe.plan({16: 0.05, 64: 0.2}, 2.0)  # 3 ms an image: 256 would take most of a second a step
    assert 16 <= batch < 256 and batch & (batch - 1) == 0
    assert probe.plan({16: 2.0}, 2.0) == (16, 1)  # never below the sizing batch; one round then
    # A step that is mostly fixed cost: the batch is sized by its cost per image, not by its first step's.
    assert probe.step_cost({16: 0.09, 64: 0.18})(128) == pytest.approx(0.30)
    assert probe.plan({16: 0.09, 64: 0.18}, 2.0)[0] == 128  # a sixteenth of 90 ms an image would have said 32


@pytest.mark.slow
def test_the_probe_ranks_at_a_batch_where_fixed_costs_do_not_hide_the_fastest(probing, tmp_path, monkeypatch):
    """A ResNet on a 2-core CPU steps in the same time at batch 16 in every candidate (its fixed costs), and
    only at a larger batch does one pull ahead: the probe must time there. A clear loser is out after one step."""
    per_image = {"fp32": 0.0004, "fp32, channels_last": 0.0006, "bf16": 0.0040, "bf16, channels_last": 0.0008}
    monkeypatch.setitem(globals(), "fake_seconds", lambda label, b: 0.3 + per_image[label] * b)
    monkeypatch.setattr(autotune, "PROBE_BUDGET_S", 5.0)
    bf16_native(monkeypatch)
    exp = tiny_experiment(**{"train.epochs": 1, "train.batch_size": 128})
    # At batch 16 the rule's pick is within the margin of the fastest: ranked there, it would stay.
    at_16 = {label: 16 / fake_seconds(label, 16) for label in per_image}
    rule = autotune.candidates(exp, select_runtime(exp.train))
    assert autotune.choose(at_16, rule) == rule[0] != autotune.Candidate("fp32", False)

    _, status, events = _run(exp, tmp_path, "fixed-costs")
    record = status["autotune"]
    assert record["batch"] == 128 and (status["precision"], status["channels_last"]) == ("fp32", False)
    assert record["out_at_first"] == ["bf16"] and set(record["measured"]) == set(per_image)
    assert [b for label, b in probing if label == "bf16"] == [128]  # one step, then out
    assert any("bf16: out after one step" in e.text for e in events if isinstance(e, LogMessage))


def test_steps_of_seconds_time_the_two_quickest_and_rank_the_rest_by_their_first_step(probing, tmp_path, monkeypatch):
    """A Backbone's step on a CPU takes a second: the budget holds a first step of each candidate and a timed
    step of two, the quickest at their first step; the others are out after one step, and the probe ends."""
    per_16 = {"bf16": 0.9, "bf16, channels_last": 1.0, "fp32": 1.1, "fp32, channels_last": 1.2}
    monkeypatch.setitem(globals(), "fake_seconds", lambda label, b: per_16[label] * b / 16)
    bf16_native(monkeypatch)
    exp = tiny_experiment(**{"train.epochs": 1})
    rule = autotune.candidates(exp, select_runtime(exp.train))[0]
    _, status, _ = _run(exp, tmp_path, "long-steps")
    record = status["autotune"]
    assert record["batch"] == 16 and (status["precision"], status["channels_last"]) == ("bf16", False)
    assert record["out_at_first"] == ["fp32", "fp32, channels_last"] and set(record["measured"]) == set(per_16)
    steps = {label: [b for seen, b in probing if seen == label] for label in per_16}
    assert steps["fp32"] == steps["fp32, channels_last"] == [16]  # its first step alone
    assert len(steps["bf16"]) == 2 and len(steps[rule.label]) >= 2  # a first step and a timed one


def test_a_choice_is_kept_per_thread_count_and_per_onednn_cap(monkeypatch):
    """A run sharing the cores (one thread) or oneDNN capped below the CPU (AVX2 only) can rank the
    candidates otherwise: neither takes the choice measured without it."""
    exp, rule = tiny_experiment(), Runtime(torch.device("cpu"), "fp32", True)
    cands = autotune.candidates(exp, rule)
    key = autotune.cache_key(exp, rule, (3, 32, 32), 10, cands)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert autotune.cache_key(exp, rule, (3, 32, 32), 10, cands) != key
    finally:
        torch.set_num_threads(threads)
    assert autotune.cache_key(exp, rule, (3, 32, 32), 10, cands) == key
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert autotune.cache_key(exp, rule, (3, 32, 32), 10, cands) == key + " | oneDNN AVX2"


@pytest.mark.slow
def test_bench_forget_empties_the_kept_choices(probing, tmp_path, capsys):
    _run(tiny_experiment(**{"train.epochs": 1}), tmp_path, "first")
    assert autotune.kept_choices()
    assert cli_main(["bench", "--forget"]) == 0
    assert "forgot 1" in capsys.readouterr().out
    assert autotune.kept_choices() == {} and not autotune.cache_path().exists()
    assert cli_main(["bench", "--forget"]) == 0
    assert "nothing" in capsys.readouterr().out


CACHE_DAMAGE = {
    "garbage": bytes(range(256)),
    "cut short": b'{"version": 1, "choices": {"k": {"precision": "fp',
    "a list": b"[]",
    "choices not a table": b'{"version": 1, "choices": [1, 2]}',
    "an entry not a record": b'{"version": 1, "choices": {"k": "fp32", "j": [1], "ok": {"precision": "fp32"}}}',
    "deep": b"[" * 100_000,
}


@pytest.mark.parametrize("case", CACHE_DAMAGE)
def test_a_damaged_cache_keeps_nothing_and_a_new_choice_replaces_it(tmp_path, monkeypatch, case):
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    autotune.cache_path().parent.mkdir(parents=True)
    autotune.cache_path().write_bytes(CACHE_DAMAGE[case])
    kept = autotune.kept_choices()
    assert all(isinstance(v, dict) for v in kept.values())
    assert kept == ({"ok": {"precision": "fp32"}} if case == "an entry not a record" else {})
    autotune.keep("new", {"precision": "bf16", "channels_last": True})
    doc = json.loads(autotune.cache_path().read_text())
    assert doc["choices"]["new"] == {"precision": "bf16", "channels_last": True}
    assert [p.name for p in autotune.cache_path().parent.iterdir()] == [autotune.CACHE_FILE]  # no temporaries


@pytest.mark.slow
def test_a_run_trains_over_a_damaged_cache_entry_and_claims(probing, tmp_path, monkeypatch):
    """The kept choice of this very shape damaged (it was a crash: a string has no .get), a claims
    folder of damaged files: the run measures again, trains, and the cache holds a record again."""
    claims = tmp_path / "claims"
    claims.mkdir()
    (claims / "x.claim").write_bytes(b"[1]")
    monkeypatch.setenv("CNNLAB_CLAIMS", str(claims))
    exp = tiny_experiment(**{"train.epochs": 1})
    _run(exp, tmp_path, "first")
    (key,) = json.loads(autotune.cache_path().read_text())["choices"]
    autotune.cache_path().write_text(json.dumps({"version": 1, "choices": {key: "fp32"}}))
    probing.clear()
    _, status, _ = _run(exp, tmp_path, "second")
    assert probing and status["autotune"]["cached"] is False  # measured again
    assert isinstance(json.loads(autotune.cache_path().read_text())["choices"][key], dict)


WRITER = """
import sys
from engine.training import autotune
for i in range(int(sys.argv[2])):
    autotune.keep(f"{sys.argv[1]}-{i % 7}", {"precision": "fp32", "channels_last": False, "pad": "x" * 4000})
"""


@pytest.mark.slow
def test_two_processes_writing_the_cache_at_once_never_leave_a_half_written_file(tmp_path, monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, name, "300"], env=env) for name in ("a", "b")]
    reads = 0
    while any(w.poll() is None for w in writers):
        try:
            text = autotune.cache_path().read_text()
        except FileNotFoundError:
            continue
        doc = json.loads(text)  # a half-written file would not parse
        assert isinstance(doc["choices"], dict)
        reads += 1
    assert [w.returncode for w in writers] == [0, 0] and reads > 10
    assert [p.name for p in autotune.cache_path().parent.iterdir()] == [autotune.CACHE_FILE]
