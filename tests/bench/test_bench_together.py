"""`cnnlab bench --together N`: N real `python -m engine run` processes at once against one alone,
figures read from their run folders. Nothing here is timed: the figures only have to add up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.bench import BenchError
from engine.bench import together as bench_together
from engine.cli import main as cli_main


@pytest.mark.slow
def test_together_two_runs_two_processes_and_reports_a_total_and_a_ratio(capsys):
    argv = ["bench", "--together", "2", "--batch", "32", "--images", "128", "--epochs", "2", "--repeats", "1"]
    assert cli_main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "shapes-demo" and result["trainings"] == 2 and result["batch"] == 32
    assert result["epochs"] == 2 and result["images_per_epoch"] == 128 and result["repeats"] == 1
    (each,) = result["together_each"]
    assert len(each) == 2 and all(v > 0 for v in each)
    assert result["together_total"]["median"] == pytest.approx(sum(each), abs=0.2)
    assert result["alone"]["median"] > 0
    assert result["ratio"] == round(result["together_total"]["median"] / result["alone"]["median"], 3)
    (pids,) = result["together_pids"]
    assert len(set(pids)) == 2 and all(pids)  # two processes of their own trained, as status.json says
    assert result["goals"]["together"] == 0.90
    assert result["threads_alone"]  # as the alone training's status.json said its pool was

    assert cli_main([*argv]) == 0  # the text form
    text = capsys.readouterr().out
    assert "--together 2" in text and "together/alone" in text and "in total" in text


class _Run:
    """A finished training as group_rate reads it: epochs of (seconds, images/s) ending at given times."""

    def __init__(self, epochs: list[tuple[float, float, float]]):
        self.rows = [{"seconds": s, "images_per_sec": ips} for s, ips, _ in epochs]
        self.ends = [end for _, _, end in epochs]

    epochs = bench_together.Training.epochs


def test_group_rate_counts_the_epochs_all_trainings_shared():
    # A starts 1 s before B. After their first epochs, A's epochs 3 and 4 (t 3-5) and B's epochs 2 and 3
    # (t 3-5) run while both train; A's 2nd (t 2-3, B still in its first) and B's 4th (t 5-6, A gone)
    # do not count.
    a = _Run([(1.0, 50.0, 2.0), (1.0, 100.0, 3.0), (1.0, 60.0, 4.0), (1.0, 60.0, 5.0)])
    b = _Run([(2.0, 20.0, 3.0), (1.0, 40.0, 4.0), (1.0, 40.0, 5.0), (1.0, 100.0, 6.0)])
    rate = bench_together.group_rate([a, b])
    assert rate["each"] == [60.0, 40.0] and rate["total"] == pytest.approx(100.0) and rate["overlapped"]
    alone = _Run([(1.0, 10.0, 1.0), (1.0, 80.0, 2.0), (3.0, 120.0, 5.0)])
    # One alone: every epoch after the first, weighted by its seconds.
    assert bench_together.group_rate([alone])["total"] == pytest.approx((80 + 3 * 120) / 4)
    with pytest.raises(BenchError, match="two epochs"):
        bench_together.group_rate([_Run([(1.0, 10.0, 1.0)])])


def test_together_usage_errors_name_the_option(capsys):
    for bad in (["--together", "0"], ["--together", "1"]):
        assert cli_main(["bench", *bad]) == 2
        assert "--together" in capsys.readouterr().err
    assert cli_main(["bench", "--together", "2", "--epochs", "1"]) == 2
    assert "--epochs" in capsys.readouterr().err
    assert cli_main(["bench", "--together", "2", "--devices", "2"]) == 2
    assert "--together" in capsys.readouterr().err
    assert cli_main(["bench", "--together", "2", "--models", "simplecnn"]) == 2
    assert "--models" in capsys.readouterr().err
    assert cli_main(["bench", "--epochs", "3"]) == 2  # an option of --together alone
    assert "--together" in capsys.readouterr().err


def test_the_trainings_import_this_engine():
    root = str(Path(bench_together.__file__).resolve().parents[2])
    assert bench_together.engine_env()["PYTHONPATH"].split(":")[0] == root
