"""`cnnlab` headless, end to end: run, dry run, bad input, listing, Ctrl+C and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.runs import list_runs
from tests.tiny import tiny_sets

ROOT = Path(__file__).resolve().parents[1]


def cnnlab(*args, env_extra=None, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kw
    )


def test_run_trains_prints_the_folder_and_lists_it(tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["run", "shapes-demo", *tiny_sets(**{"train.epochs": 2}), "--runs-dir", str(runs)])
    out = capsys.readouterr().out
    assert code == 0
    folder = Path(out.strip().splitlines()[-1])
    assert folder.parent == runs and (folder / "summary.json").exists()
    assert "epoch   2" in out  # plain epoch lines when stdout is not a terminal
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    listing = capsys.readouterr().out
    assert folder.name[:15] in listing and "finished" in listing and "shapes-demo" in listing


@pytest.mark.parametrize(
    "args, names",
    [
        (["--set", "optim.lr=-1"], ["optim.lr", "greater than 0"]),
        (["--set", "optim.momentum=1.5"], ["optim.momentum"]),
        (["--set", "optim.learning_rate=0.1"], ["optim.learning_rate", "unknown key", "lr"]),
        (["--set", "schedule.name=warmcos"], ["schedule.name", "cosine"]),
        (["--set", "schedule.name=onecycle"], ["schedule.max_lr"]),
        (["--set", "lr"], ["KEY=VALUE"]),
    ],
)
def test_bad_input_exits_2_naming_the_field_without_a_traceback(args, names):
    p = cnnlab("run", "shapes-demo", "--dry-run", *args)
    assert p.returncode == 2, p.stdout + p.stderr
    for n in names:
        assert n in p.stderr
    assert "Traceback" not in p.stderr + p.stdout


def test_unknown_preset_lists_the_known_ones():
    p = cnnlab("run", "no-such-preset")
    assert p.returncode == 2 and "shapes-demo" in p.stderr and "Traceback" not in p.stderr


def test_dry_run_prints_the_parameter_count():
    p = cnnlab("run", "shapes-demo", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "parameters" in p.stdout and "(2, 10)" in p.stdout


def test_missing_dataset_is_a_short_message(tmp_path):
    p = cnnlab(
        "run",
        "shapes-demo",
        "--set",
        "data.dataset=cifar100",
        "--data-dir",
        str(tmp_path / "absent"),
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert p.returncode == 2  # bad input, as a dry run's missing dataset is
    assert str(tmp_path / "absent") in p.stdout + p.stderr and "Traceback" not in p.stdout + p.stderr


def test_presets_and_keys_list_without_importing_torch():
    p = cnnlab("presets")
    assert p.returncode == 0 and "shapes-demo" in p.stdout
    code = "import sys; from engine.cli import main; main(['presets']); main(['keys']); print('torch' in sys.modules)"
    q = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert q.stdout.strip().endswith("False"), q.stdout[-300:] + q.stderr


def test_ctrl_c_stops_with_a_checkpoint_and_resume_finishes(tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [
        "run",
        "shapes-demo",
        *tiny_sets(**{"train.epochs": 3, "data.train_subset": 1536, "train.batch_size": 32}),
        "--runs-dir",
        str(runs),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (list_runs(runs) and list_runs(runs)[0].epochs_done >= 1):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    info = list_runs(runs)[0]
    assert info.state == "stopped" and info.resumable and "Traceback" not in err
    assert (info.path / "checkpoints" / "last.pt").exists()
    p = cnnlab("resume", str(info.path))
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [json.loads(line) for line in (info.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    again = cnnlab("resume", str(info.path))
    assert again.returncode == 2 and "nothing to resume" in again.stderr
