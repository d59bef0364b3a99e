"""The console's shell: the preset picker, the editor, the app's keys, quitting, start-up cost."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from textual.screen import Screen

from engine.compute.cores import devices_seen
from engine.experiment.presets import load_presets
from engine.runfolder.table import read_run
from tests.console import THEME, RecordingApp, steady_look, wait_until
from tui.app import CnnlabApp, run_app
from tui.screens.edit import EditScreen, SaveAsScreen
from tui.screens.pick import PickScreen
from tui.screens.quit import QuitScreen
from tui.screens.run import RunScreen
from tui.widgets.config_form import ConfigForm

from .test_tui_form import focus_field

SIZE = (80, 24)
REPO = Path(__file__).resolve().parents[2]

USER_PRESET = """\
name = "my-shapes"
description = "My quick shapes run"
report = "001_3753bfc013d93882.txt"
notes = ["momentum not stated: 0.9"]

[reference]
epochs = 15
val_acc = 0.4594

[data]
dataset = "shapes"

[optim]
lr = 0.05

[train]
epochs = 3
"""

BROKEN_PRESET = """\
name = "broken"

[optim]
lr = -1
"""


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs" / "presets"
    d.mkdir(parents=True)
    (d / "my-shapes.toml").write_text(USER_PRESET)
    (d / "broken.toml").write_text(BROKEN_PRESET)
    return d


@pytest.fixture
def app(tmp_path: Path, user_dir: Path) -> RecordingApp:
    return RecordingApp(tmp_path / "runs", user_presets_dir=user_dir)


def row_names(screen: PickScreen) -> list[str]:
    return [p.name for p in screen.shown]


def notes(app: RecordingApp) -> str:
    return "\n".join(app.told)


async def open_editor(pilot, name: str = "my-shapes") -> EditScreen:
    pick = pilot.app.screen
    assert isinstance(pick, PickScreen)
    pick.table.move_cursor(row=row_names(pick).index(name))
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, EditScreen), what="the editor")
    await pilot.pause()
    assert isinstance(pilot.app.screen, EditScreen)
    return pilot.app.screen


async def type_into(pilot, form: ConfigForm, key: str, text: str) -> None:
    await focus_field(pilot, form, key)
    await pilot.press("end", "ctrl+u", *text)
    await pilot.pause()


class FakeRun:
    """What the app needs of tui.training.ActiveRun: a handle, a screen, a folder, whether it runs."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        self.folder_path = Path("runs/20250101-000000-shapes-demo-abcd")
        self.state = "running"
        self.paused = False
        self.stopped = False
        self.handle = types.SimpleNamespace(stop=self.stop)

    def stop(self) -> None:
        self.stopped = True  # the trainer ends at the next batch

    async def stop_and_wait(self, timeout: float) -> bool:
        self.stop()
        return True

    @property
    def is_running(self) -> bool:
        return not self.stopped


# --- the picker --------------------------------------------------------------------------------


async def presets_validated(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_picker_lists_builtin_and_user_presets_and_reports_a_broken_file(app: CnnlabApp):
    builtin = [p.name for p in load_presets(None)[0]]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pick = app.screen
        await presets_validated(pilot)
        assert pick.validated
        assert isinstance(pick, PickScreen)
        assert sorted(row_names(pick)) == sorted(builtin + ["my-shapes"])
        cells = pick.table.get_row("my-shapes")
        assert str(cells[0]).startswith("★") and [str(c) for c in cells[1:4]] == ["simplecnn", "shapes", "001"]
        assert str(cells[4]) == "45.9% val @15"
        problems = str(pick.query_one("#problems").render())
        assert "broken.toml" in problems and "optim.lr" in problems
        assert "broken.toml" in notes(app)
        for name in builtin:
            assert not str(pick.table.get_row(name)[0]).startswith("★")


async def test_typing_filters_and_escape_clears(app: CnnlabApp):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pick = app.screen
        everything = row_names(pick)
        await pilot.press("m", "y", "-")  # the list has the focus: letters go to the filter
        await pilot.pause()
        assert pick.filter_input.value == "my-"
        assert row_names(pick) == ["my-shapes"]
        assert "My quick shapes run" in str(pick.query_one("#detail-text").render())
        await pilot.press("escape")
        await pilot.pause()
        assert pick.filter_input.value == "" and row_names(pick) == everything
        pick.filter_input.value = "no such preset at all"
        await pilot.pause()
        assert row_names(pick) == []
        assert "No preset matches" in str(pick.query_one("#detail-text").render())


async def test_enter_opens_the_highlighted_preset_in_the_editor(app: CnnlabApp):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        edit = await open_editor(pilot)
        assert edit.preset.name == "my-shapes" and edit.preset.user
        exp = edit.current_experiment()
        assert exp is not None and exp.optim.lr == 0.05 and exp.train.epochs == 3
        edit.form.show_field("train.devices")  # its note says what this machine has to train on
        await wait_until(pilot, lambda: "train.devices" in edit.form._rows, what="the devices field")
        note = str(edit.form._rows["train.devices"].query_one(".field-note").render())
        assert devices_seen() in " ".join(note.split()), note
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, PickScreen)


