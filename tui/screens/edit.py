"""Edit a preset's experiment in the generated form, then start it, save it, or reset it.

The form validates every edit; this screen only summarises (problems, changed fields), refuses
to start while the form is invalid, and asks the app to start a valid `Experiment` (`StartRun`).

Tabs change with F7/F8 anywhere (an F-key reaches the console through tmux, SSH and every
terminal), ctrl+PgUp/PgDn or alt+←/→ where the terminal sends them, and [ ] outside a text field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Footer, Header, Input, Label, Static

from engine.compute.cores import devices_seen
from engine.experiment.config import Experiment
from engine.experiment.presets import Preset, load_presets, save_user_preset
from engine.files import safe_name
from tui.messages import StartRun
from tui.widgets.config_form import ConfigForm

# Shown in the footer as one entry, "F7 F8 Tab"; the other keys of each are in the help panel.
TABS = Binding.Group("Tab")
PREVIOUS_TAB_KEYS = "f7,ctrl+pageup,alt+left,left_square_bracket"
NEXT_TAB_KEYS = "f8,ctrl+pagedown,alt+right,right_square_bracket"


class SafeName(Validator):
    """A preset name becomes a file name: engine.files.safe_name decides."""

    def validate(self, value: str) -> ValidationResult:
        try:
            safe_name(value)
        except ValueError as err:
            return self.failure(str(err))
        return self.success()


class SaveAsScreen(ModalScreen[str | None]):
    """Ask the name of the new preset; the result is the name, or None when cancelled."""

    CSS_PATH = Path(__file__).with_name("edit.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, suggestion: str, taken: set[str]) -> None:
        super().__init__()
        self.suggestion = suggestion
        self.taken = taken  # built-in preset names: a user preset must not shadow them

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Save as a new preset. Name (letters, digits, '.', '_', '-'):")
            yield Input(
                value=self.suggestion, id="save-name", validators=[SafeName()], validate_on=["changed", "submitted"]
            )
            yield Static("", id="save-problem", markup=False)
            with Horizontal():
                yield Button("Cancel (esc)", id="cancel")
                yield Button("Save (enter)", id="save", variant="primary")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#save-problem", Static).update(self._problem(event.value) or "")

    def _problem(self, name: str) -> str | None:
        try:
            safe_name(name)
        except ValueError as err:
            return str(err)
        if name in self.taken:
            return f"{name!r} is a built-in preset; choose another name"
        return None

    def _submit(self) -> None:
        name = self.query_one("#save-name", Input).value.strip()
        problem = self._problem(name)
        if problem:
            self.query_one("#save-problem", Static).update(problem)
            self.app.bell()
            return
        self.dismiss(name)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class EditScreen(Screen):
    BINDINGS = [
        Binding("ctrl+s", "start", "Start"),
        Binding("ctrl+n", "save_as", "Save as"),
        Binding("ctrl+r", "reset", "Reset"),
        Binding("ctrl+t", "dry_run", "Dry run"),
        Binding("ctrl+l", "lr_find", "LR find"),  # the range test; enter writes its lr into the form
        Binding("ctrl+w", "sweep", "Sweep"),  # a sweep around the edited experiment (tui/screens/sweep_start.py)
        Binding("ctrl+f", "first_problem", "To problem", show=False),
        Binding("escape", "back", "Back"),
        Binding(PREVIOUS_TAB_KEYS, "next_tab(-1)", "Previous tab", key_display="F7", group=TABS),
        Binding(NEXT_TAB_KEYS, "next_tab(1)", "Next tab", key_display="F8", group=TABS),
        # The app's q and g work here too, kept out of a footer that the editor's own keys fill.
        Binding("q", "app.quit", "Quit", show=False),
        Binding("g", "app.go_to_run", "Go to run", show=False),
    ]
    CSS_PATH = Path(__file__).with_name("edit.tcss")

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.preset = preset
        self.dry_run_note = ""

    @property
    def user_dir(self) -> Path:
        return self.app.user_presets_dir

    @property
    def form(self) -> ConfigForm:
        return self.query_one(ConfigForm)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self._title(), id="edit-title", markup=False)
        yield ConfigForm(self.preset.experiment, id="form", machine_notes={"train.devices": devices_seen()})
        yield Static("", id="edit-status", markup=False)
        # At 80 columns every key of the editor shows; ctrl+p (shown on the other screens) still opens the palette.
        yield Footer(compact=True, show_command_palette=False)

    def _title(self) -> str:
        p = self.preset
        exp = p.experiment
        mine = " (yours)" if p.user else ""
        report = f" · report {p.report.partition('_')[0]}" if p.report else ""
        return f"{p.name}{mine} · {exp.model.arch} on {exp.data.dataset}{report}"

    def on_mount(self) -> None:
        self.sub_title = f"edit {self.preset.name}"
        # Typing starts in the first field; F7/F8 change tab (see the module's docstring).
        self.form.show_field(self.form.keys[0])

    def action_next_tab(self, step: int) -> None:
        self.form.show_section(step)

    # --- what the form says ---------------------------------------------------------------

    def current_experiment(self) -> Experiment | None:
        """The form's experiment when it is valid, else None."""
        return self.form.experiment

    def on_config_form_validated(self, event: ConfigForm.Validated) -> None:
        self._update_status()

    def _update_status(self) -> None:
        form = self.form
        status = self.query_one("#edit-status", Static)
        changed = f"{len(form.changed)} changed" if form.changed else "as the preset"
        if form.experiment is None:
            lines = form.problem_lines()
            plural = "s" if len(lines) != 1 else ""
            text = f"✗ {len(lines)} problem{plural} · {changed} · first: {lines[0]}  (ctrl+f: go to it)"
        else:
            text = f"✓ valid · {changed}" + (f" · {self.dry_run_note}" if self.dry_run_note else "")
        status.update(text)
        status.set_class(form.experiment is None, "invalid")
        status.set_class(form.experiment is not None, "valid")

    def action_first_problem(self) -> None:
        form = self.form
        for key in form.keys:
            if key in form.errors:
                form.show_field(key)
                return
        for section in form.errors:
            if section:
                form.show_field(section)
                return

    # --- actions --------------------------------------------------------------------------

    def action_start(self) -> None:
        exp = self.current_experiment()
        if exp is None:
            lines = self.form.problem_lines()
            self.notify(
                "\n".join(lines[:4]) + ("\n…" if len(lines) > 4 else ""),
                title=f"Cannot start: {len(lines)} problem{'s' if len(lines) != 1 else ''}",
                severity="error",
            )
            return
        self.post_message(StartRun(exp, preset=self.preset))

    def action_sweep(self) -> None:
        exp = self.current_experiment()
        if exp is None:
            self.notify("the experiment has a problem: fix it before sweeping around it", severity="error")
            return
        self.app.start_sweep(exp, self.preset)

    def action_reset(self) -> None:
        self.form.reset()
        self.notify(f"Back to the preset {self.preset.name}.")

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_save_as(self) -> None:
        exp = self.current_experiment()
        if exp is None:
            self.notify("Fix the problems first: only a valid experiment is saved.", severity="error")
            return
        presets, _ = load_presets(self.user_dir)
        taken = {p.name for p in presets if not p.user}
        suggestion = self.preset.name if self.preset.user else f"{self.preset.name}-mine"
        self.app.push_screen(SaveAsScreen(suggestion, taken), lambda name: self._save(name, exp))

    def _save(self, name: str | None, exp: Experiment) -> None:
        if not name:
            return
        description = self.preset.description
        if not self.preset.user:
            description += f" (edited from {self.preset.name})"
        try:
            path = save_user_preset(name, exp, description=description, based_on=self.preset, user_dir=self.user_dir)
        except (OSError, ValueError) as err:
            self.notify(str(err), title="Not saved", severity="error")
            return
        self._rebase_on(name, path)
        self.notify(f"Saved {path}", title=f"Preset {name} saved")

    def _rebase_on(self, name: str, path: Path) -> None:
        """From now on the form edits the new preset: changes count from it."""
        presets, _ = load_presets(self.user_dir)
        saved = next((p for p in presets if p.name == name and p.user), None)
        if saved is None:
            return
        self.preset = saved
        self.query_one("#edit-title", Static).update(self._title())
        self.sub_title = f"edit {name}"
        self.form.rebase(saved.experiment)

    def action_lr_find(self) -> None:
        from engine.insight.lr_find_text import target_field
        from tui.screens.lr_find import LRFindScreen

        exp = self.current_experiment()
        if exp is None:
            self.notify("Fix the problems first: the lr range test trains the valid experiment.", severity="error")
            return
        key = target_field(exp)

        def use(lr: float | None) -> None:
            if lr is None or key is None:
                return
            value = float(f"{lr:.3g}")
            self.form.set_values({key: value})
            self.form.show_field(key)
            self.notify(f"{key} = {value:g}, from the lr range test", title="LR finder")

        self.app.push_screen(LRFindScreen(exp, self.preset.name), use)

    def action_dry_run(self) -> None:
        exp = self.current_experiment()
        if exp is None:
            self.notify("Fix the problems first: a dry run builds the valid experiment.", severity="error")
            return
        self.notify("Building the model… (the first time imports torch)", title="Dry run")
        self._dry_run(exp)

    @work(thread=True, exclusive=True, exit_on_error=False, group="dry-run")
    def _dry_run(self, exp: Experiment) -> None:
        try:
            from engine.training.dry_run import dry_run  # torch is imported here, in the worker thread

            result = dry_run(exp)
        except Exception as err:  # a bad weights file or an odd size must not end the app
            self.app.call_from_thread(self.notify, str(err), title="Dry run failed", severity="error")
            return
        self.app.call_from_thread(self._show_dry_run, result)

    def _show_dry_run(self, result: dict[str, Any]) -> None:
        params = result.get("params", 0)
        shape = "x".join(str(s) for s in result.get("output_shape", ()) or ())
        self.dry_run_note = f"{params:,} parameters → {shape} on {result.get('device', '?')}"
        self.notify(
            f"{params:,} parameters ({result.get('trainable', params):,} trainable)\n"
            f"input {result.get('input_shape')} → output {result.get('output_shape')}\n"
            f"device {result.get('device')}",
            title="Dry run",
        )
        self._update_status()
