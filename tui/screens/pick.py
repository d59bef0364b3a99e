"""The first screen: every preset (built-in and the user's own), filtered as you type.

Each row shows the report a preset replicates, its model and dataset, and the report's headline
number; the highlighted preset's description and notes show below. Enter opens it in the editor.
Preset files that do not load are reported by file and field; the others still show.

The list is first filled from a quick reading of the files (engine.experiment.preset_files: no pydantic, so
the screen is up in a fraction of a second) and then from the validated presets, loaded on a thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from engine.events import END_EVENTS
from engine.experiment.preset_files import PresetCard, preset_cards
from engine.insight.formatting import pct
from tui.messages import OpenPreset

if TYPE_CHECKING:
    from engine.experiment.presets import Preset, PresetProblem

USER_MARK = "★"
NAME_WIDTH = 30  # the longest built-in name fits; with the other columns the table fits 80 columns
ENDED = {event.state for event in END_EVENTS}


def headline(preset: Preset | PresetCard) -> str:
    """The report's headline figure: test accuracy, else validation, else training ("60.7% test @300")."""
    ref = preset.reference.figures() if preset.reference else {}
    epochs = preset.reference.epochs if preset.reference else None
    at = f" @{int(epochs)}" if epochs else ""
    for key, word in (("test_acc", "test"), ("val_acc", "val"), ("train_acc", "train")):
        if ref.get(key) is not None:
            return f"{pct(ref[key], space=False)} {word}{at}"
    for key, word in (("test_loss", "test loss"), ("val_loss", "val loss"), ("train_loss", "loss")):
        if ref.get(key) is not None:
            return f"{word} {ref[key]:.3g}{at}"
    return "—"


def report_label(preset: Preset | PresetCard) -> str:
    """The report's number ("001_3753bfc013d93882.txt" → "001"): the reports are known by it."""
    return preset.report.partition("_")[0] if preset.report else "—"


def matches(preset: Preset | PresetCard, query: str) -> bool:
    """Every word of the query appears in the name, description, model, dataset or report."""
    words = [preset.name, preset.description, preset.arch, preset.dataset, preset.report]
    hay = " ".join([*words, "user mine" if preset.user else ""]).lower()
    return all(word in hay for word in query.lower().split())


def describe(preset: Preset | PresetCard) -> Text:
    """The detail pane: what the preset is, what the report found, what it left open."""
    exp = preset.experiment
    out = Text()
    out.append(preset.name, style="bold")
    if preset.user:
        out.append(f"  {USER_MARK} yours ({preset.source.name} in your presets folder)", style="yellow")
    out.append(f"\n{preset.description}\n" if preset.description else "\n")
    ref = preset.reference.figures() if preset.reference else {}
    accuracies = (("train_acc", "train"), ("val_acc", "val"), ("test_acc", "test"))
    losses = (("train_loss", "train loss"), ("val_loss", "val loss"))
    figures = [f"{label} {pct(ref[key], 2, space=False)}" for key, label in accuracies if key in ref]
    figures += [f"{label} {ref[key]:.3f}" for key, label in losses if key in ref]
    report = f"report {preset.report}" if preset.report else "no report"
    if figures:
        epochs = f" after {int(preset.reference.epochs)} epochs" if preset.reference.epochs else ""
        out.append(f"{report}: {', '.join(figures)}{epochs}\n", style="cyan")
    else:
        out.append(f"{report}\n", style="cyan")
    if exp is None:
        out.append(f"{preset.arch} · {preset.dataset} · checking the preset…\n", style="dim")
    else:
        out.append(
            f"{exp.model.arch} · {exp.data.dataset} · {exp.optim.name} lr {exp.optim.lr:g} · {exp.schedule.name} · "
            f"{exp.train.epochs} epochs · batch {exp.train.batch_size}\n",
            style="dim",
        )
    if preset.varied:
        varied = ", ".join(preset.varied)
        out.append(f"sweep over {varied} (cnnlab sweep {preset.name})\n", style="dim")
    for note in preset.notes:
        out.append(f"• {note}\n")
    return out


class PresetTable(DataTable):
    """The presets list; its enter shows in the footer as what it does here."""

    BINDINGS = [Binding("enter", "select_cursor", "Edit")]


