"""The run dashboard: live loss, accuracy and learning-rate charts, progress with ETA, the latest
metrics beside the report's own numbers, a log of events, and after the run its test results.

Pushed with an experiment, it starts the run (or a resume) on a thread worker (tui/training.py)
and listens to the engine's events as Textual messages. Opened on an existing run folder instead
(`RunScreen.of_folder`), it reads that folder, and follows it every second while another process
writes it. Events only record data and set dirty flags; a timer applies them twice a second (the
charts every two seconds at most, at once when an epoch ends), so a fast engine never makes the
interface stutter.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Label, ProgressBar, RichLog, Static

from engine.config import PER_BATCH_SCHEDULES, Experiment
from engine.runs import RunFolder
from tui.messages import BatchDone, EpochDone, TrainingEnded, TrainingLog, TrainingStarted
from tui.training import ActiveRun
from tui.widgets.charts import MetricChart
from tui.widgets.run_results import RunResults

if TYPE_CHECKING:
    from engine.presets import Preset

REDRAW_EVERY_S = 0.5  # bars and figures: two updates a second
CHART_EVERY_S = 2.0  # per-batch chart points: a rebuild every two seconds at most (an epoch's end: at once)
FOLLOW_EVERY_S = 1.0  # a run folder written by another process is re-read this often
END_STATES = ("finished", "stopped", "failed", "diverged", "crashed")
STATE_STYLES = {
    "starting": "yellow",
    "running": "bold green",
    "paused": "bold yellow",
    "stopping": "bold yellow",
    "finished": "bold cyan",
    "stopped": "bold yellow",
    "failed": "bold red",
    "diverged": "bold red",
    "crashed": "bold red",
    "created": "dim",
}


# --- small pure helpers (tested without the app) ----------------------------------------------


def pct(v: Any) -> str:
    return f"{v * 100:.1f} %" if isinstance(v, (int, float)) else "–"


def num(v: Any, digits: int = 4) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "–"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


_REF_ORDER = (("test_acc", "test"), ("val_acc", "val"), ("train_acc", "train"), ("val_loss", "val loss"), ("train_loss", "train loss"))


def reference_line(reference: dict[str, Any] | None, rows: list[dict[str, Any]], summary: dict[str, Any] | None) -> str:
    """"report val 60.0% @300 ep │ this run val 41.2% @12 ep": the report's two headline figures
    and this run's same figures so far (test accuracy once the run has finished); fits 80 columns."""
    reference = {k: v for k, v in (reference or {}).items() if v is not None}
    summary = summary or {}
    last = rows[-1] if rows else {}
    shown = [(k, label) for k, label in _REF_ORDER if k in reference][:2]
    if not shown:  # no report numbers: show what this run has
        shown = [(k, label) for k, label in (("test_acc", "test"), ("val_acc", "val"), ("train_acc", "train")) if (summary if k == "test_acc" else last).get(k) is not None][:2]

    def fmt(key: str, value: Any) -> str:
        if not isinstance(value, (int, float)):
            return "–"
        return f"{value * 100:.1f}%" if key.endswith("acc") else f"{value:.3f}"

    mine = [f"{label} {fmt(key, summary.get(key) if key == 'test_acc' else last.get(key))}" for key, label in shown]
    run = "this run " + (" · ".join(mine) if mine else "–") + f" @{len(rows)} ep"
    if not reference:
        return run
    ep = reference.get("epochs")
    report = "report " + " · ".join(f"{label} {fmt(k, reference[k])}" for k, label in shown) + (f" @{ep:g} ep" if ep else "")
    return f"{report} │ {run}"


def best_epoch(rows: list[dict[str, Any]]) -> tuple[float, int] | None:
    """(accuracy, epoch) of the best validation accuracy (training accuracy without a val split)."""
    key = "val_acc" if any(r.get("val_acc") is not None for r in rows) else "train_acc"
    scored = [(r[key], int(r["epoch"])) for r in rows if r.get(key) is not None]
    return max(scored, key=lambda t: (t[0], -t[1])) if scored else None


