"""Export the runs picked in the runs table (engine.export): a CSV, TensorBoard event files or W&B
offline runs, into a folder the user may change. A format whose optional extra is missing is listed
with the command that installs it, and cannot be picked. The export runs in a thread worker; the
result (or what went wrong) is a notification."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from engine.export import FORMATS, available, missing_text

DESCRIPTIONS = {
    "csv": "CSV: one row per run per epoch, the config as columns",
    "tensorboard": "TensorBoard event files, with the hyperparameters",
    "wandb": "W&B offline runs, for `wandb sync` later",
}


class ExportScreen(ModalScreen[list[Path] | None]):
    """Pick a format (enter) to export `paths` under the folder in the field; escape cancels."""

    CSS_PATH = Path(__file__).with_name("export.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, paths: list[Path], out: Path) -> None:
        super().__init__()
        self.paths = list(paths)
        self.out = Path(out)
        self.written: list[Path] | None = None

    def compose(self) -> ComposeResult:
        n = len(self.paths)
        with Vertical():
            yield Label(f"Export {n} run{'s' if n != 1 else ''} into (a folder per format):")
            yield Input(str(self.out), id="export-out")
            options = []
            for fmt in FORMATS:
                ok = available(fmt)
                label = DESCRIPTIONS[fmt] if ok else f"{fmt}: {missing_text(fmt)}"
                options.append(Option(label, id=fmt, disabled=not ok))
            yield OptionList(*options, id="export-formats")
            yield Label("enter exports · escape cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        fmt = event.option.id
        where = Path(self.query_one("#export-out", Input).value.strip() or self.out) / fmt
        self.notify(f"exporting {len(self.paths)} runs as {fmt}…", title="Export")
        self._export(fmt, where)

    @work(thread=True, exclusive=True, exit_on_error=False, group="export")
    def _export(self, fmt: str, where: Path) -> None:
        from engine.export import export_runs

        try:
            written = export_runs(self.paths, fmt, where)
        except Exception as err:  # an unwritable folder, a damaged run: said, the table stays
            self.app.call_from_thread(self.notify, str(err), title="Export failed", severity="error", markup=False)
            return
        self.app.call_from_thread(self._done, fmt, where, written)

    def _done(self, fmt: str, where: Path, written: list[Path]) -> None:
        self.written = written
        hint = {"tensorboard": f"\ntensorboard --logdir {where}", "wandb": "\nwandb sync <folder> uploads them"}
        self.notify(f"{len(written)} written under {where}{hint.get(fmt, '')}", title="Exported", markup=False)
        self.dismiss(written)

    def action_cancel(self) -> None:
        self.dismiss(None)
