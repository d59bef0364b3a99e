"""The form's architecture field: a text field that takes built-ins, torchvision:NAME, timm:NAME and
a file's class, completes typing from every name (loaded in a thread worker), and shows a bad
spelling's message under the field."""

from __future__ import annotations

from textual.widgets import Input

from engine.experiment.config import Experiment
from tests.tui.test_tui_form import SIZE, FormApp, focus_field, type_into
from tui.widgets.config_form import ConfigForm


async def test_the_arch_field_takes_zoo_names_and_refuses_an_empty_one_under_the_field():
    app = FormApp(Experiment())
    async with app.run_test(size=SIZE) as pilot:
        form = app.query_one(ConfigForm)
        await type_into(pilot, form, "model.arch", "torchvision:resnet18")
        assert form.errors == {} and form.experiment.model.arch == "torchvision:resnet18"
        await type_into(pilot, form, "model.arch", "torchvision:")
        assert "needs a model name after the colon" in form.errors["model.arch"]
        assert form.experiment is None and form.row("model.arch").has_class("invalid")
        assert "needs a model name" in str(form.row("model.arch").query_one(".field-note").render())


async def test_typing_completes_from_the_libraries_names_once_they_have_loaded():
    app = FormApp(Experiment())
    async with app.run_test(size=SIZE) as pilot:
        form = app.query_one(ConfigForm)
        await focus_field(pilot, form, "model.arch")
        await app.workers.wait_for_complete()  # the names load in a thread worker
        await pilot.pause()
        editor = form.editor("model.arch")
        assert isinstance(editor, Input)
        assert await editor.suggester.get_suggestion("torchvision:mobilenet_v3_s") == "torchvision:mobilenet_v3_small"
        assert await editor.suggester.get_suggestion("timm:resnet10") == "timm:resnet10t"
        await pilot.press("end", "ctrl+u", *"torchvision:wide_resnet5", "right")  # right takes the suggestion
        await pilot.pause()
        assert editor.value == "torchvision:wide_resnet50_2"
        assert form.errors == {} and form.experiment.model.arch == "torchvision:wide_resnet50_2"
