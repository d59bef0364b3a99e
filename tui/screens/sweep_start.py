"""Starting a sweep from the console: the form (tui/widgets/sweep_form.py) over the experiment in
the editor or a preset, with the preset's [sweep] as its starting values.

ctrl+s starts it as its own process (engine.sweeps.launch.start_detached: it trains on when the
console closes), then the app shows its sweep screen. Nothing starts while the form has a problem.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from engine.experiment.config import Experiment
from engine.sweeps.launch import SweepLaunch
from tui.widgets.sweep_form import SweepForm


class SweepStartScreen(ModalScreen[Path | None]):
    """The result is the new sweep's folder, or None when cancelled."""

    CSS_PATH = Path(__file__).with_name("sweep_start.tcss")
    BINDINGS = [
        Binding("ctrl+s", "start", "Start sweep"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, experiment: Experiment, *, preset_name: str | None, start: SweepLaunch) -> None:
        super().__init__()
        self.experiment, self.preset_name, self.start = experiment, preset_name, start
        self.starting = False

    @property
    def form(self) -> SweepForm:
        return self.query_one(SweepForm)

    def compose(self) -> ComposeResult:
        exp = self.experiment
        with Vertical(id="sweep-start"):
            title = f"Sweep {self.preset_name or exp.model.arch} · {exp.model.arch} on {exp.data.dataset}"
            yield Static(title, id="sweep-start-title", markup=False)
            yield SweepForm(exp, self.start, id="sweep-form")
            yield Static("", id="sweep-start-status", markup=False)
            with Horizontal(id="sweep-start-buttons"):
                yield Button("Cancel (esc)", id="cancel")
                yield Button("Start sweep (ctrl+s)", id="start", variant="success")

    def on_sweep_form_validated(self, _event: SweepForm.Validated) -> None:
        form, status = self.form, self.query_one("#sweep-start-status", Static)
        if form.launch is None:
            key, msg = next(iter(form.problems.items()), ("", "incomplete"))
            status.update(f"✗ {key}: {msg}")
        else:
            status.update("✓ ready: ctrl+s starts it in its own process")
        self.query_one("#start", Button).disabled = form.launch is None or self.starting

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "start":
            self.action_start()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_start(self) -> None:
        launch = self.form.launch
        if launch is None or self.starting:
            if launch is None:
                self.notify("the sweep has a problem: see the form", severity="error")
            return
        self.starting = True
        self.query_one("#sweep-start-status", Static).update("starting the sweep…")
        self._start(launch)

    @work(thread=True, exclusive=True, group="sweep-start", exit_on_error=False)
    def _start(self, launch: SweepLaunch) -> None:
        from engine.experiment.sweep_plan import SweepError
        from engine.sweeps.launch import start_detached

        try:
            sweep = start_detached(self.experiment, launch, runs_dir=self.app.runs_dir, preset=self.preset_name)
        except (SweepError, ValueError, OSError) as err:
            self.app.call_from_thread(self._failed, str(err))
            return
        self.app.call_from_thread(self.dismiss, sweep.path)

    def _failed(self, message: str) -> None:
        self.starting = False
        self.query_one("#sweep-start-status", Static).update(f"✗ {message}")
        self.notify(message, title="The sweep did not start", severity="error", markup=False)
