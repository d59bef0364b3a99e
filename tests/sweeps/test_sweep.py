"""Sweeps: the trial plan (order, validation before anything runs), the results table and its CSV,
the CLI's errors, and a real tiny grid sweep that is stopped and resumed."""

import csv
import json

import pytest

from engine.cli import main
from engine.cli.sweep import parse_grid_arg, parse_random_arg
from engine.events import BatchProgress, RunHandle, RunStarted
from engine.experiment.config import Experiment
from engine.experiment.errors import ConfigError
from engine.experiment.sweep_plan import plan_trials
from engine.runfolder.folder import RunFolder
from engine.runfolder.table import list_runs
from engine.sweeps import folder as sw
from engine.sweeps.folder import Sweep, results_table, write_csv
from engine.sweeps.plan import Workers
from engine.sweeps.runner import resume_sweep, run_sweep
from tests.tiny import tiny_experiment

BASE = Experiment()


def test_grid_is_the_cartesian_product_first_key_slowest():
    plan = plan_trials(BASE, grid={"optim.lr": [0.1, 0.01], "optim.momentum": [0.9, 0.5], "train.batch_size": [32]})
    assert plan == [
        {"optim.lr": 0.1, "optim.momentum": 0.9, "train.batch_size": 32},
        {"optim.lr": 0.1, "optim.momentum": 0.5, "train.batch_size": 32},
        {"optim.lr": 0.01, "optim.momentum": 0.9, "train.batch_size": 32},
        {"optim.lr": 0.01, "optim.momentum": 0.5, "train.batch_size": 32},
    ]


@pytest.mark.parametrize(
    "kwargs, key, words",
    [
        ({"grid": {"optim.lr": [0.1, -1]}}, "optim.lr", ["-1", "greater than 0"]),
        ({"grid": {"optim.momentum": [0.9, 1.5]}}, "optim.momentum", ["1.5"]),
        ({"grid": {"optim.lrate": [0.1]}}, "optim.lrate", ["unknown key", "lr"]),
        ({"grid": {"optim.lr": []}}, "optim.lr", ["non-empty"]),
        ({"grid": {"schedule.name": ["cosine", "onecycle"]}}, "schedule.max_lr", ["trial 2", "schedule.name=onecycle"]),
        ({"random": {"optim.lr": {"low": 0.1, "high": 0.01}}, "trials": 2}, "optim.lr", ["below"]),
        ({"random": {"optim.lr": {"low": 0, "high": 0.1, "log": True}}, "trials": 2}, "optim.lr", ["log"]),
        (
            {"random": {"optim.lr": {"low": 0.001, "high": 20}}, "trials": 2},
            "optim.lr",
            ["20", "less than or equal to 10"],
        ),
        ({"random": {"optim.lr": {"low": 0.001, "high": 0.1}}}, "trials", ["trial count"]),
        ({}, "grid", ["needs a grid"]),
    ],
)
def test_bad_plans_are_refused_naming_the_key(kwargs, key, words):
    with pytest.raises(ConfigError) as err:
        plan_trials(BASE, **kwargs)
    locs = [loc for loc, _ in err.value.problems]
    text = str(err.value)
    assert key in locs, err.value.problems
    for w in words:
        assert w in text, text


def test_random_search_is_seeded_in_range_and_integer_where_the_field_is():
    spec = {"optim.lr": {"low": 1e-4, "high": 1e-1, "log": True}, "train.batch_size": {"low": 16, "high": 256}}
    a = plan_trials(BASE, random=spec, trials=20, seed=3)
    assert a == plan_trials(BASE, random=spec, trials=20, seed=3) and a != plan_trials(
        BASE, random=spec, trials=20, seed=4
    )
    assert len(a) == 20 and len({t["optim.lr"] for t in a}) == 20
    assert all(
        1e-4 <= t["optim.lr"] <= 1e-1 and isinstance(t["train.batch_size"], int) and 16 <= t["train.batch_size"] <= 256
        for t in a
    )
    assert sum(t["optim.lr"] < 1e-2 for t in a) >= 8  # log-uniform: two of the three decades lie below 0.01
    both = plan_trials(BASE, grid={"optim.momentum": [0.9, 0.5]}, random={"optim.lr": spec["optim.lr"]}, trials=3)
    assert [t["optim.momentum"] for t in both] == [0.9] * 3 + [0.5] * 3


