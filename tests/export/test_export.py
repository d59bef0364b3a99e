"""Export: the CSV has one row per run per epoch with the config as columns; TensorBoard's own
EventAccumulator reads back every scalar and the hyperparameters of an exported run; W&B offline
runs hold one history step per epoch; `train.tensorboard = true` writes events while a run trains.
The TensorBoard and W&B tests are skipped, saying so, only when their optional extra is missing
(.ci/run installs both)."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest

from engine.cli import main
from engine.export import export_runs
from tests.seed_runs import SEEDS, seed_group_runs
from tests.tiny import tiny_sets

TB_MISSING = "tensorboard is not installed (the cnnlab[tensorboard] extra; .ci/run installs it)"
WANDB_MISSING = "wandb is not installed (the cnnlab[wandb] extra; .ci/run installs it)"


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    return seed_group_runs(tmp_path / "runs")


def test_csv_has_one_row_per_run_per_epoch_and_the_config_as_columns(runs, tmp_path):
    (path,) = export_runs(runs, "csv", tmp_path / "out")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9  # three runs of three epochs
    header = list(rows[0])
    assert header[:4] == ["run", "preset", "state", "epoch"]
    assert {"train_loss", "val_acc", "lr", "peak_memory_mb", "test_acc", "optim.lr", "train.seed"} <= set(header)
    by_run: dict[str, list[dict]] = {}
    for row in rows:
        by_run.setdefault(row["run"], []).append(row)
    for run in runs:
        mine = by_run[run.name]
        seed = int(mine[0]["train.seed"])
        best, test, vals = SEEDS[seed]
        assert [int(r["epoch"]) for r in mine] == [1, 2, 3]
        assert [float(r["val_acc"]) for r in mine] == vals
        assert {float(r["test_acc"]) for r in mine} == {test}
        assert {r["optim.lr"] for r in mine} == {"0.05"}
        assert mine[0]["schedule.milestones"] == "[]"  # a list as one JSON cell


def test_tensorboard_reads_back_every_scalar_and_the_hparams(runs, tmp_path):
    pytest.importorskip("tensorboard", reason=TB_MISSING)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from engine.export.tensorboard_events import TAGS
    from engine.runfolder.folder import RunFolder

    written = export_runs(runs, "tensorboard", tmp_path / "tb")
    assert [p.name for p in written] == [r.name for r in runs]
    for run, where in zip(runs, written, strict=True):
        acc = EventAccumulator(str(where), size_guidance={"scalars": 0})
        acc.Reload()
        scalars = set(acc.Tags()["scalars"])
        for row in RunFolder(run).metrics():
            for key, value in row.items():
                if key == "epoch":
                    continue
                events = {e.step: e.value for e in acc.Scalars(TAGS[key])}
                assert events[row["epoch"]] == pytest.approx(value), (key, row["epoch"])
        seed = RunFolder(run).read_config_doc()["train"]["seed"]
        assert acc.Scalars("accuracy/test")[0].value == pytest.approx(SEEDS[seed][1])
        assert "hparam/best_val_acc" in scalars
        plugins = acc.PluginTagToContent("hparams")
        assert "_hparams_/experiment" in plugins and "_hparams_/session_start_info" in plugins
    # A second export replaces the first, rather than doubling every point.
    export_runs(runs[:1], "tensorboard", tmp_path / "tb")
    acc = EventAccumulator(str(written[0]))
    acc.Reload()
    assert len(acc.Scalars("loss/train")) == 3


def wandb_records(run_dir: Path) -> list:
    """The records of an offline W&B run (its .wandb file: LevelDB-style log blocks of protobuf)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    out, buf, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
        elif kind == 0:
            break
    return out


def test_wandb_offline_runs_hold_each_epoch(runs, tmp_path):
    pytest.importorskip("wandb", reason=WANDB_MISSING)
    written = export_runs(runs[:2], "wandb", tmp_path / "wb")
    assert len(written) == 2 and all(p.name.startswith("offline-run-") for p in written)
    for run, where in zip(runs[:2], written, strict=True):
        records = wandb_records(where)
        history = [r.history for r in records if r.WhichOneof("record_type") == "history"]
        steps = [{i.key or "/".join(i.nested_key): i.value_json for i in h.item} for h in history]
        assert [int(s["_step"]) for s in steps] == [1, 2, 3]
        assert [json.loads(s["val_acc"]) for s in steps] == SEEDS[int(run.name.split("seed")[1][0])][2]
        (meta,) = [r.run for r in records if r.WhichOneof("record_type") == "run"][:1]
        assert meta.display_name == run.name
        config = {i.key or "/".join(i.nested_key): i.value_json for i in meta.config.update}
        assert json.loads(config["optim.lr"]) == 0.05


def test_cli_exports_and_names_a_missing_extra(runs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "csv-out"
    assert main(["export", *map(str, runs), "--format", "csv", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out / "metrics.csv") in printed and "exported 3 runs as csv" in printed
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(["export", str(runs[0]), "--format", "wandb"]) == 2
    assert "pip install 'cnnlab[wandb]'" in capsys.readouterr().err


def test_train_tensorboard_writes_events_as_it_trains(tmp_path, capsys):
    pytest.importorskip("tensorboard", reason=TB_MISSING)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = tmp_path / "runs"
    sets = tiny_sets(**{"train.epochs": 2, "data.train_subset": 192, "train.tensorboard": "true"})
    assert main(["run", "shapes-demo", *sets, "--runs-dir", str(runs)]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])
    acc = EventAccumulator(str(folder / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss/train")] == [1, 2]
    assert len(acc.Scalars("batch/lr")) >= 1 and "hparam/best_val_acc" in acc.Tags()["scalars"]
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert all(r["peak_memory_mb"] > 0 for r in rows)  # each metrics line carries the peak device memory
