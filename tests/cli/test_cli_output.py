"""What the listing commands print, piped and on an 80-column terminal: names, run ids and sweep
values are never wrapped or cut, and piped output is one plain row per line under a header line."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

from rich.console import Console
from rich.table import Table

from engine.cli import main
from engine.cli.output import print_table
from engine.experiment.config import Experiment
from engine.experiment.presets import load_presets
from engine.experiment.sweep_plan import plan_trials
from engine.insight.show import sweep_table
from engine.runfolder.folder import RunFolder
from engine.sweeps.folder import Sweep, results_table

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LONG_PRESETS = ("mobilenet-cifar100-constant", "resnet50-pretrained-cifar100", "alexnet-cifar100-adamw")


def piped(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def on_terminal(*args: str, columns: int = 80) -> str:
    """`python -m engine ARGS` with stdout on a pseudo-terminal of `columns` columns: what the user sees."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm-256color"}
    command = [sys.executable, "-m", "engine", *args]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    chunks = []
    while True:  # read while it writes: a pty's buffer is small
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r", "")


def _runs(runs_dir: Path, presets) -> list[RunFolder]:
    folders = []
    for name in presets:
        f = RunFolder.create(runs_dir, Experiment(), name)
        f.append_metrics({"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.45, "lr": 0.01})
        f.write_summary({"best_val_acc": 0.45, "test_acc": 0.44})
        f.write_status("finished")
        folders.append(f)
    return folders


def test_presets_piped_is_one_plain_row_per_preset_that_grep_finds_whole():
    p = piped("presets")
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stdout.splitlines() if not line.startswith("#")]
    assert lines[0].split()[:4] == ["name", "report", "model", "dataset"]
    names = [pr.name for pr in load_presets()[0]]
    assert [line.split()[0] for line in lines[1:]] == names  # one line per preset, its name whole
    adamw = [line for line in p.stdout.splitlines() if "adamw" in line]  # `cnnlab presets | grep adamw`
    assert len(adamw) == 1 and adamw[0].startswith("alexnet-cifar100-adamw ")


def test_presets_on_an_80_column_terminal_keep_every_name_whole():
    shown = on_terminal("presets")
    words = set(shown.split())
    for preset in load_presets()[0]:
        assert preset.name in words, f"{preset.name} was wrapped or cut:\n{shown}"


def test_runs_keep_their_ids_whole_piped_and_on_80_columns(tmp_path):
    runs = tmp_path / "runs"
    folders = _runs(runs, LONG_PRESETS)
    p = piped("runs", "--runs-dir", str(runs))
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "preset", "status"] and len(lines) == 1 + len(folders)
    assert sorted(line.split()[:2] for line in lines[1:]) == sorted([f.id, f.preset] for f in folders)
    words = set(on_terminal("runs", "--runs-dir", str(runs)).split())
    assert {f.id for f in folders} | set(LONG_PRESETS) <= words


def test_runs_that_fit_are_a_table_within_the_terminal(tmp_path):
    runs = tmp_path / "runs"
    folders = _runs(runs, ("shapes-demo", "shapes-demo"))
    shown = on_terminal("runs", "--runs-dir", str(runs), columns=120)
    assert all(len(line) <= 120 for line in shown.splitlines()), shown
    assert {f.id for f in folders} <= set(shown.split()) and "finished" in shown


def test_a_sweep_table_too_wide_for_the_terminal_becomes_whole_rows(tmp_path):
    base = Experiment()
    grid = {
        "optim.weight_decay": [0.0005, 0.0001],
        "augment.label_smoothing": [0.0, 0.1],
        "schedule.milestones": [[150, 225], [100, 150, 200]],
        "optim.momentum": [0.9, 0.95],
    }
    sweep = Sweep.create(tmp_path / "runs", base, plan_trials(base, grid=grid))
    table = sweep_table(results_table(sweep.path), sweep.varied, sweep.metric)
    out = io.StringIO()
    print_table(table, Console(file=out, force_terminal=True, width=80, color_system=None))
    lines = [line for line in out.getvalue().splitlines() if not line.startswith("#")]
    assert len(lines) == 1 + 16  # the header and one line per trial
    assert lines[0].split()[:5] == ["trial", "weight_decay", "label_smoothing", "milestones", "momentum"]
    assert all("[100, 150, 200]" in line or "[150, 225]" in line for line in lines[1:])

    piped_out = io.StringIO()
    print_table(table, Console(file=piped_out, width=80))
    assert piped_out.getvalue().splitlines() == out.getvalue().splitlines()  # the same rows when piped


def test_a_table_that_fits_is_drawn_by_rich_with_its_free_text_wrapped():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    table = Table(box=None, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("description", overflow="fold")
    table.add_row("mobilenet-cifar100-constant", "MobileNet on CIFAR-100, constant lr 0.05, 300 epochs " * 3)
    print_table(table, console)
    lines = out.getvalue().splitlines()
    assert len(lines) > 2 and all(len(line) <= 100 for line in lines)  # wrapped, within the width
    assert lines[1].startswith("mobilenet-cifar100-constant ")


def test_keys_piped_list_one_key_per_line(capsys):
    assert main(["keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["key", "default", "accepts", "help"]
    assert any(line.startswith("optim.lr ") for line in lines)
    assert all(line.split()[0].count(".") == 1 for line in lines[1:])
