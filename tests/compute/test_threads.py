"""Trainings that share a machine size their thread pools to their share of the cores (engine.compute.threads):
a claim per training, seen by the others while its process lives, swept when it is gone; the first
training shrinks when a second starts and grows back when it ends; train.threads is obeyed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from engine.compute import threads
from engine.events import LogMessage
from engine.training.trainer import run_experiment
from tests.tiny import tiny_experiment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def claims(tmp_path, monkeypatch):
    folder = tmp_path / "claims"
    monkeypatch.setenv("CNNLAB_CLAIMS", str(folder))
    return folder


@pytest.fixture
def two_cores():
    """This process may use two threads (the suite runs on one); torch's count put back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _claim(name: str, since: float, fixed: int | None = None) -> threads.Claim:
    return threads.Claim(name, since, fixed)


def test_fair_shares_split_the_cores_left_by_fixed_claims():
    two = [_claim("a", 1), _claim("b", 2)]
    assert threads.fair_shares(2, two) == {"a": 1, "b": 1}
    assert threads.fair_shares(3, two) == {"a": 2, "b": 1}  # the older claim takes the odd core
    assert threads.fair_shares(1, two) == {"a": 1, "b": 1}  # never below one
    assert threads.fair_shares(8, [_claim("a", 1), _claim("w", 0, fixed=2), _claim("b", 3)]) == {
        "a": 3,
        "w": 2,
        "b": 3,
    }
    assert threads.fair_shares(4, [_claim("a", 1)]) == {"a": 4}


HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from engine.compute.threads import CoreShare
    share = CoreShare(folder=Path(sys.argv[1]))
    share.start()
    print("claimed", flush=True)
    sys.stdin.read()  # holds its claim until told to end (or killed)
    share.close()
    """
)


def _holder(folder):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.stdout.readline().strip() == "claimed"
    return proc


def test_a_training_shrinks_while_another_runs_and_grows_back_when_it_is_gone(claims, two_cores):
    heard = []
    share = threads.CoreShare(folder=claims, on_change=lambda t, n: heard.append((t, n)))
    assert share.start() == 2 and torch.get_num_threads() == 2
    other = _holder(claims)
    try:
        assert share.tick(force=True) == 1 and torch.get_num_threads() == 1
        assert share.trainings == 2
    finally:
        other.send_signal(signal.SIGKILL)  # a killed process leaves its file, not its lock
        other.wait()
    assert len(list(claims.glob("*.claim"))) == 2
    assert share.tick(force=True) == 2 and torch.get_num_threads() == 2
    assert len(list(claims.glob("*.claim"))) == 1  # the dead claim swept away
    assert heard == [(2, 1), (1, 2), (2, 1)]
    share.close()
    assert list(claims.glob("*.claim")) == []


def test_tick_looks_again_only_every_rebalance_interval(claims, two_cores):
    now = [100.0]
    share = threads.CoreShare(folder=claims, clock=lambda: now[0])
    share.start()
    other = _holder(claims)
    try:
        assert share.tick() == 2  # looked a moment ago: not yet
        now[0] += threads.REBALANCE_S
        assert share.tick() == 1
    finally:
        other.stdin.close()
        other.wait()
        share.close()


def test_a_fixed_count_is_taken_as_asked(claims, two_cores):
    other = _holder(claims)
    try:
        share = threads.CoreShare(2, folder=claims)
        assert share.start() == 2  # asked for 2: another training does not change it
        share.close()
    finally:
        other.stdin.close()
        other.wait()


@pytest.mark.slow
def test_a_run_records_its_threads_and_says_when_it_shares(claims, two_cores, tmp_path):
    other = _holder(claims)
    try:
        events = []
        result = run_experiment(
            tiny_experiment(**{"train.epochs": 1}), runs_dir=tmp_path / "runs", listener=events.append
        )
    finally:
        other.stdin.close()
        other.wait()
    assert result.state == "finished", result.message
    status = json.loads((result.folder.path / "status.json").read_text())
    assert (status["threads"], status["trainings_sharing"]) == (1, 2)
    assert any("other cnnlab training" in e.text for e in events if isinstance(e, LogMessage))
    assert torch.get_num_threads() == 2  # the process's count put back at the run's end

    result = run_experiment(
        tiny_experiment(**{"train.epochs": 1, "train.threads": 1}), runs_dir=tmp_path / "runs", name="fixed"
    )
    assert json.loads((result.folder.path / "status.json").read_text())["threads"] == 1


def _held(path, text: bytes):
    """A claim file holding `text`, its lock held as a live training's is (another open file, this process)."""
    import fcntl

    path.write_bytes(text)
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


DAMAGED_CLAIMS = {
    "list.claim": b"[1, 2]",
    "bytes.claim": bytes(range(256)),
    "cut.claim": b'{"pid": 12, "since": 17',
    "since-text.claim": b'{"pid": 12, "since": "yesterday"}',
    "fixed-huge.claim": b'{"pid": 12, "since": 1.0, "fixed": 1e999}',
    "deep.claim": b"[" * 100_000,
}


def test_damaged_claims_are_passed_over_and_dead_ones_removed(claims, two_cores):
    claims.mkdir()
    fds = [_held(claims / name, text) for name, text in DAMAGED_CLAIMS.items()]
    (claims / "dead-damaged.claim").write_bytes(b"\x00garbage")  # no lock: its process is gone
    (claims / "a-folder.claim").mkdir()
    ok = _held(claims / "negative.claim", b'{"pid": 12, "since": 1.0, "fixed": -3}')
    try:
        found = threads.live_claims(claims)
        assert [c.name for c in found] == ["negative.claim"] and found[0].fixed is None  # a share, not -3 cores
        assert not (claims / "dead-damaged.claim").exists() and (claims / "a-folder.claim").is_dir()
        share = threads.CoreShare(folder=claims)
        assert share.start() == 1 and share.trainings == 2  # itself and the one readable live claim
        share.close()
    finally:
        for fd in [*fds, ok]:
            os.close(fd)
