"""Training a run on past the epochs it was made for (`cnnlab resume RUN_DIR --epochs N`).

The run's config becomes the longer experiment (the last fine-tuning phase takes the extra epochs),
and config.toml's `[run]` table keeps a record of each extension: when, from and to how many epochs,
what became of the schedule, and the figures of the finish it replaced.

The schedule is recomputed over the new length, as if the run had been made that long: schedules that
do not depend on the length (constant, step, multistep, exponential, cyclic, plateau) simply go on;
those that do (cosine, linear, polynomial, onecycle) follow the longer curve from the next epoch, so
the learning rate usually rises again, and the words recorded say by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tomli_w

from engine.experiment.config import Experiment
from engine.experiment.errors import ConfigError
from engine.experiment.overrides import apply_overrides
from engine.files import atomic_write_text, timestamp
from engine.runfolder.folder import RunFolder

# The schedules whose formula does not depend on the run's length.
LENGTH_FREE = ("constant", "step", "multistep", "exponential", "cyclic", "plateau")


@dataclass
class Extension:
    experiment: Experiment
    words: str  # what happens to the schedule, for the log and the record


def extension(exp: Experiment, epochs: int, done: int) -> Extension:
    """`exp` made `epochs` long, having done `done` epochs; ConfigError (naming train.epochs) if it cannot be."""
    old = exp.train.epochs
    if epochs <= done:
        raise ConfigError([("train.epochs", f"the run has done {done} epochs already; ask for more than {done}")])
    updates: dict[str, Any] = {"train.epochs": epochs}
    if exp.train.phases:
        phases = [p.model_dump(mode="json") for p in exp.train.phases]
        phases[-1]["epochs"] += epochs - old
        if phases[-1]["epochs"] < 1:
            raise ConfigError([("train.epochs", f"the phases need at least {old - phases[-1]['epochs'] + 1}")])
        updates["train.phases"] = phases
    longer = apply_overrides(exp, updates)
    return Extension(longer, _schedule_words(exp, longer, done))


def _schedule_words(old: Experiment, new: Experiment, done: int) -> str:
    s = new.schedule
    span = (
        f"the last phase's {new.train.phases[-1].epochs} epochs" if new.train.phases else f"{new.train.epochs} epochs"
    )
    if s.name in LENGTH_FREE:
        return f"the {s.name} schedule does not depend on the run's length: it goes on as it was"
    before, after = _lr_at(old, done), _lr_at(new, done)
    return (
        f"the {s.name} schedule is recomputed over {span}: the lr at epoch {done + 1} is {after:.3g} "
        f"(it was {before:.3g} on the shorter curve)"
    )


def _lr_at(exp: Experiment, epoch: int) -> float:
    """The lr at the start of a 0-based epoch, per epoch (the batch count of an epoch does not matter here)."""
    from engine.training.optim import LRSchedule, phase_at  # torch: not for the console's question of how long

    idx, phase, start = phase_at(exp.train, epoch)
    base = phase.lr if phase is not None else exp.optim.lr
    span = phase.epochs if phase is not None else exp.train.epochs
    return LRSchedule(exp.schedule, base, span, 1).lr(min(epoch - start, span), 0)


def record(folder: RunFolder, ext: Extension, old_epochs: int, summary: dict[str, Any]) -> None:
    """config.toml becomes the longer experiment, with the extension noted in its `[run]` table."""
    doc = folder.read_config_doc()
    meta = doc.get("run") if isinstance(doc.get("run"), dict) else {}
    entry: dict[str, Any] = {
        "at": timestamp(),
        "from_epochs": old_epochs,
        "to_epochs": ext.experiment.train.epochs,
        "schedule": ext.words,
    }
    before = {k: summary[k] for k in ("best_val_acc", "test_acc", "best_epoch") if summary.get(k) is not None}
    if before:
        entry["finished_before"] = before
    meta = {**meta, "extended": [*(meta.get("extended") or []), entry]}
    body = ext.experiment.model_dump(mode="json", exclude_none=True)
    atomic_write_text(folder.path / "config.toml", tomli_w.dumps({"run": meta, **body}))
