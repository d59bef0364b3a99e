"""A run folder read for export: its id, preset, state, flattened config, metrics and summary.

Torch-free and pydantic-free: the config is read as the TOML it is (what ran, exactly), flattened to
the dotted keys `cnnlab keys` lists (`optim.lr`), so an export of a thousand runs is quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.experiment.config_doc import cell, flatten_doc
from engine.runfolder.folder import RunFolder
from engine.runfolder.table import read_run

__all__ = ["SUMMARY_KEYS", "RunRecord", "cell", "flat_row", "flatten_doc", "read_record"]

# The figures of summary.json an export carries beside the per-epoch metrics.
SUMMARY_KEYS = ("best_val_acc", "best_epoch", "test_acc", "test_loss")


@dataclass
class RunRecord:
    id: str
    path: Path
    preset: str
    state: str
    config: dict[str, Any]  # dotted keys, values as in config.toml
    metrics: list[dict[str, Any]]
    summary: dict[str, Any]

    def finals(self) -> dict[str, Any]:
        """The summary figures an export carries (those present)."""
        return {k: self.summary[k] for k in SUMMARY_KEYS if self.summary.get(k) is not None}


def read_record(path: Path) -> RunRecord:
    info = read_run(Path(path))
    if info is None:
        raise FileNotFoundError(f"{path} is not a run folder (no config.toml)")
    folder = RunFolder(info.path)
    return RunRecord(
        id=info.id,
        path=info.path,
        preset=info.preset,
        state=info.state,
        config=flatten_doc(folder.read_config_doc()),
        metrics=[flat_row(row) for row in folder.metrics()],
        summary=folder.summary(),
    )


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """A metrics line with its per-rank lists (`peak_memory_mb_ranks`) as one figure per rank
    (`peak_memory_mb_rank0`, …): every exporter takes numbers, one per column or tag."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, list) and key.endswith("_ranks"):
            out.update({f"{key[: -len('_ranks')]}_rank{i}": v for i, v in enumerate(value)})
        else:
            out[key] = value
    return out
