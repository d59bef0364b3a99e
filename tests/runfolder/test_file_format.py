"""cnnlab's file format number (engine.files.FORMAT) in status.json, a sweep's sweep.toml and its
trials' trial.json: a file of a newer format is refused in one line (upgrade), the run listed as
damaged and the sweep not read, rather than guessed at; an older or missing number reads as today."""

from __future__ import annotations

import json
import tomllib

import pytest

from engine.cli import main
from engine.experiment.sweep_plan import SweepError
from engine.files import FORMAT
from engine.runfolder.folder import RunFolder
from engine.runfolder.json_files import read_status
from engine.runfolder.table import list_runs
from engine.sweeps.folder import SWEEP_FILE, Sweep
from engine.sweeps.worker import TRIAL_LINK, link_trial, read_trial_link
from tests.fake_runs import make_run, summary_of
from tests.tiny import tiny_experiment

NEWER = FORMAT + 1


def _newer(name: str) -> str:
    return f"{name} was written by a newer cnnlab (format {NEWER}, this one reads up to {FORMAT}): upgrade cnnlab"


def _set_status_format(run, value) -> None:
    path = run / "status.json"
    doc = json.loads(path.read_text())
    if value is None:
        doc.pop("format", None)
    else:
        doc["format"] = value
    path.write_text(json.dumps(doc))


def test_status_json_carries_the_format_and_a_newer_one_is_refused(tmp_path):
    folder = RunFolder.create(tmp_path, tiny_experiment())
    assert json.loads((folder.path / "status.json").read_text())["format"] == FORMAT
    _set_status_format(folder.path, NEWER)
    assert read_status(folder.path / "status.json") == (None, [_newer("status.json")])
    assert folder.status() == {"state": "damaged", "message": _newer("status.json")}
    for older in (None, FORMAT - 1, FORMAT):  # missing (before the number) or older: read as today
        _set_status_format(folder.path, older)
        st, problems = read_status(folder.path / "status.json")
        assert problems == [] and st["state"] == "created", older


def test_the_runs_table_lists_a_newer_run_as_damaged_and_the_others_as_they_are(tmp_path, capsys):
    runs = tmp_path / "runs"
    good = make_run(runs, "20250122-072031-shapes-demo-ab12", summary=summary_of(3))
    stopped = make_run(runs, "20250122-081500-shapes-demo-cd34", state="stopped", epochs=5, done=2)
    newer = make_run(runs, "20250122-091500-shapes-demo-ef56", summary=summary_of(3))
    _set_status_format(newer, NEWER)
    _set_status_format(stopped, FORMAT)
    found = {r.id: r for r in list_runs(runs)}
    assert found[good.name].state == "finished" and found[good.name].problems == []
    assert found[stopped.name].state == "stopped" and found[stopped.name].problems == []
    assert found[newer.name].state == "damaged" and found[newer.name].message == _newer("status.json")
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "damaged" in rows[newer.name] and "finished" in rows[good.name] and "stopped" in rows[stopped.name]


def test_a_run_of_a_newer_format_is_not_resumed_and_nothing_of_it_is_touched(tmp_path, capsys):
    runs = tmp_path / "runs"
    run = make_run(runs, "20250122-081500-shapes-demo-cd34", state="stopped", epochs=5, done=2)
    _set_status_format(run, NEWER)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["resume", str(run), "--runs-dir", str(runs)]) == 2
    out, err = capsys.readouterr()
    assert _newer("status.json") in out + err and "Traceback" not in out + err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def _sweep_with_format(tmp_path, value) -> Sweep:
    sweep = Sweep.create(tmp_path / "runs", tiny_experiment(), [{"optim.lr": 0.1}, {"optim.lr": 0.01}])
    path = sweep.path / SWEEP_FILE
    doc = tomllib.loads(path.read_text())
    assert doc["sweep"]["format"] == FORMAT
    text = path.read_text().replace(f"format = {FORMAT}\n", "" if value is None else f"format = {value}\n", 1)
    path.write_text(text)
    return sweep


@pytest.mark.parametrize("value", [None, FORMAT - 1, FORMAT])
def test_a_sweep_toml_of_this_or_an_older_format_reads(tmp_path, value):
    sweep = _sweep_with_format(tmp_path, value)
    loaded = Sweep.load(sweep.path)
    assert loaded.trials == sweep.trials and "format" not in loaded.spec


def test_a_sweep_toml_of_a_newer_format_is_refused_in_one_line(tmp_path, capsys):
    sweep = _sweep_with_format(tmp_path, NEWER)
    with pytest.raises(SweepError) as err:
        Sweep.load(sweep.path)
    assert str(err.value) == _newer(str(sweep.path / SWEEP_FILE))
    code = main(["sweep", "--resume", str(sweep.path)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "newer cnnlab" in lines[0] and "Traceback" not in lines[0], lines
    assert sorted(p.name for p in sweep.path.iterdir()) == [SWEEP_FILE]  # nothing written: no study, no trial


def test_trial_json_carries_the_format_and_a_newer_one_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    link_trial(run, "study-a", 3, 7)
    link_trial(run, "study-a", 3, 9)  # a resumed slot: its new trial is added
    assert json.loads((run / TRIAL_LINK).read_text()) == {
        "format": FORMAT,
        "study": "study-a",
        "slot": 3,
        "trials": [7, 9],
    }
    (run / TRIAL_LINK).write_text(json.dumps({"study": "study-a", "slot": 3, "trials": [7]}))  # before the number
    assert read_trial_link(run)["trials"] == [7]
    for damaged in ("[1, 2]", '{"trials": 5}', '{"tri'):
        (run / TRIAL_LINK).write_text(damaged)
        link_trial(run, "study-a", 3, 9)  # rewritten whole
        assert json.loads((run / TRIAL_LINK).read_text())["trials"] == [9], damaged
    (run / TRIAL_LINK).write_text(json.dumps({"format": NEWER, "study": "study-a", "slot": 3, "trials": [7]}))
    with pytest.raises(SweepError) as err:
        link_trial(run, "study-a", 3, 9)
    assert str(err.value) == _newer(str(run / TRIAL_LINK))
    assert json.loads((run / TRIAL_LINK).read_text())["format"] == NEWER  # left as the newer cnnlab wrote it
