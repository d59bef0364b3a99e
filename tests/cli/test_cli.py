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
from engine.runfolder.table import list_runs
from tests.tiny import tiny_sets

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.slow
def test_dry_run_prints_the_parameter_count():
    p = cnnlab("run", "shapes-demo", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "parameters" in p.stdout and "(2, 10)" in p.stdout


@pytest.mark.slow
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


def test_keys_print_a_help_that_names_an_extra_whole(capsys):
    """A help text with square brackets (`cnnlab[tensorboard]`) is words, not rich markup."""
    from engine.cli import main

    assert main(["keys"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("train.tensorboard"))
    assert "cnnlab[tensorboard]" in line, line


@pytest.mark.slow
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


# --- hostile input: a message and exit 2, never a traceback --------------------------------------------


def said(capsys) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in out + err, out + err
    return out + err


@pytest.mark.parametrize(
    "value, words",
    [
        ("data.val_split=inf", "finite number"),
        ("data.val_split=1e300", "data.val_split"),
        ("optim.lr=true", "not true or false"),
        ("data.split_seed=18446744073709551616", "data.split_seed"),
        ("schedule.min_lr=inf", "schedule.min_lr"),
        ("model.backbone_k=" + "[" * 3000 + "]" * 3000, "nested too deeply"),
    ],
)
def test_a_hostile_set_value_exits_2_naming_it(value, words, capsys):
    assert main(["run", "shapes-demo", "--dry-run", "--set", value]) == 2
    assert words in said(capsys)


def test_hostile_toml_files_exit_2_naming_the_file(tmp_path, capsys):
    deep = tmp_path / "deep.toml"
    deep.write_text("[model]\nbackbone_k = " + "[" * 3000 + "]" * 3000 + "\n")
    assert main(["run", str(deep), "--dry-run"]) == 2
    assert "nested too deeply" in said(capsys)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    assert main(["run", str(binary), "--dry-run"]) == 2
    assert "not UTF-8" in said(capsys)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    assert main(["run", str(folder), "--dry-run"]) == 2
    assert "is a folder" in said(capsys)


def test_a_file_of_unknown_keys_is_summarised(tmp_path, capsys):
    many = tmp_path / "many.toml"
    many.write_text("[data]\n" + "".join(f"k{i} = 1\n" for i in range(50_000)))
    assert main(["run", str(many), "--dry-run"]) == 2
    text = said(capsys)
    assert "49990 more problems" in text and len(text.splitlines()) < 20
    huge = tmp_path / "huge.toml"
    huge.write_text("[data]\n" + "".join(f"k{i} = 1\n" for i in range(800_000)))  # 13 MB
    started = time.monotonic()
    assert main(["run", str(huge), "--dry-run"]) == 2
    assert "far larger than any experiment" in said(capsys) and time.monotonic() - started < 5


def test_a_toml_file_with_a_byte_order_mark_runs(tmp_path, capsys):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[optim]\nlr = 0.05\n")
    assert main(["run", str(path), "--dry-run"]) == 0
    assert "ok:" in said(capsys)


def test_data_and_weights_errors_exit_2_from_run_as_from_its_dry_run(tmp_path, capsys):
    from tests.dataset_files import write_image_folder

    written = write_image_folder(tmp_path / "data", classes=("a", "b"), per_class=3)
    written.images["train"]["a"][0][0].write_bytes(b"not a png")
    runs = ["--runs-dir", str(tmp_path / "runs")]
    bad_data = ["--set", "data.dataset=folder", "--data-dir", str(tmp_path / "data"), *runs]
    bad_weights = ["--set", f"model.weights_path={tmp_path / 'absent.pt'}", *runs]
    for bad in (bad_data, bad_weights):
        assert main(["run", "shapes-demo", "--dry-run", *bad]) == 2, said(capsys)
        dry = said(capsys)
        assert main(["run", "shapes-demo", *tiny_sets(**{"train.epochs": 1}), *bad]) == 2
        assert dry.strip() and said(capsys).strip()


def test_sweep_csv_into_a_bad_path_fails_before_any_trial(tmp_path, capsys):
    runs = tmp_path / "runs"
    for csv in (tmp_path / "missing" / "table.csv", tmp_path):
        grid = ["--grid", "optim.lr=0.01,0.02"]
        assert main(["sweep", "shapes-demo", *grid, "--csv", str(csv), "--runs-dir", str(runs)]) == 2
        assert "--csv" in said(capsys)
    assert not runs.exists() and not (tmp_path / "missing").exists()
