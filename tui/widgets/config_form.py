"""The experiment form, generated from engine.experiment.config's pydantic models through engine.experiment.schema.

Every section of `Experiment` becomes a tab and every field a row: its title, an editor of the
kind engine.experiment.schema gives the field (bool → Switch, Literal → Select, numbers and text → Input,
lists and tuples → an Input holding TOML; a text field whose schema names a list of suggestions,
such as model.arch, completes what is typed from that list), its help with the bounds, and the
problem pydantic reports for it. This module only builds widgets: what a field is, its bounds, its choices and
their titles are read in engine.experiment.schema, so a field added to engine/experiment/config.py appears here.

Each edit rebuilds the candidate dict and runs engine.experiment.config.validate_experiment on it, so the
form shows exactly what the engine would refuse, cross-field rules included; a field the
experiment does not use (engine.experiment.config.unused_fields) is dimmed and says why. A tab's rows are
built the first time the tab is shown: the editor opens at once.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch, TabbedContent, TabPane

from engine.experiment.config import ARCHS, Experiment, unused_fields, validate_experiment
from engine.experiment.errors import ConfigError
from engine.experiment.overrides import flatten
from engine.experiment.schema import FieldSpec, field_specs, locate_problems, sections

CHANGED_MARK = "●"


def widget_id(spec: FieldSpec) -> str:
    return "field-" + spec.key.replace(".", "-")


def suggestions_of(spec: FieldSpec) -> str | None:
    """The name of the list a text field's typing is completed from (its schema's "suggest"), if any."""
    extra = spec.info.json_schema_extra
    name = extra.get("suggest") if isinstance(extra, dict) else None
    return name if isinstance(name, str) else None


_ARCH_NAMES: list[str] = []  # every model.arch name, loaded once per process (torchvision and timm take seconds)


def architecture_names() -> list[str]:
    """The built-ins, then torchvision:NAME and timm:NAME for every classifier the libraries have;
    blocking (it imports them): call it from a thread worker."""
    if not _ARCH_NAMES:
        from engine.models.zoo import arch_names

        _ARCH_NAMES.extend(arch_names())
    return _ARCH_NAMES


# --- the widgets -----------------------------------------------------------------------------


class FieldRow(Widget):
    """Title and editor on one line; below them the help text, and the problem when there is one.
    A field the experiment does not use is dimmed, its editor disabled, its note saying why."""

    DEFAULT_CSS = """
    FieldRow {
        layout: grid; grid-size: 2; grid-columns: 28 1fr; grid-rows: auto; height: auto; margin-bottom: 1;
    }
    FieldRow .field-title { width: 100%; padding-right: 1; }
    FieldRow .field-note { column-span: 2; padding-left: 2; color: $text-muted; }
    FieldRow .switch-line { height: auto; }
    FieldRow Switch { width: auto; height: 1; border: none; padding: 0; }
    FieldRow .switch-state { padding-left: 1; color: $text-muted; }
    FieldRow.changed .field-title { color: $text-warning; text-style: bold; }
    FieldRow.invalid .field-title { color: $text-error; text-style: bold; }
    FieldRow.invalid .field-editor { background: $error 20%; }
    FieldRow.unused .field-title { color: $text-disabled; }
    """

    def __init__(self, spec: FieldSpec, raw: Any, machine_note: str = "") -> None:
        super().__init__(id=f"row-{widget_id(spec)}")
        self.spec = spec
        self.machine_note = machine_note  # what this machine offers for the field (GPUs seen)
        self.raw = raw  # the editor's value when mounted (Select/Switch value, or Input text)
        self._shown: tuple[Any, ...] | None = None
        self.error: str | None = None
        self.unused: str | None = None  # why the experiment does not read this field

    def compose(self) -> ComposeResult:
        yield Label(self._title(False), classes="field-title")
        spec, editor_id = self.spec, widget_id(self.spec)
        if spec.kind == "switch":
            # The switch's state in words too, for terminals that show its colours poorly.
            with Horizontal(classes="switch-line"):
                yield Switch(value=bool(self.raw), id=editor_id, classes="field-editor")
                yield Label("", classes="switch-state")
        elif spec.kind == "select":
            options = [(spec.option_label(c), c) for c in spec.choices]
            yield Select(
                options, value=self.raw, allow_blank=spec.optional, compact=True, id=editor_id, classes="field-editor"
            )
        else:
            # Until the libraries' names have loaded, the built-ins complete what is typed.
            suggest = suggestions_of(spec)
            yield Input(
                value=self.raw,
                placeholder="empty" if spec.optional else "",
                compact=True,
                id=editor_id,
                classes="field-editor",
                select_on_focus=False,
                suggester=SuggestFromList(_ARCH_NAMES or list(ARCHS), case_sensitive=False) if suggest else None,
            )
        yield Static(self._note(), classes="field-note")

    def _title(self, changed: bool) -> str:
        return f"{CHANGED_MARK if changed else ' '} {self.spec.title}"

    def _note(self) -> Text:
        note = Text(self.spec.help_text())
        if self.machine_note:
            note.append(f" {self.machine_note}", style="italic")
        if self.unused:
            note.append(f"\n⊘ {self.unused}", style="italic")
        if self.error:
            note.append(f"\n✗ {self.error}", style="bold red")
        return note

    @property
    def editor(self) -> Widget:
        return self.query_one(f"#{widget_id(self.spec)}")

    def set_raw(self, raw: Any) -> None:
        self.raw = raw
        if self.is_mounted:
            self.editor.value = raw  # type: ignore[attr-defined]

    def show(self, error: str | None, changed: bool, unused: str | None = None) -> None:
        # Called for every row after every keystroke: touch the DOM only when something differs.
        state = (error, changed, unused, self.raw if self.spec.kind == "switch" else None)
        if state == self._shown or not self.is_mounted:
            return
        self._shown = state
        self.error, self.unused = error, unused
        self.set_class(error is not None, "invalid")
        self.set_class(changed, "changed")
        self.set_class(unused is not None, "unused")
        self.editor.disabled = unused is not None
        self.query_one(".field-title", Label).update(self._title(changed))
        if self.spec.kind == "switch":
            self.query_one(".switch-state", Label).update("on" if self.raw else "off")
        self.query_one(".field-note", Static).update(self._note())

    class NamesLoaded(Message):
        """The full list a field's typing is completed from, loaded in a thread worker."""

        def __init__(self, names: list[str]) -> None:
            super().__init__()
            self.names = names

    def on_mount(self) -> None:
        form = self.query_ancestor(ConfigForm)
        key = self.spec.key
        self.show(form.errors.get(key), key in form.changed, form.unused.get(key))
        if suggestions_of(self.spec) == "architectures" and not _ARCH_NAMES:
            self.run_worker(self._load_names, thread=True, exclusive=True, group="arch-names", exit_on_error=False)

    def _load_names(self) -> None:
        self.post_message(self.NamesLoaded(architecture_names()))  # post_message is safe from a thread

    def on_field_row_names_loaded(self, event: NamesLoaded) -> None:
        event.stop()
        editor = self.editor
        if isinstance(editor, Input):
            editor.suggester = SuggestFromList(event.names, case_sensitive=False)


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

    def __init__(self, base: Experiment, *, id: str | None = None, machine_notes: dict[str, str] | None = None) -> None:
        super().__init__(id=id)
        self.base = base
        self.machine_notes = machine_notes or {}
        self.specs = field_specs()
        self.keys = [s.key for s in self.specs]
        self._spec = {s.key: s for s in self.specs}
        self._by_widget_id = {widget_id(s): s.key for s in self.specs}
        self.experiment: Experiment | None = base
        self.errors: dict[str, str] = {}
        self.changed: set[str] = set()
        self.unused: dict[str, str] = {}  # fields the experiment does not read, and why
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
                row = FieldRow(spec, self.raw[spec.key], self.machine_notes.get(spec.key, ""))
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
            raw = self.raw[spec.key]
            data[spec.section][spec.name] = spec.parse(None if raw is Select.NULL else raw)
        return data

    def set_values(self, values: dict[str, Any]) -> None:
        """Set fields by dotted key (JSON-style values, as engine.experiment.overrides.flatten gives them)."""
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
            self.unused = unused_fields(self.experiment)
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
            row.show(self.errors.get(key), key in self.changed, self.unused.get(key))
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
