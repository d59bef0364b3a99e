"""Runs as one CSV: one row per run per finished epoch, the run's figures and its whole config as
columns (pandas, a spreadsheet or R read it as it is).

Columns: run, preset, state, then every metric any run has (epoch first, metrics.jsonl's order),
the summary's best_val_acc, best_epoch, test_acc, test_loss (the same on every row of a run), then
every config key (`optim.lr`, …) any run has. A value a run lacks is an empty cell.
"""

from __future__ import annotations

import csv
from pathlib import Path

from engine.export.records import SUMMARY_KEYS, RunRecord, cell
from engine.files import atomic_write_text


def _union(keys_of: list[list[str]]) -> list[str]:
    out: list[str] = []
    for keys in keys_of:
        out.extend(k for k in keys if k not in out)
    return out


def columns(records: list[RunRecord]) -> list[str]:
    metrics = _union([list(row) for r in records for row in r.metrics])
    if "epoch" in metrics:
        metrics.remove("epoch")
    config = _union([list(r.config) for r in records])
    return ["run", "preset", "state", "epoch", *metrics, *SUMMARY_KEYS, *config]


def rows(records: list[RunRecord]) -> list[dict[str, object]]:
    out = []
    for r in records:
        fixed = {"run": r.id, "preset": r.preset, "state": r.state, **r.finals()}
        config = {k: cell(v) for k, v in r.config.items()}
        for row in r.metrics:
            out.append({**config, **row, **fixed})
    return out


def write_csv(records: list[RunRecord], path: Path) -> Path:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(records), restval="", extrasaction="ignore")
    writer.writeheader()
    for row in rows(records):
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(Path(path), buf.getvalue())
    return Path(path)
