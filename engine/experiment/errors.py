"""What a config that does not validate says: a ConfigError that names the file and each field, and
pydantic's errors worded for a person (an unknown key is told the keys its section knows).

The words do not depend on which model failed: the known keys are read from the model that was
validated, which the caller names, so an experiment's, a preset's and a sweep form's problems read
alike. No torch, and nothing of the experiment itself: engine/experiment/config.py raises these.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

SHOWN_PROBLEMS = 10  # a file of a million unknown keys is summarised: the first few, then a count


class ConfigError(ValueError):
    """A config that does not validate, with messages that name each field."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        shown = "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        super().__init__(where + shown + (f"; and {more} more problems" if more > 0 else ""))


def describe_errors(err: ValidationError, model: type[BaseModel]) -> list[tuple[str, str]]:
    """pydantic's errors from validating `model`, as (field path, message) pairs a person can act on."""
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] in ("extra_forbidden", "unexpected_keyword_argument"):  # a model's, a dataclass's
            msg = f"unknown key; {known_keys_hint(model, e['loc'])}"
        elif e["type"] == "literal_error":
            msg = "must be one of " + e.get("ctx", {}).get("expected", "").replace("'", "")
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
            # Cross-field errors name their field first ("schedule.max_lr: ..."): use it as the location.
            head, sep, rest = msg.partition(": ")
            if sep and "." in head and " " not in head:
                loc, msg = head, rest
        out.append((loc, msg))
    return out


def known_keys_hint(model: type[BaseModel], loc: tuple) -> str:
    """What to tell an unknown key at `loc`: the keys of the section that holds it, found from `model` down
    (`cnnlab keys` where the path leaves the nested models)."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return "see `cnnlab keys`"
    return "known keys: " + ", ".join(model.model_fields)