class PickScreen(Screen):
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("r", "app.runs", "Runs"),
        Binding("w", "sweep", "Sweep"),  # the highlighted preset's [sweep], in the sweep form
        Binding("question_mark,f1", "app.help", "Help"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("f5", "reload", "Reload", show=False),
    ]

    CSS_PATH = Path(__file__).with_name("pick.tcss")

    def __init__(self) -> None:
        super().__init__()
        # Cards from the quick reading until the validated presets arrive (self.validated).
        self.presets: list[Preset | PresetCard] = []
        self.problems: list[PresetProblem] = []
        self.shown: list[Preset | PresetCard] = []
        self.validated = False
        self._notified: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        placeholder = "/ filter: name, model, dataset, report…"
        yield Input(placeholder=placeholder, id="filter", compact=True, select_on_focus=False)
        yield Static("", id="active-run", markup=False)
        yield Static("", id="problems", markup=False)
        table = PresetTable(id="presets", cursor_type="row", zebra_stripes=True)
        table.add_columns("Preset", "Model", "Dataset", "Rep", "Report's result")
        yield table
        with VerticalScroll(id="detail"):
            yield Static("", id="detail-text")
        yield Footer()

    @property
    def table(self) -> DataTable:
        return self.query_one("#presets", DataTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#filter", Input)

    def on_mount(self) -> None:
        self.table.focus()
        # The app says when its run starts, gets its folder or ends: the line follows, no polling.
        self.app.active_run_changed.subscribe(self, self._show_active_run)

    def on_screen_resume(self) -> None:
        # Shown first, or back from another screen: a preset saved in the editor appears at once,
        # a run started there shows its line.
        self.reload()
        self._show_active_run()

    # --- loading and listing ---------------------------------------------------------------

    def _user_dir(self) -> Path:
        return self.app.user_presets_dir

    def reload(self) -> None:
        """List the files at once (unless a validated list is up already), then validate them on a thread."""
        if not self.validated:
            self._show_presets(preset_cards(self._user_dir()), validated=False)
        # After the frame is drawn: importing pydantic holds the GIL, which would delay the frame.
        self.call_after_refresh(self._validate)

    @work(thread=True, exclusive=True, group="presets", exit_on_error=False)
    def _validate(self) -> None:
        from engine.experiment.presets import load_presets  # pydantic is imported here, after the first frame

        presets, problems = load_presets(self._user_dir())
        try:
            self.app.call_from_thread(self._show_presets, presets, validated=True, problems=problems)
        except RuntimeError:
            pass  # the app closed meanwhile

    def validate_now(self) -> None:
        """Validate on the UI thread: a preset is being opened before the thread has finished."""
        from engine.experiment.presets import load_presets

        presets, problems = load_presets(self._user_dir())
        self._show_presets(presets, validated=True, problems=problems)

    def _show_presets(self, presets: list, *, validated: bool, problems: list | None = None) -> None:
        self.presets = sorted(presets, key=lambda p: (p.user, p.name))
        self.validated = validated
        if validated:
            self.problems = problems or []
            self._show_problems()
        self.refill()

    def action_reload(self) -> None:
        self.reload()

    def _show_problems(self) -> None:
        box = self.query_one("#problems", Static)
        box.display = bool(self.problems)
        if not self.problems:
            return
        files = sorted({p.source.name for p in self.problems})
        first = self.problems[0]
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        box.update(f"⚠ not loaded: {', '.join(files)} — {first.source.name}: {first.message}{more}")
        for p in self.problems:
            text = f"{p.source.name}: {p.message}"
            if text not in self._notified:
                self._notified.add(text)
                self.notify(f"{p.source}\n{p.message}", title="Preset not loaded", severity="warning", timeout=8)

    def refill(self) -> None:
        table = self.table
        highlighted = self.highlighted()
        query = self.filter_input.value
        self.shown = [p for p in self.presets if matches(p, query)]
        table.clear()
        for p in self.shown:
            name = Text(f"{USER_MARK} {p.name}", style="yellow") if p.user else Text(p.name)
            name.truncate(NAME_WIDTH, overflow="ellipsis")
            cells = (p.arch, p.dataset, report_label(p), headline(p))  # Text: a user's file is never markup
            table.add_row(name, *(Text(c) for c in cells), key=p.name)
        names = [p.name for p in self.shown]
        if highlighted is not None and highlighted.name in names:
            table.move_cursor(row=names.index(highlighted.name))
        self._show_detail()

    def highlighted(self) -> Preset | PresetCard | None:
        row = self.table.cursor_row
        if not self.shown or row is None or not 0 <= row < len(self.shown):
            return None
        return self.shown[row]

    def _show_detail(self) -> None:
        preset = self.highlighted()
        if preset is not None:
            text = describe(preset)
        else:
            text = Text("No preset matches the filter." if self.presets else "No presets found.")
        self.query_one("#detail-text", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    # --- the filter --------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.refill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.stop()
            self.action_open()

    def on_key(self, event: events.Key) -> None:
        focused = self.focused
        if focused is self.filter_input and event.key in ("down", "up"):
            # Arrows leave the filter for the list, as in a command palette.
            event.stop()
            self.table.focus()
            return
        if focused is self.table and event.is_printable and event.character and event.character != " ":
            # Type to filter: any letter that is not a key binding goes to the filter.
            if event.key in self.app.active_bindings:
                return
            event.stop()
            event.prevent_default()
            self.filter_input.focus()
            self.filter_input.insert_text_at_cursor(event.character)

    def action_sweep(self) -> None:
        preset = self.highlighted()
        if preset is None or isinstance(preset, PresetCard):
            self.notify("the presets are still being read: a moment", severity="warning")
            return
        self.app.start_sweep(preset.experiment, preset)

    def action_filter(self) -> None:
        self.filter_input.focus()

    def action_clear_filter(self) -> None:
        self.filter_input.value = ""
        self.table.focus()

    # --- opening -----------------------------------------------------------------------------

    def action_open(self) -> None:
        preset = self.highlighted()
        if preset is not None and preset.experiment is None:
            self.validate_now()
            preset = next((p for p in self.presets if p.name == preset.name), None)
            if preset is None:  # it did not validate: the problems line says why
                self.app.bell()
                return
        if preset is None:
            self.app.bell()
            return
        self.post_message(OpenPreset(preset))

    def _show_active_run(self, _run: object = None) -> None:
        if not self.is_current:
            return  # under the run screen: nothing to show, and a layout here would cost the run
        line = self.query_one("#active-run", Static)
        run = self.app.active_run
        if (run is not None) != line.display:
            self.app.refresh_bindings()  # "g Go to run" appears in the footer, or goes
        if run is None:
            line.display = False
            return
        where = Path(run.folder_path).name if run.folder_path else "starting"
        # Its state says it ended before its thread has quite returned.
        ended = not run.is_running or run.state in ENDED
        state = run.state if ended else ("paused" if run.paused else "training")
        text = f"▶ {state}: {where} — press g to go to it"
        if str(line.content) != text:
            line.update(text)
        line.display = True
