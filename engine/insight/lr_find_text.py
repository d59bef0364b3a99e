"""How the lr range test's result reads: the `suggested lr: …` line, the notes under it, and the field
the suggestion goes in; the same for the CLI and the console. No torch here."""

from __future__ import annotations

from typing import Any

from engine.experiment.config import PER_BATCH_SCHEDULES

RULE_TEXT = {
    "valley": "valley rule: two thirds down the longest fall of the smoothed loss, as fastai",
    "steepest": "steepest rule: where the smoothed loss falls fastest against log lr",
}


def target_field(exp: Any) -> str | None:
    """Where a suggested lr goes: schedule.max_lr for the schedules that peak there (one-cycle,
    cyclic), optim.lr otherwise; None when fine-tuning phases set their own lr."""
    if exp.train.phases:
        return None
    return "schedule.max_lr" if exp.schedule.name in PER_BATCH_SCHEDULES else "optim.lr"


def suggestion_line(finding: dict[str, Any]) -> str:
    """`suggested lr: 0.00302 (valley rule: …)`, or why there is none."""
    lr = finding.get("suggestion")
    if lr is None:
        n = len(finding.get("lrs") or [])
        return (
            f"no suggested lr: the curve has only {n} points (it stopped early); try more batches or a lower start lr"
        )
    return f"suggested lr: {lr:.3g} ({RULE_TEXT.get(finding.get('rule', ''), finding.get('rule', ''))})"


def summary_line(finding: dict[str, Any]) -> str:
    """What ran: batches, lr range, device, time, and why it stopped early."""
    n = len(finding.get("lrs") or [])
    text = (
        f"lr range test: {n} of {finding.get('batches')} batches, lr {finding.get('start_lr'):g} to "
        f"{finding.get('end_lr'):g}, on {finding.get('device')}, {finding.get('seconds', 0):.1f} s"
    )
    if finding.get("stopped_early"):
        text += f"; stopped early: {finding['stopped_early']}"
    return text


def where_line(finding: dict[str, Any]) -> str:
    """Where the suggestion goes in the experiment."""
    lr, key = finding.get("suggestion"), finding.get("target")
    if lr is None:
        return ""
    if key is None:
        return "the experiment's fine-tuning phases set their own lr: put it in train.phases"
    return f"use it: --set {key}={lr:.3g}"
