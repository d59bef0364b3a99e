"""The runs on disk: a table to open, compare, resume and delete them.

Everything here reads run folders through engine.runfolder.folder, so runs started headless, in another
terminal or in an earlier session show up the same way, and a run whose process died reads as
crashed (and resumable). Comparing opens tui/screens/compare.py; resuming asks the app, which
starts every run (`StartRun`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.experiment.presets import Preset, find_preset
from engine.insight.formatting import STATE_STYLES, pct
from engine.runfolder.folder import RunFolder
from engine.runfolder.lock import holder
from engine.runfolder.table import RunInfo, list_runs
from tui.commands import ScreenActionsProvider
from tui.messages import StartRun
from tui.run_view import short_id, started_text
from tui.screens import run_control
from tui.screens.compare import CompareScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.run import RunScreen
from tui.seed_rows import SeedRows

REFRESH_EVERY_S = 3.0  # while a run in the table is running


class RunsScreen(Screen):
    """The table of runs in the runs folder."""

    CSS_PATH = Path(__file__).with_name("runs.tcss")
    COMMANDS = Screen.COMMANDS | {ScreenActionsProvider}
    BINDINGS = [
        Binding("enter", "open", "Open", priority=True),
        Binding("space", "toggle_select", "Select"),
        Binding("c", "compare", "Compare"),
        Binding("R", "resume", "Resume", key_display="R"),
        Binding("p", "pause", "Pause/continue"),  # any running run, whoever trains it (tui/screens/run_control.py)
        Binding("s", "stop", "Stop"),
        Binding("E", "extend", "Train on", key_display="E"),  # a finished run, to more epochs
        Binding("d", "delete", "Delete"),
        Binding("w", "sweep", "Sweep"),  # the sweep a trial belongs to (tui/screens/sweep.py)
        Binding("x", "export", "Export"),  # the selected runs: CSV, TensorBoard, W&B (tui/screens/export.py)
        Binding("i", "predict", "Predict"),  # a trained run's model on the user's images (tui/screens/predict.py)
        Binding("f5", "refresh", "Refresh", show=False),  # and by itself while a run in it trains
        Binding("b,escape", "back", "Back"),
    ]

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.runs: dict[str, RunInfo] = {}  # by path
        self.selected: set[str] = set()
        self.seeds = SeedRows()  # seed groups as one row (tui/seed_rows.py)

    def compose(self) -> ComposeResult:
        yield Static(f"Runs in {self.runs_dir}", id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(f"No runs yet in {self.runs_dir}: start one from the picker.", id="runs-empty")
        yield Static(id="run-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # Widths that fit 80 columns; the full id of the highlighted run is shown below the table.
        table.add_column("run", key="run", width=18)
        table.add_column("preset", key="preset", width=10)
        table.add_column("status", key="status", width=8)
        table.add_column("epochs", key="epochs", width=6)
        table.add_column("best", key="best", width=6)
        table.add_column("test", key="test", width=6)
        table.add_column("started", key="started", width=11)
        self.refresh_runs()
        self.set_interval(REFRESH_EVERY_S, self._refresh_while_running)
        table.focus()

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    # --- the table --------------------------------------------------------------------------

    def refresh_runs(self) -> None:
        table = self.query_one(DataTable)
        current = self.current_path()
        infos = list_runs(self.runs_dir)
        self.runs = {str(info.path): info for info in infos}
        self.selected &= set(self.runs)
        table.clear()
        for key, cells in self.seeds.table_rows(infos, self._cells, self.selected):
            table.add_row(*cells, key=key)
        empty = not infos
        self.query_one("#runs-empty").display = empty
        table.display = not empty
        if current in self.runs or self.seeds.group(current):
            table.move_cursor(row=table.get_row_index(current))
        self._show_detail()

    def _refresh_while_running(self) -> None:  # not _auto_refresh: Textual's widgets have an attribute of that name
        if any(info.state == "running" for info in self.runs.values()):
            self.refresh_runs()

    def _cells(self, info: RunInfo) -> list[Any]:
        mark = "● " if str(info.path) in self.selected else "  "
        run = Text(mark + short_id(info.id), style="bold" if mark.strip() else "")
        state = "paused" if run_control.is_paused(info) else info.state
        status = Text(state, style=STATE_STYLES.get(info.state, ""))
        # Text, not str: a table reads a str as markup, and a damaged folder's text is anyone's.
        return [
            run,
            Text(info.preset or "–"),
            status,
            f"{info.epochs_done}/{info.epochs}",
            pct(info.best_val_acc, space=False),  # no space: 100.0% fits the column
            pct(info.test_acc, space=False),
            Text(started_text(info.started)),
        ]

    def current_path(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def current(self) -> RunInfo | None:
        path = self.current_path()
        return self.runs.get(path) if path else None

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail()
        self.refresh_bindings()  # p and s for a running run, E for a finished one

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        info = self.current() if action in ("pause", "stop", "extend", "predict") else None
        if action in ("pause", "stop"):
            return info is not None and info.state == "running"
        if action == "extend":
            return info is not None and info.state == "finished"
        if action == "predict":
            from tui.screens.predict import checkpoint_of

            return info is not None and info.state != "running" and checkpoint_of(info.path) is not None
        return True

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open()  # a click on a row

    def _show_detail(self) -> None:
        group = self.seeds.group(self.current_path())
        if group is not None:
            expanded = self.current_path() in self.seeds.expanded
            self.query_one("#run-detail", Static).update(self.seeds.detail(group, expanded))
            return
        info = self.current()
        if info is None:
            self.query_one("#run-detail", Static).update("")
            return
        what = " · ".join(p for p in (info.arch, info.dataset) if p)
        text = Text(f"{info.id}  {what}")
        if info.message:
            text.append(f"\n{info.state}: {info.message}", style=STATE_STYLES.get(info.state, ""))
        elif info.resumable:
            text.append("\nR resumes it from its last checkpoint")
        self.query_one("#run-detail", Static).update(text)

    # --- actions ----------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.refresh_runs()

    def action_toggle_select(self) -> None:
        path = self.current_path()
        if path is None:
            return
        group = self.seeds.group(path)
        if group is not None:  # a seed group: all its runs, or none
            members = {str(r.path) for r in group.runs}
            self.selected = self.selected - members if members <= self.selected else self.selected | members
            self.refresh_runs()
            return
        self.selected ^= {path}
        self.query_one(DataTable).update_cell(path, "run", self._cells(self.runs[path])[0])

    def action_open(self) -> None:
        if self.seeds.group(self.current_path()) is not None:
            self.seeds.toggle(self.current_path())  # a seed group unfolds into its runs, and folds back
            self.refresh_runs()
            return
        info = self.current()
        if info is None:
            return
        active = self.app.active_run
        if active is not None and active.folder_path is not None and Path(active.folder_path) == info.path:
            if active.screen not in self.app.screen_stack:
                self.app.push_screen(active.screen)  # the run this console trains: its live screen
                return
        try:
            screen = RunScreen.of_folder(info.path, preset=self._preset(info.preset))
        except (OSError, ValueError) as err:
            self.notify(f"{info.id}: its config does not read ({err})", severity="error", markup=False)
            return
        self.app.push_screen(screen)

    def action_resume(self) -> None:
        info = self.current()
        if info is None:
            return
        if not info.resumable:
            if info.state == "running":  # one trainer per run: say who holds it, as `cnnlab resume` does
                why = f"it is being trained by {holder(info.path)}; stop it first (s)"
            else:
                why = "it has done all its epochs" if info.epochs_done >= info.epochs else f"it is {info.state}"
            more = "; E trains it on" if info.state == "finished" else ""
            self.notify(f"{short_id(info.id)} cannot be resumed: {why}{more}", severity="warning", markup=False)
            return
        try:
            exp = RunFolder(info.path).experiment()
        except (OSError, ValueError) as err:
            self.notify(f"{info.id}: its config does not read ({err})", severity="error", markup=False)
            return
        self.post_message(StartRun(exp, preset=self._preset(info.preset), resume_dir=info.path))

    def action_pause(self) -> None:
        run_control.steer(self, self.current(), "pause")
        self.refresh_runs()

    def action_stop(self) -> None:
        run_control.steer(self, self.current(), "stop")

    def action_extend(self) -> None:
        info = self.current()
        run_control.extend(self, info, self._preset(info.preset) if info else None)

    def action_sweep(self) -> None:
        from engine.sweeps.folder import is_sweep

        info = self.current()
        if info is None or not is_sweep(info.path.parent):
            self.notify("this run is not a sweep's trial", severity="warning")
            return
        self.app.open_sweep(info.path.parent)

    def action_compare(self) -> None:
        paths = [p for p in self.runs if p in self.selected]
        if len(paths) < 2:
            self.notify("select two or more runs with space, then press c", severity="warning")
            return
        self.app.push_screen(CompareScreen([self.runs[p] for p in paths]))

    def action_export(self) -> None:
        from tui.screens.export import ExportScreen

        group = self.seeds.group(self.current_path())
        current = self.current()
        paths = [p for p in self.runs if p in self.selected]
        paths = paths or ([str(r.path) for r in group.runs] if group else [str(current.path)] if current else [])
        if paths:
            self.app.push_screen(ExportScreen([Path(p) for p in paths], self.runs_dir / "exports"))

    def action_predict(self) -> None:
        from tui.screens.predict import PredictScreen, checkpoint_of

        info = self.current()
        if info is None or checkpoint_of(info.path) is None:
            self.notify("this run has no checkpoint: predicting needs a trained model", severity="warning")
            return
        self.app.push_screen(PredictScreen(info.path))

    def action_delete(self) -> None:
        current = self.current()
        targets = [self.runs[p] for p in self.runs if p in self.selected] or ([current] if current else [])
        if not targets:
            return
        active = self.app.active_run
        busy = [
            t
            for t in targets
            if t.state == "running" or (active is not None and active.is_running and active.folder_path == t.path)
        ]
        if busy:
            self.notify(f"{short_id(busy[0].id)} is running: stop it before deleting it", severity="warning")
            return
        names = ", ".join(short_id(t.id) for t in targets[:3])
        if len(targets) > 3:
            names += f" and {len(targets) - 3} more"
        runs = f"{len(targets)} run{'s' if len(targets) > 1 else ''}"
        question = f"Delete {runs} ({names})?\nIts metrics, checkpoints and results are removed from disk."

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(targets)

        self.app.push_screen(ConfirmScreen(question, yes="Delete", no="Keep"), answered)

    def _delete(self, targets: list[RunInfo]) -> None:
        root = self.runs_dir.resolve()
        for info in targets:
            path = info.path.resolve()
            if root not in path.parents:  # never remove anything outside the runs folder
                continue
            shutil.rmtree(path, ignore_errors=True)
            self.selected.discard(str(info.path))
        self.notify(f"deleted {len(targets)} run{'s' if len(targets) > 1 else ''}")
        self.refresh_runs()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def _preset(self, name: str) -> Preset | None:
        # Renamed or broken: the run still opens, without the report's numbers.
        return find_preset(name, self.app.user_presets_dir)
