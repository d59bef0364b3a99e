"""A run's config.toml as flat data, without pydantic: the dotted keys `cnnlab keys` lists
(`optim.lr`) with the values as written, and each value as one scalar cell (for a CSV column, a
TensorBoard hyperparameter, a W&B config entry). What ran is what is read: nothing is re-validated.
"""

from __future__ import annotations

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
