"""The best score so far and the epochs since it: which epoch's checkpoint is also best.pt, and when
train.early_stop ends a run. The score is the validation accuracy, the training accuracy where the run
has no validation split; a resume counts the epochs since the best again from the metrics it keeps.
"""

from __future__ import annotations

from typing import Any


class BestScore:
    def __init__(self, best: float | None, history: list[dict[str, Any]], patience: int | None) -> None:
        self.best, self.patience = best, patience
        self.bad_epochs = _epochs_since_best(history, best)

    def update(self, score: float) -> bool:
        """An epoch's score: whether it is the best so far."""
        improved = self.best is None or score > self.best
        self.best, self.bad_epochs = (score, 0) if improved else (self.best, self.bad_epochs + 1)
        return improved

    @property
    def out_of_patience(self) -> bool:
        """No better score for train.early_stop epochs."""
        return self.patience is not None and self.bad_epochs >= self.patience


def _epochs_since_best(history: list[dict], best: float | None) -> int:
    if best is None or not history:
        return 0
    key = "val_acc" if history[-1].get("val_acc") is not None else "train_acc"
    n = 0
    for row in reversed(history):
        if row.get(key) is not None and row[key] >= best:
            break
        n += 1
    return n
