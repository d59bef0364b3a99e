"""The experiment form, generated from engine.config's pydantic models.

Every section of `Experiment` becomes a tab and every field a row: its title, an editor chosen
from the field's type (bool → Switch, Literal → Select, numbers and text → Input, lists and
tuples → an Input holding TOML), the field's description with the bounds read from its
metadata, and the problem pydantic reports for it. Nothing here names a field, a range or a
choice: add a field to engine/config.py and it appears in the form.

Each edit rebuilds the candidate dict and runs engine.config.validate_experiment on it, so the
form shows exactly what the engine would refuse, cross-field rules included. A tab's rows are
built the first time the tab is shown: the editor opens at once.
"""

from __future__ import annotations

import json
import re
import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch, TabbedContent, TabPane

from engine.config import ARCHS, DATASETS, ConfigError, Experiment, all_keys, flatten, parse_value, validate_experiment

CHANGED_MARK = "●"

# Choice fields whose values engine.config also describes in a table: the option label shows it.
OPTION_TITLES: dict[str, dict[str, dict[str, Any]]] = {"data.dataset": DATASETS, "model.arch": ARCHS}


# --- what a field is, read from its FieldInfo ------------------------------------------------


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    """`int | None` → (int, True); anything else → (it, False)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) < len(get_args(annotation)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True
    return annotation, False


@dataclass(frozen=True)
class FieldSpec:
    """One form field: which editor it gets and how its text becomes a candidate value."""

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
    def widget_id(self) -> str:
        return "field-" + self.key.replace(".", "-")

    @property
    def title(self) -> str:
        return self.info.title or self.name.replace("_", " ").capitalize()

    def help_text(self) -> str:
        parts = [self.info.description or ""]
        bounds = describe_bounds(self.info)
        if bounds:
            parts.append(f"[{bounds}]")
        if self.kind == "value":
            parts.append(value_hint(self.info.annotation))
        if self.optional and "empty" not in (self.info.description or ""):
            parts.append("(may be empty)")
        return " ".join(p for p in parts if p)

    def to_text(self, value: Any) -> str:
        """The editor's text for a value (Input kinds only)."""
        if value is None:
            return ""
        if self.kind in ("number", "integer"):
            return repr(value) if isinstance(value, float) else str(value)
        if self.kind == "text":
            return str(value)
        return inline_toml(value)

    def parse(self, raw: Any) -> Any:
        """The editor's raw value → what goes into the candidate dict for pydantic to judge."""
        if self.kind == "switch":
            return bool(raw)
        if self.kind == "select":
            return None if raw is Select.NULL else raw
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
    annotation, optional = _strip_optional(info.annotation)
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
    """Every field of engine.config, in form order."""
    return [spec_for(key, info) for key, info in all_keys()]


def describe_bounds(info: FieldInfo) -> str:
    """`Gt(0), Le(10)` → "> 0, ≤ 10"; read from the field, never written here."""
    words = []
    for m in info.metadata:
        if isinstance(m, Gt):
            words.append(f"> {_number(m.gt)}")
        elif isinstance(m, Ge):
            words.append(f"≥ {_number(m.ge)}")
        elif isinstance(m, Lt):
            words.append(f"< {_number(m.lt)}")
        elif isinstance(m, Le):
            words.append(f"≤ {_number(m.le)}")
        elif isinstance(m, MinLen):
            words.append(f"at least {m.min_length} character{'s' if m.min_length > 1 else ''}")
        elif isinstance(m, MaxLen):
            words.append(f"at most {m.max_length} characters")
    return ", ".join(words)


