"""Runs of models beyond the built-ins: torchvision's and timm's train a tiny shapes run and resume;
the user's own file trains, the run keeps a copy, and a resume after the file changed trains from the
copy; a file that cannot make a model starts nothing (no run folder); the dry run counts FLOPs."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from engine.cli import main as cli_main
from engine.experiment.errors import ConfigError
from engine.insight.show import run_report
from engine.training.dry_run import dry_run
from engine.training.trainer import resume_run, run_experiment
from tests.tiny import tiny_experiment

NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes, width=8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.body(x))
"""

SMALL = {"data.train_subset": 192, "train.epochs": 1, "train.batch_size": 64}


def train_then_resume(exp, tmp_path: Path):
    first = run_experiment(exp, runs_dir=tmp_path / "runs")
    assert first.state == "finished", first.message
    again = resume_run(first.folder.path, epochs=2)  # trained on from its checkpoint: the model built anew
    assert again.state == "finished", again.message
    assert [r["epoch"] for r in again.folder.metrics()] == [1, 2]
    return again.folder.path


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["torchvision:resnet18", "timm:resnet10t"])
def test_a_library_model_trains_a_tiny_run_and_resumes(tmp_path, arch):
    stem = arch.startswith("torchvision")  # the small-image stem, rebuilt alike on resume
    # 16 pixels: the stem keeps them through layer1, a quarter of the work of 32 at every test pass
    sized = {"model.small_input": True, "data.image_size": 16} if stem else {}
    exp = tiny_experiment(**SMALL, **{"model.arch": arch, **sized})
    path = train_then_resume(exp, tmp_path)
    assert f"-{arch.replace(':', '-')}-" in path.name  # the run's name says the model
    assert not (path / "model").exists()  # nothing to copy for a library's model


@pytest.mark.slow
def test_a_users_file_trains_and_its_copy_resumes_after_the_file_changed(tmp_path):
    src = tmp_path / "mine" / "nets.py"
    src.parent.mkdir()
    src.write_text(textwrap.dedent(NET))
    exp = tiny_experiment(**SMALL, **{"model.arch": f"{src}:Net", "model.kwargs": {"width": 6}})
    first = run_experiment(exp, runs_dir=tmp_path / "runs")
    assert first.state == "finished", first.message
    run = first.folder.path
    record = json.loads((run / "model" / "source.json").read_text())
    assert (run / record["copy"]).read_text() == src.read_text() and record["source"] == str(src)
    src.write_text("this is not python (\n")  # the user's file breaks after the run started
    again = resume_run(run, epochs=2)
    assert again.state == "finished", again.message
    assert [r["epoch"] for r in again.folder.metrics()] == [1, 2]
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(run_report(run))
    assert f"the model file {src} has changed since the run started" in console.export_text()


def test_a_file_that_makes_no_model_starts_nothing(tmp_path):
    src = tmp_path / "nets.py"
    src.write_text(textwrap.dedent(NET).replace("num_classes, width=8", "classes, width=8"))
    exp = tiny_experiment(**{"model.arch": f"{src}:Net"})
    with pytest.raises(ConfigError) as err:
        run_experiment(exp, runs_dir=tmp_path / "runs")
    assert "does not take num_classes" in str(err.value) and str(src) in str(err.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    with pytest.raises(ConfigError, match="does not take num_classes"):
        dry_run(exp)


def test_a_detached_start_of_a_file_that_makes_no_model_is_refused_before_any_folder(tmp_path, capsys):
    """`cnnlab run --detach` hands the run to another process: the file's fault is said first, exit 2."""
    src = tmp_path / "nets.py"
    src.write_text(textwrap.dedent(NET).replace("num_classes, width=8", "classes, width=8"))
    runs = tmp_path / "runs"
    argv = ["run", "shapes-demo", "--set", f"model.arch={src}:Net", "--runs-dir", str(runs), "--detach"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "does not take num_classes" in err and "Traceback" not in err
    assert not runs.exists() or not any(runs.iterdir())


def test_the_dry_run_prints_parameters_and_flops_per_image(tmp_path, capsys):
    info = dry_run(tiny_experiment(**{"model.arch": "torchvision:resnet18"}))
    assert info["params"] > 10_000_000 and info["flops"] > 10_000_000
    sets = ["--set", "model.arch=torchvision:resnet18", "--set", "model.small_input=true"]
    assert cli_main(["run", "shapes-demo", "--dry-run", *sets]) == 0
    line = capsys.readouterr().out
    assert "parameters" in line and "FLOPs per image" in line
    flops = int(line.split(" FLOPs per image")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert flops > 10 * info["flops"]  # the small-image stem keeps 32x32 maps through layer1


def test_bench_resolves_a_library_model_by_name():
    from engine.bench.targets import resolve_targets

    (target,) = resolve_targets(models=["torchvision:resnet18"], batch=8)
    assert target.label == "torchvision:resnet18" and target.exp.model.arch == "torchvision:resnet18"
    assert target.exp.train.batch_size == 8
