"""The experiment form: generated from engine.experiment.config, validated on every edit, marking what changed."""

from __future__ import annotations

from typing import Literal, get_args

import pytest
from pydantic import BaseModel, Field
from textual.app import App, ComposeResult
from textual.widgets import Input, Select, Switch

from engine.experiment.config import Experiment
from engine.experiment.overrides import all_keys, flatten, parse_value
from engine.experiment.schema import describe_bounds, field_specs, inline_toml, locate_problems, spec_for
from tui.widgets.config_form import CHANGED_MARK, ConfigForm

SIZE = (80, 24)


class FormApp(App):
    def __init__(self, exp: Experiment) -> None:
        super().__init__()
        self.exp = exp

    def compose(self) -> ComposeResult:
        yield ConfigForm(self.exp)


async def focus_field(pilot, form: ConfigForm, key: str) -> None:
    """Show a field (its tab is built on first show) and wait until its editor has the focus."""
    form.show_field(key)
    for _ in range(100):
        await pilot.pause()
        row = form._rows.get(key)
        if row is not None and row.is_mounted and pilot.app.focused is row.editor:
            return
    raise AssertionError(f"{key} never got the focus")


async def type_into(pilot, form: ConfigForm, key: str, text: str) -> None:
    """Go to the field's tab, focus its input, clear it and type, as a person would
    (a long text is pasted: each simulated key press costs the test time)."""
    await focus_field(pilot, form, key)
    editor = form.editor(key)
    if len(text) > 6:
        editor.value = text
    else:
        await pilot.press("end", "ctrl+u", *text)
    await pilot.pause()


# --- pure: what the form is made of ----------------------------------------------------------


def test_specs_cover_every_config_field_in_order():
    assert [s.key for s in field_specs()] == [k for k, _ in all_keys()]


def test_editor_kind_follows_the_annotation():
    specs = {s.key: s for s in field_specs()}
    assert specs["optim.nesterov"].kind == "switch"
    assert specs["optim.lr"].kind == "number"
    assert specs["train.epochs"].kind == "integer"
    assert specs["data.root"].kind == "text"
    assert specs["model.weights_path"].kind == "text" and specs["model.weights_path"].optional
    assert specs["data.classes"].kind == "integer" and specs["data.classes"].optional
    assert specs["schedule.milestones"].kind == "value" and specs["schedule.milestones"].is_list
    assert specs["train.phases"].kind == "value"
    assert specs["data.mean"].kind == "value" and specs["data.mean"].optional
    sched = specs["schedule.name"]
    assert sched.kind == "select"
    assert sched.choices == get_args(Experiment.model_fields["schedule"].annotation.model_fields["name"].annotation)


class NewSection(BaseModel):
    """Fields engine.experiment.config might grow: the form must handle them from their annotations alone."""

    choice: Literal["a", "b"] | None = None
    flag: bool = False
    rate: float = Field(1.0, gt=0.0, le=10.0)
    sizes: list[int] = []


def test_a_new_field_gets_an_editor_without_touching_tui():
    fields = NewSection.model_fields
    spec = spec_for("train.choice", fields["choice"])
    assert (spec.kind, spec.optional, spec.choices) == ("select", True, ("a", "b"))
    assert spec_for("train.flag", fields["flag"]).kind == "switch"
    assert spec_for("train.rate", fields["rate"]).kind == "number"
    assert spec_for("train.sizes", fields["sizes"]).is_list


def test_bounds_are_read_from_the_field_metadata():
    assert describe_bounds(NewSection.model_fields["rate"]) == "> 0, ≤ 10"
    lr = dict(all_keys())["optim.lr"]
    spec = spec_for("optim.lr", lr)
    assert lr.description in spec.help_text() and "> 0" in spec.help_text()