def _number(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def value_hint(annotation: Any) -> str:
    """How to type a list or tuple field, from its annotation."""
    annotation, _ = _strip_optional(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"TOML list of {len(args)} numbers, e.g. [{', '.join(['0.5'] * len(args))}]"
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        names = ", ".join(f"{n} = …" for n in args[0].model_fields)
        return f"TOML list of tables, e.g. [{{{names}}}]"
    return "TOML list, e.g. [1, 2]"


def inline_toml(value: Any) -> str:
    """A value as TOML inline syntax that engine.config.parse_value reads back."""
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


# --- the widgets -----------------------------------------------------------------------------


class FieldRow(Widget):
    """Title and editor on one line; below them the help text, and the problem when there is one."""

    DEFAULT_CSS = """
    FieldRow { layout: grid; grid-size: 2; grid-columns: 28 1fr; grid-rows: auto; height: auto; margin-bottom: 1; }
    FieldRow .field-title { width: 100%; padding-right: 1; }
    FieldRow .field-note { column-span: 2; padding-left: 2; color: $text-muted; }
    FieldRow .switch-line { height: auto; }
    FieldRow Switch { width: auto; height: 1; border: none; padding: 0; }
    FieldRow .switch-state { padding-left: 1; color: $text-muted; }
    FieldRow.changed .field-title { color: $text-warning; text-style: bold; }
    FieldRow.invalid .field-title { color: $text-error; text-style: bold; }
    FieldRow.invalid .field-editor { background: $error 20%; }
    """

    def __init__(self, spec: FieldSpec, raw: Any) -> None:
        super().__init__(id=f"row-{spec.widget_id}")
        self.spec = spec
        self.raw = raw  # the editor's value when mounted (Select/Switch value, or Input text)
        self._shown: tuple[Any, ...] | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Label(self._title(False), classes="field-title")
        spec = self.spec
        if spec.kind == "switch":
            # The switch's state in words too, for terminals that show its colours poorly.
            with Horizontal(classes="switch-line"):
                yield Switch(value=bool(self.raw), id=spec.widget_id, classes="field-editor")
                yield Label("", classes="switch-state")
        elif spec.kind == "select":
            titles = OPTION_TITLES.get(spec.key, {})
            options = [(self._option_label(c, titles), c) for c in spec.choices]
            yield Select(options, value=self.raw, allow_blank=spec.optional, compact=True, id=spec.widget_id, classes="field-editor")
        else:
            yield Input(
                value=self.raw,
                placeholder="empty" if spec.optional else "",
                compact=True,
                id=spec.widget_id,
                classes="field-editor",
                select_on_focus=False,
            )
        yield Static(self._note(), classes="field-note")

    def _title(self, changed: bool) -> str:
        return f"{CHANGED_MARK if changed else ' '} {self.spec.title}"

    def _note(self) -> Text:
        note = Text(self.spec.help_text())
        if self.error:
            note.append(f"\n✗ {self.error}", style="bold red")
        return note

    @staticmethod
    def _option_label(choice: Any, titles: dict[str, dict[str, Any]]) -> str:
        if isinstance(choice, bool):
            return "on" if choice else "off"
        title = titles.get(choice, {}).get("title")
        return f"{choice} · {title}" if title else str(choice)

    @property
    def editor(self) -> Widget:
        return self.query_one(f"#{self.spec.widget_id}")

    def set_raw(self, raw: Any) -> None:
        self.raw = raw
        if self.is_mounted:
            self.editor.value = raw  # type: ignore[attr-defined]

    def show(self, error: str | None, changed: bool) -> None:
        # Called for every row after every keystroke: touch the DOM only when something differs.
        state = (error, changed, self.raw if self.spec.kind == "switch" else None)
        if state == self._shown or not self.is_mounted:
            return
        self._shown = state
        self.error = error
        self.set_class(error is not None, "invalid")
        self.set_class(changed, "changed")
        self.query_one(".field-title", Label).update(self._title(changed))
        if self.spec.kind == "switch":
            self.query_one(".switch-state", Label).update("on" if self.raw else "off")
        self.query_one(".field-note", Static).update(self._note())

    def on_mount(self) -> None:
        form = self.query_ancestor(ConfigForm)
        self.show(form.errors.get(self.spec.key), self.spec.key in form.changed)


class ConfigForm(Widget):
    """An `Experiment` under edit, compared with the one it started from (`base`).

    The values live in the form (`raw`), not in the widgets: a tab's rows are only built when the
    tab is first shown, so the editor opens at once whatever the number of fields.
    """

    DEFAULT_CSS = """
    ConfigForm { height: 1fr; }
    ConfigForm TabbedContent { height: 1fr; }
    ConfigForm TabPane { padding: 0; height: 1fr; }
    ConfigForm VerticalScroll { height: 1fr; padding: 0 1; }
    ConfigForm .section-error { color: $text-error; display: none; }
    """

    class Validated(Message):
        """Posted after every validation: read `form.experiment`, `form.errors`, `form.changed`."""

        def __init__(self, form: "ConfigForm") -> None:
            super().__init__()
            self.form = form

        @property
        def control(self) -> "ConfigForm":
            return self.form

    def __init__(self, base: Experiment, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.base = base
        self.specs = field_specs()
        self.keys = [s.key for s in self.specs]
        self._spec = {s.key: s for s in self.specs}
        self._by_widget_id = {s.widget_id: s.key for s in self.specs}
        self.experiment: Experiment | None = base
        self.errors: dict[str, str] = {}
        self.changed: set[str] = set()
        self.raw: dict[str, Any] = {}
        self._rows: dict[str, FieldRow] = {}
        self._built: set[str] = set()
        self._focus_next: str | None = None
        self._load(flatten(base))

    def _load(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self.raw[key] = self._raw_of(self._spec[key], value)

    @staticmethod
    def _raw_of(spec: FieldSpec, value: Any) -> Any:
        if spec.kind == "switch":
            return bool(value)
        if spec.kind == "select":
            return Select.NULL if value is None else value
        return spec.to_text(value)

    def compose(self) -> ComposeResult:
        first = sections()[0][0]
        with TabbedContent(initial=f"tab-{first}"):
            for section, title in sections():
                with TabPane(title, id=f"tab-{section}"):
                    # Not a focus stop of its own: tab goes field to field, and a focused field scrolls into view.
                    with VerticalScroll(id=f"scroll-{section}", can_focus=False):
                        yield Static("", classes="section-error", id=f"section-error-{section}", markup=False)
                        if section == first:
                            yield from self._new_rows(section)

    def _new_rows(self, section: str) -> list[FieldRow]:
        self._built.add(section)
        rows = []
        for spec in self.specs:
            if spec.section == section:
                row = FieldRow(spec, self.raw[spec.key])
                self._rows[spec.key] = row
                rows.append(row)
        return rows

    def on_mount(self) -> None:
        self.revalidate()

    async def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        event.stop()
        section = (event.pane.id or "").removeprefix("tab-")
        if section and section not in self._built:
            await self.query_one(f"#scroll-{section}", VerticalScroll).mount_all(self._new_rows(section))
        if self._focus_next and self._focus_next.startswith(section + "."):
            self._rows[self._focus_next].editor.focus()
            self._focus_next = None

    # --- reading and writing values ------------------------------------------------------

    def row(self, key: str) -> FieldRow:
        """A field's row (once its tab has been shown)."""
        return self._rows[key]

    def editor(self, key: str) -> Widget:
        return self._rows[key].editor

    def candidate(self) -> dict[str, dict[str, Any]]:
        """The form's values as the nested dict validate_experiment takes."""
        data: dict[str, dict[str, Any]] = {section: {} for section, _ in sections()}
        for spec in self.specs:
            data[spec.section][spec.name] = spec.parse(self.raw[spec.key])
        return data

    def set_values(self, values: dict[str, Any]) -> None:
        """Set fields by dotted key (JSON-style values, as engine.config.flatten gives them)."""
        with self.prevent(Input.Changed, Select.Changed, Switch.Changed):
            for key, value in values.items():
                raw = self._raw_of(self._spec[key], value)
                self.raw[key] = raw
                if key in self._rows:
                    self._rows[key].set_raw(raw)
        self.revalidate()

    def reset(self) -> None:
        """Every field back to the base experiment's value."""
        self.set_values(flatten(self.base))

    def rebase(self, base: Experiment) -> None:
        """Compare from now on against `base` (e.g. the preset just saved)."""
        self.base = base
        self.revalidate()

    # --- validation -----------------------------------------------------------------------

    def revalidate(self) -> None:
        data = self.candidate()
        try:
            self.experiment = validate_experiment(data)
            self.errors = {}
        except ConfigError as err:
            self.experiment = None
            self.errors = locate_problems(err.problems, set(self.keys))
        self.changed = self._changed(data)
        self._show()
        self.post_message(self.Validated(self))

    def _changed(self, data: dict[str, dict[str, Any]]) -> set[str]:
        base = flatten(self.base)
        if self.experiment is not None:
            now = flatten(self.experiment)
            return {k for k in self.keys if now[k] != base[k]}
        out = set()
        for spec in self.specs:
            value = data[spec.section][spec.name]
            if spec.kind in ("number", "integer") and isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    pass
            if value != base[spec.key]:
                out.add(spec.key)
        return out

    def _show(self) -> None:
        for key, row in self._rows.items():
            row.show(self.errors.get(key), key in self.changed)
        if not self.is_mounted:
            return
        tabs = self.query_one(TabbedContent)
        for section, title in sections():
            own = self.errors.get(section)
            box = self.query_one(f"#section-error-{section}", Static)
            box.update(f"✗ {own}" if own else "")
            box.display = own is not None
            prefix = section + "."
            bad = own is not None or any(k.startswith(prefix) for k in self.errors)
            edited = any(k.startswith(prefix) for k in self.changed)
            label = title + (f" {CHANGED_MARK}" if edited else "") + (" ✗" if bad else "")
            tab = tabs.get_tab(f"tab-{section}")
            if tab.label_text != label:
                tab.label = label

    def problem_lines(self) -> list[str]:
        """Every problem as "key: message", in form order (whole-experiment ones last)."""
        order = {k: i for i, k in enumerate(self.keys)}
        keys = sorted(self.errors, key=lambda k: (k == "", order.get(k, -1), k))
        return [f"{k}: {self.errors[k]}" if k else self.errors[k] for k in keys]

    # --- edits ----------------------------------------------------------------------------

    def _edited(self, widget: Widget, raw: Any) -> None:
        key = self._by_widget_id.get(widget.id or "")
        if key is None:
            return
        self.raw[key] = raw
        self._rows[key].raw = raw
        self.revalidate()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._edited(event.input, event.value)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._edited(event.select, event.value)

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self._edited(event.switch, event.value)

    def show_field(self, key: str) -> None:
        """Bring a field's tab forward (building it if needed) and focus its editor."""
        section = key.partition(".")[0]
        tabs = self.query_one(TabbedContent)
        if key in self._rows and section in self._built and tabs.active == f"tab-{section}":
            self._rows[key].editor.focus()
            return
        self._focus_next = key if key in self._spec else None
        if tabs.active == f"tab-{section}":
            self.call_after_refresh(self._focus_pending)
        tabs.active = f"tab-{section}"

    def show_section(self, step: int) -> None:
        """Go `step` tabs right (or left), to the tab's first field."""
        names = [name for name, _ in sections()]
        active = self.query_one(TabbedContent).active.removeprefix("tab-")
        section = names[(names.index(active) + step) % len(names)]
        self.show_field(next(s.key for s in self.specs if s.section == section))

    def _focus_pending(self) -> None:
        if self._focus_next in self._rows:
            self._rows[self._focus_next].editor.focus()
        self._focus_next = None
