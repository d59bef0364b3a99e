"""While a run trains, the run screen draws without laying out the screen: a layout of the run
screen cost ~30 ms on the console's thread, holding the GIL the trainer needs, once per log line
and per epoch (20 % of the training's speed on a 2-core CPU). The log takes its lines, the
reference line its figures, and a layout comes only when a size really changes."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from engine.events import EpochFinished, RunStarted
from tests.console import Harness, log_text, quiet_run_screen, screen_text, settled, wait_until
from tests.fake_runs import CLASSES, demo_preset, metrics_row
from tests.tiny import tiny_experiment
from tui.widgets.event_log import EventLog
from tui.widgets.in_place import update_in_place


def count_layouts(monkeypatch) -> list[Screen]:
    """Every layout of a screen from now on (Screen._refresh_layout is where Textual does them; a
    scroll alone takes its cheap branch there, which lays nothing out)."""
    laid_out: list[Screen] = []
    assert hasattr(Screen, "_refresh_layout"), "Textual renamed its layout pass: count layouts elsewhere"
    original = Screen._refresh_layout

    def counted(self, size=None, scroll=False):
        if not (scroll and not self._layout_widgets):
            laid_out.append(self)
        return original(self, size, scroll)

    monkeypatch.setattr(Screen, "_refresh_layout", counted)
    return laid_out


class LogApp(App):
    CSS = "EventLog { height: 5; width: 40; scrollbar-size-vertical: 1; }"

    def compose(self) -> ComposeResult:
        yield EventLog(wrap=True, markup=False, id="log")
        yield Static("below the log", id="below")


async def test_the_log_takes_lines_without_a_layout_and_still_scrolls(monkeypatch):
    app = LogApp()
    async with app.run_test(size=(60, 12)) as pilot:
        log = app.query_one(EventLog)
        for i in range(8):  # past its height: its scrollbar's first use lays it out, once
            log.write(f"line {i}")
        await wait_until(pilot, lambda: "line 7" in screen_text(app), what="the first lines")
        laid_out = count_layouts(monkeypatch)
        for i in range(8, 20):
            log.write(f"line {i}")
            await wait_until(pilot, lambda i=i: f"line {i}" in screen_text(app), what=f"line {i}")
            await pilot.pause()  # a screenshot draws the widgets as they are: let a layout asked for come
        assert laid_out == []
        assert "line 0" not in screen_text(app)  # it followed its newest line past its height
        assert log.max_scroll_y == 20 - 5  # its scroll range follows the lines
        log.focus()
        await pilot.press("home")
        await wait_until(pilot, lambda: "line 0" in screen_text(app), what="the log scrolled to its top")
        assert "below the log" in screen_text(app)


class StaticApp(App):
    CSS = "#line { width: 24; height: auto; max-height: 2; }"

    def compose(self) -> ComposeResult:
        yield Static("short", id="line")


async def test_a_static_is_laid_out_only_when_its_wrapped_height_changes(monkeypatch):
    app = StaticApp()
    async with app.run_test(size=(40, 8)) as pilot:
        line = app.query_one("#line", Static)
        await pilot.pause()
        laid_out = count_layouts(monkeypatch)
        update_in_place(line, "still one line")
        await wait_until(pilot, lambda: "still one line" in screen_text(app), what="the new words")
        await pilot.pause()  # a screenshot draws the widgets as they are: let a layout asked for come
        assert laid_out == [] and line.size.height == 1
        update_in_place(line, "words enough to wrap onto a second line")
        await wait_until(pilot, lambda: line.size.height == 2, what="the second line")
        assert laid_out
        laid_out.clear()
        update_in_place(line, "more words than two lines of twenty four columns can hold at all")
        await wait_until(pilot, lambda: "twenty" in screen_text(app), what="the capped text")
        await pilot.pause()
        assert laid_out == [] and line.size.height == 2  # max-height: 2, as before


@pytest.mark.slow
async def test_epochs_reach_the_run_screen_without_a_layout(tmp_path, monkeypatch):
    screen = quiet_run_screen(tiny_experiment(**{"train.epochs": 6}), preset=demo_preset())
    app = Harness(tmp_path, screen)
    async with app.run_test(size=(100, 30)) as pilot:
        screen.model.apply(RunStarted(str(tmp_path), "r", "cpu", "fp32", False, 1, 1, 1, 1, CLASSES, 6, 0, 4, []))
        screen.model.apply(EpochFinished(metrics_row(1)))
        await settled(pilot, screen)
        laid_out = count_layouts(monkeypatch)
        for epoch in (2, 3, 4):
            screen.model.apply(EpochFinished(metrics_row(epoch)))
            await settled(pilot, screen)
            await wait_until(pilot, lambda e=epoch: f"ep {e}/6 " in log_text(screen), what=f"epoch {epoch}'s line")
            await pilot.pause()
        assert [s for s in laid_out if s is screen] == []
        assert "@4 ep" in screen_text(app)  # the reference line has the newest epoch