# --- the editor --------------------------------------------------------------------------------


@pytest.mark.slow
async def test_start_is_refused_while_the_form_is_invalid(app: CnnlabApp, fake_trainer):
    fake = fake_trainer(end="wait", epochs_before_wait=0)  # what the trainer is asked to run
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        edit = await open_editor(pilot)
        await type_into(pilot, edit.form, "optim.lr", "0")
        status = str(edit.query_one("#edit-status").render())
        assert "1 problem" in status and "optim.lr" in status
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is edit and fake.calls == [] and app.active_run is None
        assert "Cannot start" in notes(app) and "greater than 0" in notes(app)

        await type_into(pilot, edit.form, "optim.lr", "0.2")
        assert "1 changed" in str(edit.query_one("#edit-status").render())
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: fake.calls, what="the app to start the run")
        # The app started it and dropped the editor: back from the run is back to the picker.
        assert isinstance(app.screen, RunScreen) and app.screen.preset.name == "my-shapes"
        assert [type(s) for s in app.screen_stack] == [PickScreen, RunScreen]
        ((exp, runs_dir, preset),) = fake.calls
        assert exp.optim.lr == 0.2 and preset == "my-shapes" and runs_dir == app.runs_dir


@pytest.mark.slow
async def test_reset_key_restores_the_preset(app: CnnlabApp):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        edit = await open_editor(pilot)
        await type_into(pilot, edit.form, "train.epochs", "7")
        assert edit.form.changed == {"train.epochs"}
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert edit.form.changed == set() and edit.current_experiment() == edit.preset.experiment
        assert "as the preset" in str(edit.query_one("#edit-status").render())


@pytest.mark.slow
async def test_save_as_writes_a_user_preset_that_the_picker_lists(app: CnnlabApp, user_dir: Path):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        edit = await open_editor(pilot)
        await type_into(pilot, edit.form, "optim.lr", "0.3")
        await pilot.press("ctrl+n")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, SaveAsScreen)
        name_input = modal.query_one("#save-name")
        name_input.value = "../x"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is modal and "not a safe name" in str(modal.query_one("#save-problem").render())
        name_input.value = "shapes-fast"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is edit

        path = user_dir / "shapes-fast.toml"
        assert path.exists()
        saved = {p.name: p for p in load_presets(user_dir)[0]}["shapes-fast"]
        assert saved.user and saved.experiment.optim.lr == 0.3
        assert saved.reference.val_acc == 0.4594  # the report's numbers stay beside the edited recipe
        assert edit.preset.name == "shapes-fast" and edit.form.changed == set()

        await pilot.press("escape")
        await pilot.pause()
        pick = app.screen
        assert isinstance(pick, PickScreen)
        assert str(pick.table.get_row("shapes-fast")[0]).startswith("★")


async def test_dry_run_reports_the_parameter_count(app: CnnlabApp):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        edit = await open_editor(pilot)
        await pilot.press("ctrl+t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "parameters" in edit.dry_run_note and "x10" in edit.dry_run_note  # (2, 10): ten shapes classes
        assert "parameters" in str(edit.query_one("#edit-status").render())


# --- the app -------------------------------------------------------------------------------------


async def test_quit_when_idle_exits_at_once(app: CnnlabApp):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0  # it exits: no question asked, nothing is training
        assert not isinstance(app.screen, QuitScreen)
    assert app.return_code == 0


async def test_quit_while_training_asks_then_stops_the_run_and_exits(app: CnnlabApp):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        run = FakeRun(Screen())
        app.active_run = run
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, PickScreen) and not run.stopped and app.is_running
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        await app.workers.wait_for_complete()
        assert run.stopped
    assert app.return_code == 0


async def test_go_to_run_returns_to_the_run_screen(app: CnnlabApp):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        run_screen = Screen()
        app.active_run = FakeRun(run_screen)
        pick = app.screen
        app.active_run_changed.publish(app.active_run)  # as the app does when a run starts
        await pilot.pause()
        assert "press g" in str(pick.query_one("#active-run").render())
        await pilot.press("g")
        await pilot.pause()
        assert app.screen is run_screen
        app.pop_screen()
        await pilot.pause()
        edit = await open_editor(pilot)
        await focus_field(pilot, edit.form, "data.download")  # a switch has the focus: g is not typed anywhere
        await pilot.press("g")
        await pilot.pause()
        assert app.screen is run_screen


async def test_r_opens_the_runs_screen(app: CnnlabApp, monkeypatch):
    opened = []

    class FakeRunsScreen(Screen):
        def __init__(self, runs_dir):
            super().__init__()
            opened.append(runs_dir)

    monkeypatch.setitem(sys.modules, "tui.screens.runs", types.SimpleNamespace(RunsScreen=FakeRunsScreen))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, FakeRunsScreen) and opened == [app.runs_dir]


async def test_help_key_toggles_the_keys_panel(app: CnnlabApp):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.query("HelpPanel")
        await pilot.press("f1")
        await pilot.pause()
        assert not app.screen.query("HelpPanel")


