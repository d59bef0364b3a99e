"""Runs out of cnnlab, into the tools people already read: a CSV (engine/export/csv_rows.py),
TensorBoard event files (tensorboard_events.py, TensorBoard's own writer) and W&B offline runs
(wandb_offline.py, for `wandb sync` later). The last two are optional extras; without them the
export says which one to install, in one line.

`export_runs(paths, fmt, out)` is the one door the CLI (`cnnlab export`) and the runs screen use.
"""

from __future__ import annotations

from pathlib import Path

from engine.export.extras import ExtraMissing, available, missing_text
from engine.export.records import RunRecord, read_record

FORMATS = ("csv", "tensorboard", "wandb")

__all__ = ["FORMATS", "ExtraMissing", "RunRecord", "available", "export_runs", "missing_text", "read_record"]


def export_runs(paths: list[Path], fmt: str, out: Path) -> list[Path]:
    """Write the runs in `paths` to `out` in `fmt`; returns what was written (files or folders)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not available(fmt):
        raise ExtraMissing(missing_text(fmt))
    records = [read_record(Path(p)) for p in paths]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        from engine.export.csv_rows import write_csv

        return [write_csv(records, out / "metrics.csv")]
    if fmt == "tensorboard":
        from engine.export.tensorboard_events import write_events

        return [write_events(r, out) for r in records]
    from engine.export.wandb_offline import write_offline

    return write_offline(records, out)
