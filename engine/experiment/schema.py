"""What engine.experiment.config's pydantic schema says about each field, read in one place for every view.

The console's form and `cnnlab keys` describe fields from here: the editor a field needs (from
its annotation), its bounds (from its metadata), the titles of its choices (from the field's
`json_schema_extra`), how to type a list, and which field a validation problem belongs to.
Nothing here names a field: add one to engine/experiment/config.py and every view has it.

No torch and no Textual: `cnnlab keys` stays fast and the engine never imports the console.
"""

from __future__ import annotations

import json
import re
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from engine.experiment.config import Experiment
from engine.experiment.overrides import all_keys, parse_value

# The metadata pydantic keeps for `gt=`, `ge=`, `lt=`, `le=`, and how each reads.
_BOUNDS = ((Gt, "gt", ">"), (Ge, "ge", "≥"), (Lt, "lt", "<"), (Le, "le", "≤"))


def strip_optional(annotation: Any) -> tuple[Any, bool]:
    """`int | None` → (int, True); anything else → (it, False)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) < len(get_args(annotation)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True
    return annotation, False


def bounds(info: FieldInfo) -> list[tuple[str, Any]]:
    """A field's numeric bounds in the order it declares them: `gt=0, le=10` → [(">", 0), ("≤", 10)]."""
    out = []
    for m in info.metadata:
        for kind, attr, symbol in _BOUNDS:
            if isinstance(m, kind):
                out.append((symbol, getattr(m, attr)))
    return out


def describe_bounds(info: FieldInfo) -> str:
    """`Gt(0), Le(10)` → "> 0, ≤ 10", with length limits in words; what the form's help shows."""
    words = [f"{symbol} {_number(value)}" for symbol, value in bounds(info)]
    for m in info.metadata:
        if isinstance(m, MinLen):
            words.append(f"at least {m.min_length} character{'s' if m.min_length > 1 else ''}")
        elif isinstance(m, MaxLen):
            words.append(f"at most {m.max_length} characters")
    return ", ".join(words)


def accepts(info: FieldInfo) -> str:
    """What a field takes in one phrase: its choices, or its type with bounds ("float > 0.0, ≤ 10.0
    or empty"); the `accepts` column of `cnnlab keys`."""
    base, optional = strip_optional(info.annotation)
    if get_origin(base) is Literal:
        return " | ".join(str(a) for a in get_args(base))
    limits = ", ".join(f"{symbol} {value}" for symbol, value in bounds(info))
    return f"{_type_name(base)}{' ' + limits if limits else ''}{' or empty' if optional else ''}"


def _type_name(annotation: Any) -> str:
    """`list[Annotated[int, ...]]` → "list of int"; a plain type → its name."""
    if get_origin(annotation) is Annotated:
        return _type_name(get_args(annotation)[0])
    if get_origin(annotation) is list and get_args(annotation):
        return "list of " + _type_name(get_args(annotation)[0])
    origin = get_origin(annotation) or annotation
    return getattr(origin, "__name__", str(origin))