def latest_table(rows: list[dict[str, Any]], images_per_sec: float | None = None) -> Table:
    last = rows[-1] if rows else {}
    table = Table(box=None, pad_edge=False, show_edge=False, expand=False, padding=(0, 1))
    table.add_column(f"epoch {last.get('epoch', '–')}", style="bold")
    table.add_column("train", justify="right")
    table.add_column("val", justify="right")
    table.add_row("loss", num(last.get("train_loss")), num(last.get("val_loss")))
    table.add_row("acc", pct(last.get("train_acc")), pct(last.get("val_acc")))
    best = best_epoch(rows)
    table.add_row("best", "", f"{pct(best[0])} @{best[1]}" if best else "–")
    table.add_row("lr", f"{last['lr']:.3g}" if isinstance(last.get("lr"), (int, float)) else "–", "")
    ips = images_per_sec if images_per_sec is not None else last.get("images_per_sec")
    table.add_row("img/s", f"{ips:,.0f}" if isinstance(ips, (int, float)) else "–", "")
    return table


def epoch_line(row: dict[str, Any], epochs: int, best: bool) -> Text:
    """One compact log line per epoch: it must fit beside the metrics at 80 columns."""
    text = Text(f"ep {row['epoch']}/{epochs} loss {num(row.get('train_loss'), 3)}")
    if row.get("val_loss") is not None:
        text.append(f"/{num(row['val_loss'], 3)}")
    acc = row.get("train_acc")
    text.append(f" acc {acc * 100:.1f}" if isinstance(acc, (int, float)) else " acc –")
    if row.get("val_acc") is not None:
        text.append(f"/{row['val_acc'] * 100:.1f}")
    text.append("%")
    if row.get("seconds") is not None:
        text.append(f" {row['seconds']:.1f}s")
    if best:
        text.append(" ★", style="bold green")
    return text


# --- the command palette: this screen's actions -------------------------------------------------


class ScreenActionsProvider(Provider):
    """Offers the active screen's own key bindings (those it shows) in the command palette."""

    def _actions(self) -> list[tuple[str, str, str]]:
        screen = self.screen
        out = []
        for binding in getattr(screen, "BINDINGS", []):
            if not isinstance(binding, Binding) or not binding.show or not binding.description:
                continue
            if screen.check_action(binding.action, ()) is not True:
                continue
            key = binding.key.split(",")[0]
            out.append((binding.description, binding.action, f"key: {key}"))
        return out

    async def discover(self) -> Hits:
        for title, action, help_text in self._actions():
            yield DiscoveryHit(title, partial(self.screen.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in self._actions():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.screen.run_action, action), help=help_text)


# --- the screen ---------------------------------------------------------------------------------