def test_every_default_round_trips_through_its_text():
    exp = Experiment.model_validate(
        {
            "data": {"normalize": "given", "mean": [0.4385, 0.4181, 0.3775], "std": [0.3, 0.28, 0.29]},
            "schedule": {"name": "multistep", "milestones": [150, 200]},
            "train": {
                "epochs": 110,
                "phases": [{"epochs": 10, "train": "head", "lr": 1e-3}, {"epochs": 100, "lr": 1e-4}],
            },
        }
    )
    values = flatten(exp)
    data: dict = {}
    for spec in field_specs():
        if spec.kind in ("switch", "select"):
            raw = values[spec.key]
        else:
            raw = spec.to_text(values[spec.key])
        data.setdefault(spec.section, {})[spec.name] = spec.parse(raw)
    assert Experiment.model_validate(data) == exp


def test_inline_toml_is_what_parse_value_reads():
    value = [{"epochs": 10, "train": "head", "lr": 0.001}, {"epochs": 5, "train": "all", "lr": 1e-05}]
    assert parse_value(inline_toml(value)) == value
    assert inline_toml([[3, 128], [128, 256]]) == "[[3, 128], [128, 256]]"


def test_a_list_can_be_typed_without_brackets():
    spec = {s.key: s for s in field_specs()}["schedule.milestones"]
    assert spec.parse("150, 200") == [150, 200]
    assert spec.parse("") == []


def test_problems_are_placed_on_their_fields():
    keys = {k for k, _ in all_keys()}
    placed = locate_problems(
        [
            ("data.mean.1", "Input should be less than or equal to 1"),
            ("model", "backbone_channels and backbone_k need one entry per backbone"),
            ("model", "ImageNet weights are available for resnet50 only"),
            ("schedule.max_lr", "the onecycle schedule needs a max lr"),
            ("", "something about the whole experiment"),
        ],
        keys,
    )
    assert placed["data.mean"] == "[1]: Input should be less than or equal to 1"
    assert placed["model.backbone_channels"].startswith("backbone_channels and backbone_k")
    assert placed["model"] == "ImageNet weights are available for resnet50 only"
    assert placed["schedule.max_lr"] == "the onecycle schedule needs a max lr"
    assert placed[""] == "something about the whole experiment"


# --- the widget --------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_form_has_an_editor_for_every_field():
    app = FormApp(Experiment())
    async with app.run_test(size=SIZE) as pilot:
        form = app.query_one(ConfigForm)
        kinds = {"switch": Switch, "select": Select}
        specs = field_specs()
        for section in dict.fromkeys(s.section for s in specs):
            first = next(s for s in specs if s.section == section)
            await focus_field(pilot, form, first.key)  # a tab's rows are built when it is first shown
        for spec in specs:
            assert isinstance(form.editor(spec.key), kinds.get(spec.kind, Input)), spec.key
        assert form.experiment == Experiment()
        assert form.errors == {} and form.changed == set()


@pytest.mark.slow
async def test_bad_learning_rates_show_pydantic_messages_under_the_field():
    app = FormApp(Experiment())
    async with app.run_test(size=SIZE) as pilot:
        form = app.query_one(ConfigForm)
        for text, words in (
            ("0", "greater than 0"),
            ("-1", "greater than 0"),
            ("abc", "valid number"),
            ("11", "less than or equal to 10"),
        ):
            await type_into(pilot, form, "optim.lr", text)
            assert words in form.errors["optim.lr"], text
            assert form.experiment is None
            row = form.row("optim.lr")
            assert row.has_class("invalid")
            assert words in str(row.query_one(".field-note").render())
        await type_into(pilot, form, "optim.lr", "0.1")
        assert form.errors == {}
        assert form.experiment is not None and form.experiment.optim.lr == 0.1
        assert not form.row("optim.lr").has_class("invalid")


async def test_momentum_of_one_is_refused():
    app = FormApp(Experiment())
    async with app.run_test(size=SIZE) as pilot:
        form = app.query_one(ConfigForm)
        await type_into(pilot, form, "optim.momentum", "1.0")
        assert "less than 1" in form.errors["optim.momentum"]
        assert form.experiment is None


