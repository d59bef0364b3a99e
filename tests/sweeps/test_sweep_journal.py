"""A damaged study.journal (a line of garbage, JSON that is not Optuna's, an empty file) is one line
naming the file from `cnnlab sweep --resume` and the sweep view, never a traceback, and the file and
the run folders are left as they were; a last line cut short is dropped at the next write (under
the journal's lock), instead of fusing with the next record into a line that never reads."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.experiment.sweep_plan import SweepError
from engine.sweeps import study as st
from engine.sweeps.folder import Sweep
from engine.sweeps.journal import cut_short
from engine.sweeps.view import SweepReader
from tests.tiny import tiny_experiment


def _sweep(tmp_path, finished: bool = False) -> tuple[Sweep, bytes]:
    sweep = Sweep.create(tmp_path / "runs", tiny_experiment(), [{"optim.lr": 0.1}, {"optim.lr": 0.01}])
    ss = st.create_study(sweep, st.open_storage(sweep.path))
    while finished and (trial := st.pop_trial(ss)) is not None:
        ss.study.tell(trial, 0.5)
    (sweep.path / "a-run-folder").mkdir()  # what must outlive any damage to the journal
    return sweep, (sweep.path / st.JOURNAL_FILE).read_bytes()


def _damage(good: bytes) -> dict[str, bytes]:
    lines = good.splitlines(keepends=True)
    return {
        "garbage first": b"\x00\xffnot json\n" + good,
        "garbage between": b"".join(lines[:2]) + b'{"op_code": 4, "stu\n' + b"".join(lines[2:]),
        "json not optuna's": b"".join(lines[:1]) + b"[1, 2, 3]\n" + b"".join(lines[1:]),
        "empty": b"",
    }


@pytest.mark.parametrize("case", ["garbage first", "garbage between", "json not optuna's", "empty"])
def test_a_damaged_journal_is_one_line_naming_it_and_nothing_is_lost(tmp_path, capsys, case):
    sweep, good = _sweep(tmp_path)
    journal = sweep.path / st.JOURNAL_FILE
    journal.write_bytes(_damage(good)[case])
    before = sorted(p.name for p in sweep.path.iterdir())
    code = main(["sweep", "--resume", str(sweep.path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(journal) in " ".join(err.split()) and ("damaged" in err or "empty" in err), err
    with pytest.raises(SweepError, match="study.journal"):  # the console's sweep screen shows this line
        SweepReader(sweep.path).read()
    assert journal.read_bytes() == _damage(good)[case]  # left for the user to look at, not rewritten
    assert sorted(p.name for p in sweep.path.iterdir()) == before


def test_damage_after_the_view_opened_is_one_line_too(tmp_path):
    sweep, good = _sweep(tmp_path)
    reader = SweepReader(sweep.path)
    assert len(reader.read().trials) == 2
    with open(sweep.path / st.JOURNAL_FILE, "ab") as f:
        f.write(b"\x00garbage\n" + good.splitlines(keepends=True)[-1])
    with pytest.raises(SweepError, match="study.journal is damaged"):
        reader.read()


def test_a_last_line_cut_short_is_dropped_at_the_next_write(tmp_path, capsys):
    sweep, _ = _sweep(tmp_path, finished=True)
    ss = st.load_study(sweep)
    ss.study.set_user_attr("note", "this record is cut short")
    journal = sweep.path / st.JOURNAL_FILE
    journal.write_bytes(journal.read_bytes()[:-12])  # a copy cut short, a disk that filled
    assert cut_short(journal)
    main(["sweep", "--resume", str(sweep.path)])  # every slot finished: nothing trains
    out = " ".join(capsys.readouterr().out.split())
    assert f"{journal}: its last line is cut short" in out, out
    assert not cut_short(journal)
    records = [json.loads(line) for line in journal.read_bytes().splitlines()]  # every line reads again
    assert all(isinstance(r.get("op_code"), int) for r in records)
    ss = st.load_study(sweep)
    assert st.sweep_state(ss) == "running" and "note" not in ss.study.user_attrs  # only the cut record is lost
    assert len(ss.trials()) == 2 and all(t.state.name == "COMPLETE" for t in ss.trials())
