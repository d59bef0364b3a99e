"""Run folders of one experiment under three seeds (and one other run), in the real format with
fixed ids, times and figures: what the seed-group, export and console tests read."""

from __future__ import annotations

import json
from pathlib import Path

from engine.runfolder.folder import RunFolder
from tests.fake_runs import summary_of
from tests.tiny import tiny_experiment

# seed: (best val acc, test acc, per-epoch val acc)
SEEDS = {
    0: (0.50, 0.40, [0.30, 0.45, 0.50]),
    1: (0.60, 0.55, [0.35, 0.60, 0.58]),
    2: (0.80, 0.70, [0.40, 0.70, 0.80]),
}


def write_run(
    runs_dir: Path,
    run_id: str,
    *,
    seed: int = 0,
    lr: float = 0.05,
    vals: list[float] = (0.3, 0.4),
    best: float | None = None,
    test: float | None = None,
    started: str = "2025-01-22T07:20:31",
) -> Path:
    exp = tiny_experiment(**{"train.epochs": len(vals), "optim.lr": lr, "train.seed": seed})
    path = Path(runs_dir) / run_id
    (path / "checkpoints").mkdir(parents=True)
    folder = RunFolder(path)
    folder.write_config(exp, "shapes-demo")
    for e, v in enumerate(vals, 1):
        folder.append_metrics(
            {
                "epoch": e,
                "train_loss": round(2.0 / e, 4),
                "train_acc": round(v + 0.05, 4),
                "val_loss": round(2.2 / e, 4),
                "val_acc": v,
                "lr": lr,
                "seconds": 1.5,
                "images_per_sec": 900.0,
                "peak_memory_mb": 512.0,
            }
        )
    status = {"state": "finished", "message": "", "pid": 1, "created": started, "started": started, "updated": started}
    (path / "status.json").write_text(json.dumps(status))
    summary = summary_of(len(vals))
    summary.update(best_val_acc=best if best is not None else max(vals), test_acc=test)
    folder.write_summary(summary)
    return path


def seed_group_runs(runs_dir: Path) -> list[Path]:
    """Three seeds of one experiment (newest last) and one run with another lr (not in the group)."""
    paths = []
    for seed, (best, test, vals) in SEEDS.items():
        started = f"2025-01-22T0{7 + seed}:20:31"
        run_id = f"20250122-0{7 + seed}2031-shapes-demo-seed{seed}-a{seed}b{seed}"
        paths.append(write_run(runs_dir, run_id, seed=seed, vals=vals, best=best, test=test, started=started))
    write_run(
        runs_dir, "20250121-101010-shapes-demo-c0d0", lr=0.2, vals=[0.2, 0.3], test=0.25, started="2025-01-21T10:10:10"
    )
    return paths