async def test_command_palette_opens_a_preset_and_lists_the_app_commands(app: CnnlabApp):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Runs", "Presets", "Quit"} <= set(titles)
        app.active_run = FakeRun(Screen())
        assert "Go to the active run" in [c.title for c in app.get_system_commands(app.screen)]
        app.active_run = None
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"my-sha")
        await wait_until(pilot, lambda: "New run from preset: my-shapes" in palette_hits(app), what="the palette's hit")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, EditScreen) and app.screen.preset.name == "my-shapes"


def palette_hits(app: CnnlabApp) -> str:
    return " ".join(str(option.prompt) for option in app.screen.query_one("CommandList").options)


def test_run_app_takes_the_runs_dir(tmp_path: Path, monkeypatch):
    seen = []
    monkeypatch.setattr(CnnlabApp, "run", lambda self: seen.append((self.runs_dir, self.user_presets_dir)))
    assert run_app(["--runs-dir", str(tmp_path / "elsewhere")]) == 0
    assert seen == [(tmp_path / "elsewhere", tmp_path / "elsewhere" / "presets")]


def test_startup_to_the_picker_does_not_import_torch(tmp_path: Path):
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        import tui.app
        from tui.screens.pick import PickScreen

        # The first screen is up before pydantic (the presets are validated on a thread after it).
        assert "pydantic" not in sys.modules

        async def main():
            app = tui.app.CnnlabApp(Path({str(tmp_path / "runs")!r}))
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                assert isinstance(app.screen, PickScreen)
                assert app.screen.table.row_count == len(app.screen.presets)
            heavy = [m for m in ("torch", "torchvision", "engine.training.trainer") if m in sys.modules]
            print("HEAVY", heavy)

        asyncio.run(main())
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


# --- the look (pytest-textual-snapshot; `pytest --snapshot-update` after an intended change) ----


@pytest.fixture
def snapshot_app(tmp_path: Path, monkeypatch) -> CnnlabApp:
    """Only the user's preset shows (filtered), and the runs folder is relative: nothing varies."""
    d = tmp_path / "presets"
    d.mkdir()
    (d / "my-shapes.toml").write_text(USER_PRESET)
    monkeypatch.chdir(tmp_path)
    app = CnnlabApp(Path("runs"), user_presets_dir=d)
    app.theme = THEME
    app.animation_level = "none"  # a focused field scrolls into view at once, not mid-animation
    return app


async def filter_to_my_shapes(pilot) -> None:
    await presets_validated(pilot)
    pick = pilot.app.screen
    pick.filter_input.value = "my-shapes"
    pick.table.focus()
    await wait_until(pilot, lambda: row_names(pick) == ["my-shapes"] and pick.table.has_focus, what="the filter")
    await pilot.pause()


def test_picker_look(snap_compare, snapshot_app):
    async def filtered(pilot):
        await filter_to_my_shapes(pilot)
        steady_look(pilot.app)

    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=filtered)


@pytest.mark.slow
def test_editor_look_with_a_bad_value(snap_compare, snapshot_app):
    async def bad_lr(pilot):
        await filter_to_my_shapes(pilot)
        edit = await open_editor(pilot)
        await type_into(pilot, edit.form, "optim.lr", "-1")
        await type_into(pilot, edit.form, "optim.momentum", "0.5")

        def validated() -> bool:  # both edits applied and judged, the momentum field focused
            status = str(edit.query_one("#edit-status").render())
            momentum = edit.form.editor("optim.momentum")
            return "1 problem" in status and "2 changed" in status and momentum.has_focus and momentum.value == "0.5"

        await wait_until(pilot, validated, what="the form to judge both edits")
        await pilot.wait_for_scheduled_animations()
        steady_look(pilot.app)  # the snapshot was taken whenever the focused input's cursor had blinked
        await pilot.pause()

    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=bad_lr)


# --- the real engine behind the keys ------------------------------------------------------------

TINY_USER_PRESET = """\
name = "tiny-shapes"
description = "A few batches of shapes"

[data]
dataset = "shapes"
train_subset = 256
val_split = 0.25

[optim]
lr = 0.05

[train]
epochs = 50
batch_size = 64
device = "cpu"
precision = "fp32"
"""


@pytest.mark.slow
async def test_quitting_while_a_real_run_trains_stops_it_resumably(tmp_path: Path, user_dir: Path):
    (user_dir / "tiny-shapes.toml").write_text(TINY_USER_PRESET)
    app = CnnlabApp(tmp_path / "runs", user_presets_dir=user_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await open_editor(pilot, "tiny-shapes")
        await pilot.press("ctrl+s")

        def training() -> bool:  # the trainer has made its folder and trains (a few seconds)
            run = app.active_run
            return run is not None and run.folder_path is not None and run.state == "running"

        await wait_until(pilot, training, timeout=30, what="the run to train")
        assert app.active_run is not None and app.active_run.is_running
        folder = Path(app.active_run.folder_path)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        assert not app.active_run.is_running
    assert app.return_code == 0
    info = read_run(folder)
    assert info is not None and info.state == "stopped" and info.resumable
    assert (folder / "checkpoints" / "last.pt").exists()