def test_cli_arguments_parse_to_grids_and_ranges():
    assert parse_grid_arg("optim.lr=0.0001,0.001,0.005") == ("optim.lr", [0.0001, 0.001, 0.005])
    assert parse_grid_arg("optim.name=sgd,adamw") == ("optim.name", ["sgd", "adamw"])
    assert parse_grid_arg("schedule.milestones=[10,20],[30]") == ("schedule.milestones", [[10, 20], [30]])
    assert parse_random_arg("optim.lr=1e-4:0.1:log") == ("optim.lr", {"low": 1e-4, "high": 0.1, "log": True})
    assert parse_random_arg("optim.momentum=0.5:0.99") == ("optim.momentum", {"low": 0.5, "high": 0.99, "log": False})
    for bad in ("optim.lr", "=1,2", "optim.lr="):
        with pytest.raises(sw.SweepError):
            parse_grid_arg(bad)
    for bad in ("optim.lr=1", "optim.lr=a:b", "optim.lr=1:2:cubic"):
        with pytest.raises(sw.SweepError):
            parse_random_arg(bad)


def _fake_trial(sweep: Sweep, index: int, *, val, test, train=0.9, state="finished", minutes=1.0):
    """A trial's run folder as the trainer leaves it."""
    folder = RunFolder.create(sweep.path, sweep.trial_experiment(index), name=f"trial-{index:03d}")
    for e, v in ((1, val - 0.05), (2, val)):
        folder.append_metrics(
            {
                "epoch": e,
                "train_loss": 0.5,
                "train_acc": train,
                "val_loss": 1.0 - v,
                "val_acc": v,
                "lr": 0.1,
                "seconds": 30.0 * minutes,
                "images_per_sec": 1.0,
            }
        )
    if state == "finished":
        folder.write_summary({"best_val_acc": val, "best_epoch": 2, "test_acc": test, "test_loss": 1.0})
    folder.write_status(state)
    return folder


def test_results_table_sorts_by_the_metric_and_writes_csv(tmp_path):
    plan = plan_trials(BASE, grid={"optim.lr": [0.0001, 0.001, 0.005], "optim.momentum": [0.9]})
    sweep = Sweep.create(tmp_path / "runs", BASE, plan, metric="val_acc", preset="alexnet-tinyimage10")
    _fake_trial(sweep, 1, val=0.164, test=0.166, train=0.165, minutes=11.33)
    _fake_trial(sweep, 2, val=0.538, test=0.546, train=0.778, minutes=10.82)
    # trial 3 never started
    rows = results_table(sweep.path)
    assert [r["trial"] for r in rows] == [2, 1, 3]
    best = rows[0]
    assert best["optim.lr"] == 0.001 and best["optim.momentum"] == 0.9
    assert (best["train_acc"], best["val_acc"], best["test_acc"], best["minutes"], best["state"]) == (
        0.778,
        0.538,
        0.546,
        10.82,
        "finished",
    )
    assert rows[2]["state"] == "pending" and rows[2]["val_acc"] is None
    assert [r["trial"] for r in results_table(sweep.path, "val_loss")] == [2, 1, 3]  # losses: lowest first
    assert [r["trial"] for r in results_table(sweep.path, "test_acc")] == [2, 1, 3]

    (tmp_path / "out").mkdir()  # --csv never makes missing folders (a typo in the path is said at once)
    out = write_csv(rows, tmp_path / "out" / "table.csv", sweep.varied)
    lines = list(csv.DictReader(out.open()))
    assert list(lines[0]) == [
        "trial",
        "optim.lr",
        "optim.momentum",
        "state",
        "epochs",
        "train_acc",
        "val_acc",
        "test_acc",
        "minutes",
        "run",
    ]
    assert lines[0]["optim.lr"] == "0.001" and lines[0]["test_acc"] == "0.546" and lines[2]["val_acc"] == ""
    # the trials are ordinary runs in the runs list
    assert {r.id for r in list_runs(tmp_path / "runs")} == {r["run"] for r in rows if r["run"]}


