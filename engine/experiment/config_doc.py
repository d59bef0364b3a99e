"""A run's config.toml as flat data, without pydantic: the dotted keys `cnnlab keys` lists
(`optim.lr`) with the values as written, and each value as one scalar cell (for a CSV column, a
TensorBoard hyperparameter, a W&B config entry). What ran is what is read: nothing is re-validated.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def flatten_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """config.toml's sections as dotted keys, without the [run] bookkeeping."""
    out: dict[str, Any] = {}
    for section, values in doc.items():
        if section == "run" or not isinstance(values, dict):
            continue
        for key, value in values.items():
            out[f"{section}.{key}"] = value
    return out


def cell(value: Any) -> str | int | float | bool | None:
    """A config value as one scalar: lists and tables (milestones, phases) as compact JSON."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value


SEED_KEY = "train.seed"


def group_key(config: dict[str, Any]) -> str:
    """The same for two configs exactly when they differ in train.seed alone (a short hash)."""
    rest = {k: v for k, v in config.items() if k != SEED_KEY}
    return hashlib.sha1(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:10]
