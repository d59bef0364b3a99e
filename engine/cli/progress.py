"""The rich progress listener of `cnnlab run`: engine events drawn as a live display on a terminal,
or as plain lines (one per epoch) when output is piped."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from engine.events import (
    BatchProgress,
    EpochFinished,
    Event,
    LogMessage,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
)
from engine.insight.formatting import cli_pct as pct

# The engine's own words, printed as they are: no markup read into a path's brackets, and left to the
# terminal to wrap, so that a path in them pastes whole.
AS_IS = {"markup": False, "highlight": False, "soft_wrap": True}


def epoch_line(m: dict) -> str:
    parts = [f"epoch {m['epoch']:>3}", f"loss {m['train_loss']:.4f}", f"acc {pct(m['train_acc'])}"]
    if m.get("val_loss") is not None:
        parts += [f"val loss {m['val_loss']:.4f}", f"val acc {pct(m['val_acc'])}"]
    parts += [f"lr {m['lr']:.3g}", f"{m['seconds']:.1f}s", f"{m['images_per_sec']:.0f} img/s"]
    return "  ".join(parts)


class ConsoleProgress:
    """Listener for the headless CLI."""

    def __init__(self, console: Console | None = None, live: bool | None = None):
        self.console = console or Console(stderr=False)
        self.live = sys.stdout.isatty() if live is None else live
        self.progress: Progress | None = None
        self.epoch_task = self.batch_task = None

    def __call__(self, ev: Event) -> None:
        c = self.console
        if isinstance(ev, RunStarted):
            c.print(
                f"run {ev.run_id}: {ev.params:,} parameters on {ev.device} ({ev.precision}"
                f"{', channels_last' if ev.channels_last else ''}); "
                f"{ev.train_size} train / {ev.val_size} val / {ev.test_size} test images"
            )
            for m in ev.history:
                c.print(epoch_line(m), style="dim")
            if self.live:
                self.progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"),
                    TimeRemainingColumn(),
                    console=c,
                    transient=True,
                )
                self.progress.start()
                self.epoch_task = self.progress.add_task("epochs", total=ev.epochs, completed=ev.start_epoch, info="")
                self.batch_task = self.progress.add_task("batches", total=ev.batches_per_epoch, info="")
        elif isinstance(ev, BatchProgress):
            if self.progress:
                self.progress.update(
                    self.batch_task,
                    completed=ev.batch,
                    total=ev.batches,
                    description=f"epoch {ev.epoch}",
                    info=f"loss {ev.loss:.4f}  lr {ev.lr:.3g}  {ev.images_per_sec:.0f} img/s",
                )
        elif isinstance(ev, EpochFinished):
            if self.progress:
                self.progress.update(self.epoch_task, completed=ev.metrics["epoch"])
                self.progress.console.print(epoch_line(ev.metrics))
            else:
                print(epoch_line(ev.metrics), flush=True)
        elif isinstance(ev, LogMessage):
            c.print(ev.text, style="yellow" if ev.level == "warning" else "dim", **AS_IS)
        else:
            self.close()
            if isinstance(ev, RunFinished):
                s = ev.summary
                c.print(
                    f"finished: best val acc {pct(s.get('best_val_acc'))}, test acc {pct(s.get('test_acc'))}",
                    style="green",
                )
                if s.get("collapse_warning"):
                    c.print(s["collapse_warning"], style="bold red")
            elif isinstance(ev, RunStopped):
                c.print(ev.message, style="yellow", **AS_IS)
            elif isinstance(ev, (RunFailed, RunDiverged)):
                c.print(ev.message, style="bold red", **AS_IS)

    def close(self) -> None:
        if self.progress:
            self.progress.stop()
            self.progress = None