async def test_onecycle_without_max_lr_marks_max_lr_until_it_is_given():
    app = FormApp(Experiment())
    async with app.run_test(size=SIZE) as pilot:
        form = app.query_one(ConfigForm)
        await focus_field(pilot, form, "schedule.name")
        form.editor("schedule.name").value = "onecycle"
        await pilot.pause()
        assert "max lr" in form.errors["schedule.max_lr"]
        assert form.row("schedule.max_lr").has_class("invalid")
        assert "✗" in form.query_one("TabbedContent").get_tab("tab-schedule").label_text
        await type_into(pilot, form, "schedule.max_lr", "0.1")
        assert form.errors == {}
        assert form.experiment.schedule.name == "onecycle" and form.experiment.schedule.max_lr == 0.1


@pytest.mark.slow
async def test_changed_fields_are_marked_counted_and_reset():
    base = Experiment.model_validate({"optim": {"lr": 0.05}})
    app = FormApp(base)
    async with app.run_test(size=SIZE) as pilot:
        form = app.query_one(ConfigForm)
        await type_into(pilot, form, "optim.lr", "0.050")  # the same number written differently
        assert form.changed == set()
        await type_into(pilot, form, "optim.lr", "0.2")
        await type_into(pilot, form, "train.epochs", "3")
        await focus_field(pilot, form, "augment.hflip")
        await pilot.press("space")  # toggles the focused switch
        await pilot.pause()
        assert form.changed == {"optim.lr", "train.epochs", "augment.hflip"}
        row = form.row("optim.lr")
        assert row.has_class("changed")
        assert str(row.query_one(".field-title").render()).startswith(CHANGED_MARK)
        assert CHANGED_MARK in form.query_one("TabbedContent").get_tab("tab-optim").label_text
        assert not form.row("optim.momentum").has_class("changed")

        form.reset()
        await pilot.pause()
        assert form.changed == set()
        assert form.experiment == base
        assert form.editor("optim.lr").value == "0.05"
        assert not row.has_class("changed")


@pytest.mark.slow
async def test_lists_and_phases_are_edited_as_toml():
    app = FormApp(Experiment())
    async with app.run_test(size=SIZE) as pilot:
        form = app.query_one(ConfigForm)
        await focus_field(pilot, form, "schedule.name")
        form.editor("schedule.name").value = "multistep"
        await pilot.pause()
        assert "milestone" in form.errors["schedule.milestones"]
        await type_into(pilot, form, "schedule.milestones", "150, 200")
        assert form.experiment.schedule.milestones == [150, 200]
        await type_into(pilot, form, "schedule.milestones", "[200, 150]")
        assert "increasing" in form.errors["schedule.milestones"]
        await type_into(pilot, form, "schedule.milestones", "[150]")
        await type_into(
            pilot, form, "train.phases", '[{epochs = 4, train = "head", lr = 0.001}, {epochs = 6, lr = 0.0001}]'
        )
        assert form.experiment.train.phases[0].train == "head"
        await type_into(pilot, form, "train.phases", "[{epochs = 4, lr = 0}]")
        assert form.errors["train.phases"].startswith("[0].lr:")


@pytest.mark.slow
async def test_the_learning_rate_is_marked_unused_while_phases_set_their_own():
    phased = Experiment.model_validate(
        {"train": {"epochs": 3, "phases": [{"epochs": 1, "train": "head", "lr": 1e-3}, {"epochs": 2, "lr": 1e-4}]}}
    )
    app = FormApp(phased)
    async with app.run_test(size=SIZE) as pilot:
        form = app.query_one(ConfigForm)
        await focus_field(pilot, form, "optim.momentum")  # builds the optim tab
        row = form.row("optim.lr")
        assert form.unused == {"optim.lr": "not used: the phases set their own lr"}
        assert row.has_class("unused") and row.editor.disabled
        assert "not used: the phases set their own lr" in str(row.query_one(".field-note").render())
        assert not form.row("optim.momentum").has_class("unused")

        await type_into(pilot, form, "train.phases", "")  # no phases: optim.lr is the lr again
        await type_into(pilot, form, "train.epochs", "3")
        assert form.experiment is not None and form.experiment.train.phases == []
        assert form.unused == {}
        assert not row.has_class("unused") and not row.editor.disabled
        assert "not used" not in str(row.query_one(".field-note").render())
