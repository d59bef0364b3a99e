"""The sweep form, generated from engine.sweeps.launch.SweepLaunch's pydantic fields through
engine.experiment.schema (the same reading as the experiment form): each field's title, its editor (a choice
→ Select, numbers and text → Input), its help with the bounds, and the problem under it.

Every edit validates the whole model, then the sweep it asks for over the experiment (every grid
value and range end through engine.experiment.config), so a bad value is named under its field before anything
starts: `launch` is the valid SweepLaunch, or None.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from engine.experiment.config import Experiment
from engine.experiment.errors import describe_errors
from engine.experiment.schema import FieldSpec, spec_for
from engine.sweeps.launch import SweepLaunch


def sweep_specs() -> list[FieldSpec]:
    return [spec_for(name, info) for name, info in SweepLaunch.model_fields.items()]


class SweepForm(VerticalScroll):
    DEFAULT_CSS = """
    SweepForm { height: 1fr; }
    SweepForm .sweep-row { layout: grid; grid-size: 2; grid-columns: 16 1fr; height: auto; }
    SweepForm .sweep-note { color: $text-muted; padding-left: 2; margin-bottom: 1; }
    SweepForm .sweep-note.invalid { color: $text-error; }
    """

    class Validated(Message):
        """The form was checked again: its `launch` is valid or None."""

    def __init__(self, experiment: Experiment, start: SweepLaunch, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.experiment = experiment
        self.specs = sweep_specs()
        values = start.model_dump()
        self.raw: dict[str, Any] = {
            s.key: values[s.key] if s.kind == "select" else s.to_text(values[s.key]) for s in self.specs
        }
        self.launch: SweepLaunch | None = None
        self.problems: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        for spec in self.specs:
            with Static(classes="sweep-row"):
                yield Label(spec.title)
                if spec.kind == "select":
                    options = [(spec.option_label(c), c) for c in spec.choices]
                    yield Select(
                        options, value=self.raw[spec.key], allow_blank=False, compact=True, id=f"sw-{spec.key}"
                    )
                else:
                    yield Input(value=self.raw[spec.key], compact=True, id=f"sw-{spec.key}", select_on_focus=False)
            yield Static(spec.help_text(), classes="sweep-note", id=f"sw-note-{spec.key}")

    def on_mount(self) -> None:
        self.check()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._edited(event.input.id, event.value)

    def on_select_changed(self, event: Select.Changed) -> None:
        self._edited(event.select.id, event.value)

    def _edited(self, widget_id: str | None, value: Any) -> None:
        key = (widget_id or "").removeprefix("sw-")
        if key in self.raw:
            self.raw[key] = value
            self.check()

    def set_value(self, key: str, value: Any) -> None:
        """As if typed into the field (the tests, and a preset's [sweep] loaded again)."""
        self.query_one(f"#sw-{key}").value = value  # type: ignore[attr-defined]
        self.raw[key] = value
        self.check()

    def check(self) -> None:
        values = {s.key: s.parse(self.raw[s.key]) for s in self.specs}
        problems: list[tuple[str, str]]
        try:
            launch = SweepLaunch.model_validate(values)
        except ValidationError as err:
            launch, problems = None, describe_errors(err, SweepLaunch)
        else:
            problems = launch.check(self.experiment)
            launch = None if problems else launch
        self.launch = launch
        self.problems = {}
        for loc, msg in problems:
            key = loc.partition(".")[0] if loc.partition(".")[0] in self.raw else "grid"
            self.problems.setdefault(key, msg)
        for spec in self.specs:
            note = Text(spec.help_text())
            if spec.key in self.problems:
                note.append(f"\n✗ {self.problems[spec.key]}", style="bold red")
            widget = self.query_one(f"#sw-note-{spec.key}", Static)
            widget.update(note)
            widget.set_class(spec.key in self.problems, "invalid")
        self.post_message(self.Validated())