def test_show_on_a_sweep_folder_prints_its_table(tmp_path, capsys):
    sweep = Sweep.create(tmp_path / "runs", BASE, plan_trials(BASE, grid={"optim.lr": [0.1, 0.01]}))
    _fake_trial(sweep, 2, val=0.5, test=0.45)
    assert main(["show", str(sweep.path)]) == 0
    out = capsys.readouterr().out
    assert "sweep results" in out and " lr " in out and "45.00%" in out and "pending" in out
    assert out.index("0.01") < out.index("0.1 ")  # the finished trial (lr 0.01) first


def _cli(argv, capsys):
    code = main(["sweep", *argv])
    out = capsys.readouterr()
    return code, " ".join(out.out.split()), " ".join(out.err.split())


@pytest.mark.parametrize(
    "argv, words",
    [
        (["shapes-demo", "--grid", "optim.lr=0.1,-1"], ["optim.lr", "-1", "greater than 0"]),
        (["shapes-demo", "--grid", "optim.lrr=0.1"], ["optim.lrr", "unknown key"]),
        (["shapes-demo", "--grid", "optim.lr"], ["KEY=V1,V2"]),
        (["shapes-demo", "--random", "optim.lr=0.1:0.2"], ["trials", "trial count"]),
        (["shapes-demo", "--grid", "optim.lr=0.1", "--set", "optim.momentum=2"], ["optim.momentum"]),
        (["shapes-demo"], ["no [sweep] table"]),
        (["no-such-preset", "--grid", "optim.lr=0.1"], ["shapes-demo"]),
        ([], ["--resume"]),
    ],
)
def test_cli_errors_exit_2_naming_the_key_without_a_traceback(tmp_path, capsys, argv, words):
    code, out, err = _cli([*argv, "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2, out + err
    for w in words:
        assert w in err, err
    assert "Traceback" not in out + err and not (tmp_path / "runs").exists()


def test_cli_plan_lists_a_presets_own_grid(tmp_path, capsys):
    code, out, err = _cli(["alexnet-tinyimage10", "--plan", "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 0, err
    assert "trial 12:" in out and "trial 13" not in out
    assert "trial 1: train.batch_size=12, optim.lr=0.0001, optim.momentum=0.9, schedule.gamma=0.1" in out


@pytest.mark.slow
def test_a_tiny_grid_sweep_runs_stops_resumes_and_tabulates(tmp_path, capsys):
    """Shapes, 256 images, 1 epoch, a 2x2 grid; stopped during trial 2, then resumed from the CLI."""
    # fp32: bf16 autocast (precision "auto" on a CPU) is several times slower on CPUs without bf16 units;
    # a carved test split of 64 images instead of the generated 1,000 keeps each trial's test pass short
    small = {
        "data.train_subset": 256,
        "data.test_split": 0.25,
        "train.epochs": 1,
        "train.batch_size": 64,
        "train.precision": "fp32",
    }
    base = tiny_experiment(**small)
    grid = {"optim.lr": [0.05, 0.01], "optim.momentum": [0.9, 0.5]}
    handle, started, lines = RunHandle(), [], []

    def listener(ev):
        if isinstance(ev, RunStarted):
            started.append(ev.run_id)
        if isinstance(ev, BatchProgress) and len(started) == 2:
            handle.stop()

    first = run_sweep(
        base,
        runs_dir=tmp_path / "runs",
        grid=grid,
        preset="shapes-demo",
        workers=Workers(
            listener=listener, handle=handle, on_trial=lambda i, n, row: lines.append((i, n, row["state"]))
        ),
    )
    assert first.state == "stopped" and "--resume" in first.message
    assert lines == [(1, 4, "finished"), (2, 4, "stopped")]
    sweep = Sweep.load(first.path)
    assert (
        sweep.preset == "shapes-demo" and sweep.metric == "val_acc" and sweep.varied == ["optim.lr", "optim.momentum"]
    )
    assert sweep.trial_folder(3) is None
    done_1 = sweep.trial_folder(1)
    stopped_2 = sweep.trial_folder(2)
    metrics_1 = (done_1 / "metrics.jsonl").read_text()

    csv_path = tmp_path / "table.csv"
    code, out, err = _cli(["--resume", str(first.path), "--csv", str(csv_path)], capsys)
    assert code == 0, out + err
    assert "trial 2/4 finished" in out and "trial 3/4 finished" in out and "trial 4/4 finished" in out
    assert "trial 1/4" not in out  # finished before: not run again
    assert "sweep results" in out and str(first.path) in out

    sweep = Sweep.load(first.path)
    assert sweep.trial_folder(1) == done_1 and (done_1 / "metrics.jsonl").read_text() == metrics_1
    assert sweep.trial_folder(2) == stopped_2  # resumed in its own folder
    rows = results_table(first.path)
    assert sorted(r["trial"] for r in rows) == [1, 2, 3, 4] and all(r["state"] == "finished" for r in rows)
    vals = [r["val_acc"] for r in rows]
    assert vals == sorted(vals, reverse=True) and all(0 <= v <= 1 for v in vals)
    for r in rows:
        exp = RunFolder(first.path / r["run"]).experiment()
        assert (exp.optim.lr, exp.optim.momentum) == (r["optim.lr"], r["optim.momentum"])
        assert RunFolder(first.path / r["run"]).preset == "shapes-demo"
        assert json.loads((first.path / r["run"] / "summary.json").read_text())["test_acc"] == r["test_acc"]
    assert len(list(csv.DictReader(csv_path.open()))) == 4
    assert len([r for r in list_runs(tmp_path / "runs") if r.state == "finished"]) == 4
    # a trial is a run like any other: `cnnlab show --checkpoint last` evaluates it on demand
    assert main(["show", str(first.path / rows[0]["run"]), "--checkpoint", "last"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "test figures from the last checkpoint" in shown and "shapes-demo" in shown and "accuracy per class" in shown
    # nothing left to do: resuming again runs nothing
    again = resume_sweep(first.path, Workers(on_trial=lambda *a: pytest.fail("a finished trial ran again")))
    assert again.state == "finished"


def test_the_hyperband_pruner_as_a_sweep_sets_it_prunes_hopeless_trials_early():
    """The pruner a sweep's workers judge with (engine.sweeps.study.pruner_for), on made-up curves: epochs
    are its resource, and a trial far below the others is stopped at its first epoch, never a good one.
    The study's name is fixed: Hyperband puts trials in brackets by a hash of it and the trial number."""
    import optuna
    from optuna.trial import TrialState

    from engine.sweeps import study as st

    exp = BASE.model_copy(update={"train": BASE.train.model_copy(update={"epochs": 3})})
    sweep = Sweep("/nowhere", exp, [{}], "val_acc", "", ["optim.lr"], {"pruner": "hyperband"})
    pruner = st.pruner_for(sweep)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner) and pruner._max_resource == 3
    study = optuna.create_study(study_name="hyperband", direction="maximize", pruner=pruner)
    pruned_at = {}
    for i in range(12):
        trial, hopeless = study.ask(), i % 3 == 2
        for epoch in (1, 2):  # a worker asks after every epoch but the last
            trial.report(0.01 if hopeless else 0.5 + 0.01 * i + 0.1 * epoch, epoch)
            if trial.should_prune():
                pruned_at[i] = epoch
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, 0.01 if hopeless else 0.8 + 0.01 * i)
    assert pruned_at and all(i % 3 == 2 for i in pruned_at), pruned_at  # only hopeless ones
    assert set(pruned_at.values()) == {1}  # at their first epoch


def test_a_new_sweep_says_how_another_terminal_or_machine_joins_it(tmp_path):
    from engine.cli.sweep import join_hint

    sweep = Sweep.create(tmp_path / "runs", BASE, plan_trials(BASE, grid={"optim.lr": [0.1, 0.01]}))
    assert join_hint(sweep, None).splitlines() == [
        f"sweep folder {sweep.path}",
        f"add a worker from another terminal: cnnlab sweep --join {sweep.path}",
    ]
    hint = join_hint(sweep, "postgresql+psycopg://cnnlab:secret@db.lab/sweeps")
    # pasteable as it is: the password comes from CNNLAB_SWEEP_STORAGE, PGPASSWORD or ~/.pgpass there
    assert f"--join --storage postgresql+psycopg://cnnlab@db.lab/sweeps --study {sweep.id}" in hint
    assert "secret" not in hint  # the password stays out of the terminal's scrollback