class RunScreen(Screen):
    """Live dashboard of a run this console trains, or a view of an existing run folder."""

    COMMANDS = Screen.COMMANDS | {ScreenActionsProvider}
    BINDINGS = [
        Binding("p", "pause", "Pause/resume"),
        Binding("s", "stop", "Stop"),
        Binding("r", "toggle_results", "Results"),
        Binding("l", "focus_log", "Log", show=False),
        Binding("b,escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    RunScreen {
        layout: vertical;
    }
    RunScreen #run-status {
        height: 1;
        padding: 0 1;
    }
    RunScreen #run-reference {
        height: auto;
        max-height: 2;
        padding: 0 1;
    }
    RunScreen .bar-row {
        height: 1;
        padding: 0 1;
    }
    RunScreen .bar-row > Label.bar-name {
        width: 6;
    }
    RunScreen .bar-row > ProgressBar {
        width: auto;
    }
    RunScreen .bar-row > ProgressBar > Bar {
        width: 24;
    }
    RunScreen .bar-row > Label.bar-text {
        width: 1fr;
        height: 1;
        padding-left: 1;
    }
    RunScreen #run-body {
        height: 1fr;
    }
    RunScreen #charts {
        height: 1fr;
        min-height: 8;
    }
    RunScreen #charts > MetricChart {
        width: 1fr;
    }
    RunScreen #below {
        height: 8;
    }
    RunScreen #latest {
        width: 31;
        height: 100%;
        padding: 0 1;
        border-right: solid $panel-lighten-2;
    }
    RunScreen #log {
        width: 1fr;
        padding: 0 1;
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(
        self,
        exp: Experiment,
        *,
        preset: Preset | None,
        runs_dir: Path,
        resume_dir: Path | None = None,
        view_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.exp = exp
        self.preset = preset
        self.runs_dir = Path(runs_dir)
        self.resume_dir = Path(resume_dir) if resume_dir is not None else None
        self.view_dir = Path(view_dir) if view_dir is not None else None
        self.active: ActiveRun | None = None
        self.run_started = False
        self.state = "starting"
        self.message = ""
        self.run_id = self.view_dir.name if self.view_dir else (self.resume_dir.name if self.resume_dir else "")
        self.device = ""
        self.epochs = exp.train.epochs
        self.rows: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        # Points of the epoch in progress (running mean of the loss) and per-batch lr points,
        # kept only when the schedule moves the lr within an epoch.
        self.live_loss: tuple[list[float], list[float]] = ([], [])
        self.batch_lr: tuple[list[float], list[float]] = ([], [])
        self.keep_batch_lr = exp.schedule.name in PER_BATCH_SCHEDULES or exp.schedule.warmup_epochs > 0
        self.pending: Any = None  # the latest BatchProgress not yet shown
        self.last_ips: float | None = None
        self.charts_dirty = True
        self.latest_dirty = True
        self._charts_fed_at = 0.0
        self._follow_signature: tuple = ()

    @classmethod
    def of_folder(cls, run_dir: Path, *, runs_dir: Path, preset: Preset | None = None) -> "RunScreen":
        """A read-only view of a run folder (raises ValueError/OSError when its config does not read)."""
        exp = RunFolder(Path(run_dir)).experiment()
        return cls(exp, preset=preset, runs_dir=runs_dir, view_dir=Path(run_dir))

    @property
    def read_only(self) -> bool:
        return self.view_dir is not None

    # --- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="run-status")
        yield Static(id="run-reference")
        with Horizontal(classes="bar-row"):
            yield Label("Epoch", classes="bar-name")
            yield ProgressBar(total=self.epochs, show_eta=False, id="epoch-bar")
            yield Label("", id="epoch-text", classes="bar-text")
        with Horizontal(classes="bar-row"):
            yield Label("Batch", classes="bar-name")
            yield ProgressBar(total=None, show_eta=False, id="batch-bar")
            yield Label("", id="batch-text", classes="bar-text")
        with ContentSwitcher(initial="live", id="run-body"):
            with Vertical(id="live"):
                with Horizontal(id="charts"):
                    yield MetricChart("loss", id="loss-chart")
                    yield MetricChart("accuracy %", percent=True, id="acc-chart")
                    yield MetricChart("learning rate", log_y=True, id="lr-chart")
                with Horizontal(id="below"):
                    yield Static(id="latest")
                    yield RichLog(id="log", wrap=True, markup=False, max_lines=2000, min_width=20)
            yield RunResults(id="results")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#epoch-bar", ProgressBar).update(total=self.epochs, progress=0)
        self.set_interval(REDRAW_EVERY_S, self._flush)
        if self.read_only:
            self._read_folder(initial=True)
            if self.state == "running":
                self.set_interval(FOLLOW_EVERY_S, self._read_folder)
        else:
            self._start()
        self._show_status()

    # --- starting the run -------------------------------------------------------------------

    def _start(self) -> None:
        app = self.app
        previous: ActiveRun | None = getattr(app, "active_run", None)
        if previous is not None and previous.is_running:
            self._set_state("failed", "another run is training: stop it first (g goes to it)")
            self.notify(self.message, severity="error")
            return
        if previous is not None:
            self._release(previous)
        self.active = ActiveRun(self, resume_dir=self.resume_dir)
        app.active_run = self.active
        # Installed, the screen outlives a pop: the user goes back to the picker and returns to it.
        app.install_screen(self, name=f"run-{id(self)}")
        what = f"resuming {self.resume_dir.name}" if self.resume_dir else "starting"
        self.log_line(Text(f"{what}: loading data and building the model…", style="dim"))
        self.run_worker(
            partial(
                self.active.train,
                self.exp,
                runs_dir=self.runs_dir,
                preset_name=self.preset.name if self.preset else None,
                target=self,
            ),
            name="training",
            group="training",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def on_unmount(self) -> None:
        # The app is closing with the run still training (quitting asks first; this is the safety
        # net): stop it at the next batch, with a checkpoint, so the process can end.
        if self.active is not None and self.active.is_running:
            self.active.stop()

    def _release(self, previous: ActiveRun) -> None:
        """Let go of the screen of an earlier, ended run unless the user still has it open."""
        old = previous.screen
        if old is self or any(old in stack for stack in self.app._screen_stacks.values()):
            return
        self.app.uninstall_screen(old)
        old.remove()

    # --- engine events (on the UI thread; they only record data) ----------------------------

    @on(TrainingStarted)
    def _started(self, message: TrainingStarted) -> None:
        ev = message.event
        self.run_started = True
        self.run_id, self.device = ev.run_id, f"{ev.device} · {ev.precision}"
        self.epochs = ev.epochs
        self.rows = list(ev.history)
        if self.state != "stopping":
            self._set_state("paused" if self.active and self.active.paused else "running", "")
        layout = "channels_last · " if ev.channels_last else ""
        self.log_line(
            Text(
                f"started on {ev.device}, precision {ev.precision}, {layout}{ev.params / 1e6:.2f} M params; "
                f"{ev.train_size} train / {ev.val_size} val / {ev.test_size} test images, "
                f"{ev.batches_per_epoch} batches an epoch",
                style="bold",
            )
        )
        if ev.start_epoch:
            self.log_line(f"continuing at epoch {ev.start_epoch + 1} of {ev.epochs}")
        self.query_one("#epoch-bar", ProgressBar).update(total=ev.epochs, progress=len(self.rows))
        self.query_one("#batch-bar", ProgressBar).update(total=ev.batches_per_epoch, progress=0)
        self.charts_dirty = self.latest_dirty = True

    @on(BatchDone)
    def _batch(self, message: BatchDone) -> None:
        ev = message.event
        self.pending = ev
        x = ev.epoch - 1 + ev.batch / max(ev.batches, 1)
        self.live_loss[0].append(x)
        self.live_loss[1].append(ev.loss)
        if self.keep_batch_lr:
            self.batch_lr[0].append(x)
            self.batch_lr[1].append(ev.lr)
        self.charts_dirty = True

    @on(EpochDone)
    def _epoch(self, message: EpochDone) -> None:
        row = message.event.metrics
        self.rows = [r for r in self.rows if r.get("epoch") != row.get("epoch")] + [row]
        self.live_loss = ([], [])
        best = best_epoch(self.rows)
        self.log_line(epoch_line(row, self.epochs, best is not None and best[1] == row.get("epoch")))
        self.charts_dirty = self.latest_dirty = True

    @on(TrainingLog)
    def _log(self, message: TrainingLog) -> None:
        ev = message.event
        self.log_line(Text(ev.text, style="yellow" if ev.level == "warning" else ""))

    @on(TrainingEnded)
    def _ended(self, message: TrainingEnded) -> None:
        self._end(message.state, message.message, message.event.summary if message.state == "finished" else None)

    def _end(self, state: str, text: str, summary: dict[str, Any] | None) -> None:
        self._set_state(state, text)
        self.pending = None
        batch_bar = self.query_one("#batch-bar", ProgressBar)
        if batch_bar.total is None:  # ended before its first batch: no more "working" animation
            batch_bar.update(total=1, progress=0)
        if state == "finished":
            batch_bar.update(progress=batch_bar.total)
        self.live_loss = ([], [])
        self.charts_dirty = self.latest_dirty = True
        if state == "finished":
            self.summary = summary or {}
            self.query_one(RunResults).show_summary(self.summary)
            figures = []
            if self.summary.get("test_acc") is not None:
                figures.append(f"test acc {pct(self.summary['test_acc'])}")
            if self.summary.get("best_val_acc") is not None:
                figures.append(f"best val acc {pct(self.summary['best_val_acc'])}")
            line = "finished" + (": " + ", ".join(figures) if figures else "") + "; r shows the per-class results"
            self.log_line(Text(line, style="bold cyan"))
            if self.summary.get("collapse_warning"):
                self.log_line(Text(f"⚠ {self.summary['collapse_warning']}", style="bold red"))
            if not self.read_only:
                self.notify(line, title="Run finished")
            self.query_one("#epoch-bar", ProgressBar).update(progress=self.query_one("#epoch-bar", ProgressBar).total)
        elif state == "stopped":
            self.log_line(Text(f"stopped: {text} (resumable from the runs screen)", style="bold yellow"))
            if not self.read_only:
                self.notify(text or "stopped", title="Run stopped")
        else:
            self.log_line(Text(f"{state}: {text}", style="bold red"))
            if not self.read_only:
                self.notify(text or state, title=f"Run {state}", severity="error", timeout=12)

    # --- reading a run folder (view mode) ---------------------------------------------------

    def _read_folder(self, initial: bool = False) -> None:
        folder = RunFolder(self.view_dir)
        st = folder.status()
        rows = folder.metrics()
        signature = (st.get("state"), st.get("updated"), len(rows))
        if not initial and signature == self._follow_signature:
            return
        self._follow_signature = signature
        state = st.get("state", "crashed")
        if initial:
            self.device = " · ".join(str(st[k]) for k in ("device", "precision") if st.get(k))
        for i in range(0 if initial else len(self.rows), len(rows)):
            best = best_epoch(rows[: i + 1])
            self.log_line(epoch_line(rows[i], self.epochs, best is not None and best[1] == rows[i].get("epoch")))
        self.rows = rows
        self.query_one("#epoch-bar", ProgressBar).update(total=self.epochs, progress=len(rows))
        progress = st.get("progress") or {}
        if state == "running" and progress:
            self.query_one("#batch-bar", ProgressBar).update(total=progress.get("batches"), progress=progress.get("batch", 0))
            self.last_ips = progress.get("images_per_sec")
        self.charts_dirty = self.latest_dirty = True
        if state in END_STATES and (initial or self.state not in END_STATES):
            self._end(state, st.get("message", ""), folder.summary() if state == "finished" else None)
        elif state != self.state:
            self._set_state(state, st.get("message", ""))

    # --- the timer: apply what arrived, at most a few times a second ------------------------

    def _flush(self) -> None:
        # The widgets updated here have fixed sizes: updating them without a layout lets Textual
        # repaint just them instead of laying out and repainting the whole screen.
        ev, self.pending = self.pending, None
        epoch_news = self.latest_dirty  # an epoch ended, the run started or ended
        if ev is not None:
            self.last_ips = ev.images_per_sec
            self.query_one("#epoch-bar", ProgressBar).update(progress=ev.epoch - 1 + ev.batch / max(ev.batches, 1))
            self.query_one("#batch-bar", ProgressBar).update(total=ev.batches, progress=ev.batch)
            self.query_one("#epoch-text", Label).update(f"{ev.epoch}/{self.epochs}  ETA {duration(ev.eta_seconds)}", layout=False)
            self.query_one("#batch-text", Label).update(f"{ev.batch}/{ev.batches}  {ev.images_per_sec:,.0f} img/s  loss {ev.loss:.3f}", layout=False)
        elif self.latest_dirty:
            self.query_one("#epoch-text", Label).update(f"{len(self.rows)}/{self.epochs}", layout=False)
        if self.latest_dirty:
            self.latest_dirty = False
            self.query_one("#latest", Static).update(latest_table(self.rows, self.last_ips), layout=False)
            ref = self.preset.reference if self.preset else None
            reference = {**ref.figures(), "epochs": ref.epochs} if ref else None
            self.query_one("#run-reference", Static).update(reference_line(reference, self.rows, self.summary))
        now = time.monotonic()
        if self.charts_dirty and (epoch_news or now - self._charts_fed_at >= CHART_EVERY_S):
            self.charts_dirty = False
            self._charts_fed_at = now
            self._feed_charts()
        for chart in self.query(MetricChart):
            chart.redraw()

    def _feed_charts(self) -> None:
        epochs = [r["epoch"] for r in self.rows]
        col = lambda key: [r.get(key) for r in self.rows]  # noqa: E731
        loss = self.query_one("#loss-chart", MetricChart)
        loss.set_series("train", epochs + self.live_loss[0], col("train_loss") + self.live_loss[1])
        loss.set_series("val", epochs, col("val_loss"))
        acc = self.query_one("#acc-chart", MetricChart)
        acc.set_series("train", epochs, col("train_acc"))
        acc.set_series("val", epochs, col("val_acc"))
        lr = self.query_one("#lr-chart", MetricChart)
        if self.batch_lr[0]:
            # Per-batch points for the epochs seen live, per-epoch points before them (a resume).
            first = self.batch_lr[0][0]
            xs = [e for e in epochs if e <= first] + self.batch_lr[0]
            ys = [r.get("lr") for r in self.rows if r["epoch"] <= first] + self.batch_lr[1]
            lr.set_series("lr", xs, ys)
        else:
            lr.set_series("lr", epochs, col("lr"))

    # --- status ----------------------------------------------------------------------------

    def _set_state(self, state: str, message: str = "") -> None:
        self.state, self.message = state, message
        self._show_status()
        self.refresh_bindings()

    def _show_status(self) -> None:
        text = Text()
        text.append(f"● {self.state}", style=STATE_STYLES.get(self.state, ""))
        if self.read_only and self.state != "running":
            text.append(" (view)", style="dim")
        name = self.preset.name if self.preset else ""
        for part in (name, self.run_id, self.device):
            if part:
                text.append(f"  {part}")
        if self.message and self.state in ("failed", "diverged", "crashed", "stopped", "stopping"):
            text.append(f"  {self.message}", style=STATE_STYLES.get(self.state, ""))
        self.query_one("#run-status", Static).update(text)

    def log_line(self, line: str | Text) -> None:
        self.query_one("#log", RichLog).write(line)

    # --- keys -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("pause", "stop"):
            if self.read_only:
                return False  # another process's run: nothing to steer from here
            if self.active is None or not self.active.is_running or self.state == "stopping":
                return None  # shown, dimmed
        return True

    def action_pause(self) -> None:
        if self.active is None or not self.active.is_running:
            return
        if self.state == "stopping":
            return
        if self.active.paused:
            self.active.resume()
            self._set_state("running" if self.run_started else "starting")
            self.log_line("resumed")
        else:
            self.active.pause()
            self._set_state("paused")
            self.log_line(Text("paused: p resumes, s stops", style="yellow"))

    def action_stop(self) -> None:
        if self.active is None or not self.active.is_running:
            return
        self.active.stop()
        self._set_state("stopping", "stopping at the next batch…")
        self.log_line(Text("stopping at the next batch (a checkpoint is written)…", style="yellow"))

    def action_toggle_results(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "results" if switcher.current == "live" else "live"

    def action_focus_log(self) -> None:
        self.query_one(ContentSwitcher).current = "live"
        self.query_one("#log", RichLog).focus()

    def action_back(self) -> None:
        """Back to the screen underneath (the picker, past the editor) while the run goes on."""
        app = self.app
        if len(app.screen_stack) <= 1:
            return
        app.pop_screen()
        try:
            from tui.screens.edit import EditScreen
        except ImportError:
            return
        # The editor started this run; "back" means back to choosing the next experiment.
        while len(app.screen_stack) > 1 and isinstance(app.screen_stack[-1], EditScreen):
            app.pop_screen()
