"""W&B runs written offline with wandb's own library: no account, no network; `wandb sync` uploads
them later. Each cnnlab run becomes a W&B run named after it, its config the dotted keys, one history
step per epoch, its summary the test figures; runs of a seed group share a W&B group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.experiment.config_doc import group_key
from engine.export.records import RunRecord, cell

PROJECT = "cnnlab"


def _history(row: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v) for k, v in row.items() if k != "epoch" and not isinstance(v, bool) and isinstance(v, (int, float))
    }


def write_offline(records: list[RunRecord], out: Path) -> list[Path]:
    """One offline W&B run per record under `out/wandb/`; returns their folders (for `wandb sync`)."""
    import wandb

    settings = wandb.Settings(mode="offline", console="off", silent=True, x_disable_stats=True, x_disable_meta=True)
    written = []
    for r in records:
        run = wandb.init(
            project=PROJECT,
            name=r.id,
            dir=str(out),
            group=group_key(r.config)[:120],
            tags=[t for t in (r.preset, r.state) if t][:2],
            config={k: cell(v) for k, v in r.config.items()},
            settings=settings,
            reinit="create_new",
        )
        try:
            for row in r.metrics:
                run.log(_history(row), step=int(row["epoch"]))
            for key, value in r.finals().items():
                run.summary[key] = value
            run.summary["state"] = r.state
        finally:
            run.finish()
        written.append(Path(run.dir).parent)
    wandb.teardown()  # the service writes the run files behind finish(): wait for it, so they are whole
    return written