def _number(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def option_titles(info: FieldInfo) -> dict[str, str]:
    """The titles a choice field gives its options (engine.experiment.config puts them in json_schema_extra)."""
    extra = info.json_schema_extra
    titles = extra.get("option_titles") if isinstance(extra, dict) else None
    return dict(titles) if isinstance(titles, dict) else {}


def value_hint(annotation: Any) -> str:
    """How to type a list, tuple or table field, from its annotation."""
    annotation, _ = strip_optional(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict:
        return "TOML table, e.g. {name = value}"
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"TOML list of {len(args)} numbers, e.g. [{', '.join(['0.5'] * len(args))}]"
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        names = ", ".join(f"{n} = …" for n in args[0].model_fields)
        return f"TOML list of tables, e.g. [{{{names}}}]"
    return "TOML list, e.g. [1, 2]"


def inline_toml(value: Any) -> str:
    """A value as TOML inline syntax that engine.experiment.overrides.parse_value reads back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are valid in a TOML basic string
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {inline_toml(v)}" for k, v in value.items() if v is not None) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(inline_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


@dataclass(frozen=True)
class FieldSpec:
    """One field as an editor sees it: which kind of editor, and how its text becomes a value."""

    key: str  # "optim.lr"
    info: FieldInfo
    kind: str  # switch, select, number, integer, text, value
    optional: bool
    choices: tuple[Any, ...] = ()
    is_list: bool = False

    @property
    def section(self) -> str:
        return self.key.partition(".")[0]

    @property
    def name(self) -> str:
        return self.key.partition(".")[2]

    @property
    def title(self) -> str:
        return self.info.title or self.name.replace("_", " ").capitalize()

    def help_text(self) -> str:
        parts = [self.info.description or ""]
        described = describe_bounds(self.info)
        if described:
            parts.append(f"[{described}]")
        if self.kind == "value":
            parts.append(value_hint(self.info.annotation))
        if self.optional and "empty" not in (self.info.description or ""):
            parts.append("(may be empty)")
        return " ".join(p for p in parts if p)

    def option_label(self, choice: Any) -> str:
        """A choice as a select lists it: "on"/"off", or "cifar10 · CIFAR-10" where it has a title."""
        if isinstance(choice, bool):
            return "on" if choice else "off"
        title = option_titles(self.info).get(choice)
        return f"{choice} · {title}" if title else str(choice)

    def to_text(self, value: Any) -> str:
        """The editor's text for a value (text editors only)."""
        if value is None:
            return ""
        if self.kind in ("number", "integer"):
            return repr(value) if isinstance(value, float) else str(value)
        if self.kind == "text":
            return str(value)
        return inline_toml(value)

    def parse(self, raw: Any) -> Any:
        """An editor's value (a switch's bool, a select's choice or None, else text) → what goes into
        the candidate dict for pydantic to judge."""
        if self.kind == "switch":
            return bool(raw)
        if self.kind == "select":
            return raw
        text = str(raw)
        if self.kind != "text":
            text = text.strip()
        if text == "":
            if self.optional:
                return None
            return [] if self.is_list else ""
        if self.kind in ("number", "integer", "text"):
            return text  # pydantic parses numbers from text and words its own message
        value = parse_value(text)
        if self.is_list and not isinstance(value, list):
            # Let "150, 200" mean the list [150, 200].
            wrapped = parse_value(f"[{text}]")
            if isinstance(wrapped, list):
                value = wrapped
        return value


def spec_for(key: str, info: FieldInfo) -> FieldSpec:
    annotation, optional = strip_optional(info.annotation)
    origin = get_origin(annotation)
    if annotation is bool:
        if optional:
            return FieldSpec(key, info, "select", True, (True, False))
        return FieldSpec(key, info, "switch", False)
    if origin is Literal:
        return FieldSpec(key, info, "select", optional, get_args(annotation))
    if annotation is int:
        return FieldSpec(key, info, "integer", optional)
    if annotation is float:
        return FieldSpec(key, info, "number", optional)
    if annotation is str:
        return FieldSpec(key, info, "text", optional)
    return FieldSpec(key, info, "value", optional, is_list=origin in (list, tuple))


def field_specs() -> list[FieldSpec]:
    """Every field of engine.experiment.config, in form order."""
    return [spec_for(key, info) for key, info in all_keys()]


def sections() -> list[tuple[str, str]]:
    """(section name, tab title) in the model's order."""
    return [(name, f.title or name.capitalize()) for name, f in Experiment.model_fields.items()]


def locate_problems(problems: list[tuple[str, str]], keys: set[str]) -> dict[str, str]:
    """ConfigError problems → {field key (or section, or "" for the whole experiment): message}.

    "data.mean.1" belongs to data.mean (the tail goes into the message); a section's own rule
    ("model": "backbone_channels and backbone_k ...") goes to the first field its message names.
    """
    out: dict[str, str] = {}
    for loc, msg in problems:
        parts = loc.split(".") if loc else []
        where = ""
        if len(parts) >= 2 and ".".join(parts[:2]) in keys:
            where = ".".join(parts[:2])
            tail = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts[2:]).lstrip(".")
            if tail:
                msg = f"{tail}: {msg}"
        elif parts:
            where = parts[0]
            named = [
                (m.start(), f"{where}.{name}")
                for name in (k.partition(".")[2] for k in keys if k.startswith(where + "."))
                for m in [re.search(rf"\b{re.escape(name)}\b", msg)]
                if m
            ]
            if named:
                where = min(named)[1]
        out[where] = f"{out[where]}; {msg}" if where in out else msg
    return out
