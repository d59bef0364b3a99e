"""What a user sees when the data cannot be had: one paragraph, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path


class DatasetMissing(Exception):
    """The dataset is not where the config says. str(e) names the path looked at, the layout
    expected and how to get it."""


class DatasetUnusable(DatasetMissing):
    """The dataset is there but cannot be used as found (an unreadable or odd-sized image, too few
    classes, a split that leaves nothing to train on). A kind of DatasetMissing so that every
    caller that reports a missing dataset reports this one the same way."""


def shown(path: str | Path) -> str:
    # Absolute, so the message is useful whatever folder the user ran from; symlinks left as typed.
    return os.path.abspath(os.path.expanduser(str(path)))


def damaged(path: str | Path, problem: str, fetch_again: str) -> DatasetUnusable:
    """A data file that is there but does not read as its format: which file, what is wrong, how to mend it."""
    return DatasetUnusable(
        f"{shown(path)} is damaged ({problem}): delete it and run again with --set data.download=true, "
        f"or fetch it again from {fetch_again}."
    )
