"""The optional extras the exports need: whether each is installed (without importing it), and the
one line that says how to install it when it is not."""

from __future__ import annotations

import importlib.util

EXTRAS = {"tensorboard": "tensorboard", "wandb": "wandb"}  # format -> the cnnlab extra that brings it


class ExtraMissing(Exception):
    """The format's optional extra is not installed; the message says how to install it."""


def missing_text(fmt: str) -> str:
    return f"the {fmt} export needs its extra: pip install 'cnnlab[{EXTRAS[fmt]}]'"


def available(fmt: str) -> bool:
    """Whether the format can be written here (its package importable)."""
    if fmt == "csv":
        return True
    return importlib.util.find_spec(EXTRAS[fmt]) is not None
