"""An experiment as dotted keys (`optim.lr`), the form `--set` speaks: every key there is, a value
read from its `--set` text, keys set on a copy that is validated again, and an experiment read back
as the same flat keys (what the runs table, compare, sweeps and the console's form read).

The keys are the sections and fields of engine/experiment/config.py; nothing here names one.
"""

from __future__ import annotations

from typing import Any

from engine.experiment import toml_files
from engine.experiment.config import Experiment, validate_experiment
from engine.experiment.errors import ConfigError, known_keys_hint


def all_keys() -> list[tuple[str, Any]]:
    """Every dotted key with its pydantic FieldInfo, in form order."""
    keys = []
    for section, f in Experiment.model_fields.items():
        for name, info in f.annotation.model_fields.items():
            keys.append((f"{section}.{name}", info))
    return keys


def parse_value(text: str) -> Any:
    """A `--set` value: TOML syntax when it parses (numbers, booleans, lists), else a plain string.
    A ValueError for a value nested too deeply for the parser (no field takes more than two levels)."""
    try:
        return toml_files.loads(f"v = {text}")["v"]
    except toml_files.TomlError as err:
        if "nested too deeply" in err.problem:
            raise ValueError(
                f"the value {text[:20]}… is nested too deeply: no field takes more than lists of lists"
            ) from None
        return text


def apply_overrides(exp: Experiment, overrides: dict[str, Any]) -> Experiment:
    """Return a validated copy with dotted keys (`optim.lr`) set; errors name the key."""
    data = exp.model_dump(mode="json")
    problems = []
    for key, value in overrides.items():
        section, _, field = key.partition(".")
        if section not in Experiment.model_fields or not field or "." in field:
            sections = ", ".join(Experiment.model_fields)
            problems.append((key, f"unknown key; use SECTION.FIELD with a section of {sections}"))
            continue
        if field not in Experiment.model_fields[section].annotation.model_fields:
            problems.append((key, f"unknown key; {known_keys_hint(Experiment, (section, field))}"))
            continue
        data[section][field] = None if value == "" else value
    if problems:
        raise ConfigError(problems)
    return validate_experiment(data)


def flatten(exp: Experiment) -> dict[str, Any]:
    """`{"optim.lr": 0.01, ...}`: what the runs table, compare and sweeps read."""
    out = {}
    for section, values in exp.model_dump(mode="json").items():
        for k, v in values.items():
            out[f"{section}.{k}"] = v
    return out
