"""How `cnnlab` is entered: global options before or after the command, global options alone open
the console, `bench --ui` names the commands that run it, a dry run says where the weights come from
without fetching them, and bad data or weights exit 2 from a run as from its dry run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.experiment.config import Experiment
from engine.runfolder.folder import RunFolder

ROOT = Path(__file__).resolve().parents[2]


def cnnlab(*args: str, module: str = "engine") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def _user_preset(runs: Path) -> str:
    """A preset of the user's, in `<runs>/presets/`: only a command that reads that runs folder knows it."""
    (runs / "presets").mkdir(parents=True)
    text = (ROOT / "presets" / "shapes-demo.toml").read_text().replace('name = "shapes-demo"', 'name = "my-shapes"')
    (runs / "presets" / "my-shapes.toml").write_text(text)
    return "my-shapes"


@pytest.mark.parametrize("before", [True, False], ids=["before the command", "after the command"])
def test_runs_dir_works_before_or_after_every_command_that_reads_the_runs_folder(tmp_path, capsys, before):
    runs = tmp_path / "elsewhere"
    mine = _user_preset(runs)
    run = RunFolder.create(runs, Experiment(), "shapes-demo")
    run.write_status("stopped")

    def cli(*argv: str) -> tuple[int, str, str]:
        opt = ["--runs-dir", str(runs)]
        code = main([*opt, *argv] if before else [*argv, *opt])
        out = capsys.readouterr()
        return code, out.out, " ".join(out.err.split())

    code, out, _ = cli("presets")
    assert code == 0 and f"{mine} (yours)" in out
    code, out, _ = cli("runs")
    assert code == 0 and run.id in out
    code, out, _ = cli("run", mine, "--dry-run")
    assert code == 0 and "ok: simplecnn on shapes" in out
    code, out, _ = cli("sweep", mine, "--grid", "optim.lr=0.1,0.01", "--plan")
    assert code == 0 and "trial   2: optim.lr=0.01" in out
    code, out, _ = cli("show", run.id)
    assert code == 0 and run.id in out
    code, _, err = cli("bench", "no-such-preset")  # the bench looks in the same folder for the user's presets
    assert code == 2 and mine in err
    code, out, _ = cli("keys")
    assert code == 0 and "optim.lr" in out


def test_the_entry_point_sends_global_options_alone_to_the_console_and_commands_to_the_cli(tmp_path, monkeypatch):
    import tui.__main__ as entry
    import tui.app

    opened = []
    monkeypatch.setattr(tui.app, "run_app", lambda argv: opened.append(argv) or 0)
    for argv in (["--runs-dir", str(tmp_path)], [f"--runs-dir={tmp_path}"], []):
        monkeypatch.setattr(sys, "argv", ["cnnlab", *argv])
        assert entry.main() == 0
    assert opened == [["--runs-dir", str(tmp_path)], [f"--runs-dir={tmp_path}"], []]

    runs = tmp_path / "runs"
    mine = _user_preset(runs)
    p = cnnlab("--runs-dir", str(runs), "presets", module="tui")  # `cnnlab --runs-dir DIR presets`
    assert p.returncode == 0 and f"{mine} (yours)" in p.stdout and "unrecognized" not in p.stderr


def test_bench_ui_from_the_engine_says_which_commands_run_it_and_they_do():
    p = cnnlab("bench", "--ui")
    err = " ".join(p.stderr.split())
    assert p.returncode == 2 and "Textual" in err
    assert "`cnnlab bench --ui`" in err and "`python -m tui bench --ui`" in err
    # Both commands named there run the console's bench (--help: its options, without measuring).
    q = cnnlab("bench", "--ui", "--help", module="tui")
    assert q.returncode == 0 and "usage: cnnlab bench --ui" in q.stdout
    script = Path(sys.executable).with_name("cnnlab")
    assert script.exists(), "the cnnlab console script is installed beside this Python (pip install -e .)"
    r = subprocess.run([str(script), "bench", "--ui", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "usage: cnnlab bench --ui" in r.stdout


@pytest.mark.slow
def test_dry_run_of_a_pretrained_preset_downloads_nothing_and_says_where_the_weights_are(tmp_path):
    torch_home = Path(os.environ["TORCH_HOME"])  # an empty folder of this test's (conftest)
    p = cnnlab("run", "resnet50-pretrained-cifar100", "--dry-run")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("ok: resnet50 on cifar100") and "(2, 100)" in lines[0]
    (weights,) = [line for line in lines if line.startswith("weights: ")]
    assert "ImageNet" in weights and "fetches them" in weights and str(torch_home) in weights
    assert not any(p.is_file() for p in torch_home.rglob("*"))  # nothing was fetched
    q = cnnlab("run", "shapes-demo", "--dry-run")
    assert q.returncode == 0 and "weights: none" in q.stdout


@pytest.mark.parametrize(
    "sets",
    [
        ["--set", "data.dataset=folder", "--data-dir", "absent-folder"],  # no dataset there
        ["--set", "model.arch=resnet50", "--set", "model.weights_path=absent.pt"],  # no weights there
    ],
    ids=["missing dataset", "missing weights"],
)
@pytest.mark.slow
def test_bad_data_or_weights_exit_2_from_a_run_as_from_its_dry_run(tmp_path, sets):
    args = ["run", "shapes-demo", *sets, "--runs-dir", str(tmp_path / "runs")]
    dry = cnnlab(*args, "--dry-run")
    real = cnnlab(*args)
    assert (dry.returncode, real.returncode) == (2, 2), dry.stderr + real.stderr
    assert "absent" in " ".join(real.stdout.split() + real.stderr.split()) and "Traceback" not in real.stderr
