"""How a run reads on the console's screens: the status line, the report beside this run, the
latest metrics, one log line per epoch, what is said when a run starts or ends, its short id.

Pure functions of plain values (rich renderables, no Textual), tested without the app; numbers
go through engine.insight.formatting, the one home of percentages, durations and state colours.
"""

from __future__ import annotations

import re
from typing import Any

from rich.table import Table
from rich.text import Text

from engine.events import RunStarted
from engine.insight.formatting import MISSING, STATE_STYLES, duration, num, pct

# The report's figures in the order the reference line prefers them.
_REF_ORDER = (
    ("test_acc", "test"),
    ("val_acc", "val"),
    ("train_acc", "train"),
    ("val_loss", "val loss"),
    ("train_loss", "train loss"),
)
# States whose message the status line shows beside them.
_TELLING_STATES = ("failed", "diverged", "crashed", "stopped", "stopping")


def _figure(key: str, value: Any) -> str:
    return pct(value, space=False) if key.endswith("acc") else num(value, 3)


def reference_line(reference: dict[str, Any] | None, rows: list[dict[str, Any]], summary: dict[str, Any] | None) -> str:
    """The report's two headline figures and this run's same figures so far (test accuracy once the
    run has finished), e.g. "report val 60.0% @300 ep │ this run val 41.2% @12 ep"; fits 80 columns."""
    reference = {k: v for k, v in (reference or {}).items() if v is not None}
    summary = summary or {}
    last = rows[-1] if rows else {}

    def mine_of(key: str) -> Any:
        return summary.get(key) if key == "test_acc" else last.get(key)

    shown = [(k, label) for k, label in _REF_ORDER if k in reference][:2]
    if not shown:  # no report numbers: show what this run has
        shown = [(k, label) for k, label in _REF_ORDER[:3] if mine_of(k) is not None][:2]
    mine = [f"{label} {_figure(key, mine_of(key))}" for key, label in shown]
    run = "this run " + (" · ".join(mine) if mine else MISSING) + f" @{len(rows)} ep"
    if not reference:
        return run
    ep = reference.get("epochs")
    report = "report " + " · ".join(f"{label} {_figure(k, reference[k])}" for k, label in shown)
    return f"{report}{f' @{ep:g} ep' if ep else ''} │ {run}"


def best_epoch(rows: list[dict[str, Any]]) -> tuple[float, int] | None:
    """(accuracy, epoch) of the best validation accuracy (training accuracy without a val split)."""
    key = "val_acc" if any(r.get("val_acc") is not None for r in rows) else "train_acc"
    scored = [(r[key], int(r["epoch"])) for r in rows if r.get(key) is not None]
    return max(scored, key=lambda t: (t[0], -t[1])) if scored else None


def latest_table(rows: list[dict[str, Any]], images_per_sec: float | None = None) -> Table:
    """The last epoch's figures, the best so far, the learning rate and the speed."""
    last = rows[-1] if rows else {}
    table = Table(box=None, pad_edge=False, show_edge=False, expand=False, padding=(0, 1))
    table.add_column(f"epoch {last.get('epoch', MISSING)}", style="bold")
    table.add_column("train", justify="right")
    table.add_column("val", justify="right")
    table.add_row("loss", num(last.get("train_loss")), num(last.get("val_loss")))
    table.add_row("acc", pct(last.get("train_acc")), pct(last.get("val_acc")))
    best = best_epoch(rows)
    table.add_row("best", "", f"{pct(best[0])} @{best[1]}" if best else MISSING)
    lr = last.get("lr")
    table.add_row("lr", f"{lr:.3g}" if isinstance(lr, (int, float)) else MISSING, "")
    ips = images_per_sec if images_per_sec is not None else last.get("images_per_sec")
    table.add_row("img/s", f"{ips:,.0f}" if isinstance(ips, (int, float)) else MISSING, "")
    return table


def epoch_line(row: dict[str, Any], epochs: int, best: bool) -> Text:
    """One compact log line per epoch: it must fit beside the metrics at 80 columns."""
    text = Text(f"ep {row['epoch']}/{epochs} loss {num(row.get('train_loss'), 3)}")
    if row.get("val_loss") is not None:
        text.append(f"/{num(row['val_loss'], 3)}")
    # "acc 40.0/36.0%": train and val share one percent sign.
    acc = row.get("train_acc")
    text.append(f" acc {acc * 100:.1f}" if isinstance(acc, (int, float)) else f" acc {MISSING}")
    if row.get("val_acc") is not None:
        text.append(f"/{row['val_acc'] * 100:.1f}")
    text.append("%")
    if row.get("seconds") is not None:
        text.append(f" {row['seconds']:.1f}s")
    if best:
        text.append(" ★", style="bold green")
    return text


def started_lines(ev: RunStarted) -> list[Text]:
    layout = "channels_last · " if ev.channels_last else ""
    lines = [
        Text(
            f"started on {ev.device}, precision {ev.precision}, {layout}{ev.params / 1e6:.2f} M params; "
            f"{ev.train_size} train / {ev.val_size} val / {ev.test_size} test images, "
            f"{ev.batches_per_epoch} batches an epoch",
            style="bold",
        )
    ]
    if ev.start_epoch:
        lines.append(Text(f"continuing at epoch {ev.start_epoch + 1} of {ev.epochs}"))
    return lines


def finished_line(summary: dict[str, Any]) -> str:
    figures = []
    if summary.get("test_acc") is not None:
        figures.append(f"test acc {pct(summary['test_acc'])}")
    if summary.get("best_val_acc") is not None:
        figures.append(f"best val acc {pct(summary['best_val_acc'])}")
    return "finished" + (": " + ", ".join(figures) if figures else "") + "; r shows the per-class results"


def end_lines(state: str, message: str, summary: dict[str, Any] | None) -> list[Text]:
    """The log's last words on a run that ended `state`."""
    if state == "finished":
        summary = summary or {}
        lines = [Text(finished_line(summary), style="bold cyan")]
        if summary.get("collapse_warning"):
            lines.append(Text(f"⚠ {summary['collapse_warning']}", style="bold red"))
        return lines
    if state == "stopped":
        return [Text(f"stopped: {message} (resumable from the runs screen)", style="bold yellow")]
    return [Text(f"{state}: {message}", style="bold red")]


def end_note(state: str, message: str, summary: dict[str, Any] | None) -> dict[str, Any]:
    """The notification for a run this console trained that ended `state`: App.notify's arguments."""
    if state == "finished":
        return {"message": finished_line(summary or {}), "title": "Run finished"}
    if state == "stopped":
        return {"message": message or "stopped", "title": "Run stopped"}
    return {"message": message or state, "title": f"Run {state}", "severity": "error", "timeout": 12}


def status_text(state: str, message: str, *, read_only: bool, parts: list[str]) -> Text:
    """The state in its colour, then who and where: "● running  shapes-demo  20250122-…  cpu · bf16"."""
    style = STATE_STYLES.get(state, "")
    text = Text()
    text.append(f"● {state}", style=style)
    if read_only and state != "running":
        text.append(" (view)", style="dim")
    for part in parts:
        if part:
            text.append(f"  {part}")
    if message and state in _TELLING_STATES:
        text.append(f"  {message}", style=style)
    return text


def epoch_text(epoch: float | int, epochs: int, eta_seconds: float | None = None) -> str:
    return f"{epoch}/{epochs}" + (f"  ETA {duration(eta_seconds)}" if eta_seconds is not None else "")


def batch_text(batch: int, batches: int, images_per_sec: float, loss: float) -> str:
    return f"{batch}/{batches}  {images_per_sec:,.0f} img/s  loss {loss:.3f}"


_STAMP = re.compile(r"^\d{8}-\d{6}-")


def short_id(run_id: str) -> str:
    """The run id without its timestamp (tables show the start time in a column of its own)."""
    return _STAMP.sub("", run_id)


def started_text(started: str) -> str:
    """'2025-01-22T07:20:31' → '01-22 07:20'."""
    if len(started) >= 16 and started[4] == "-" and started[10] == "T":
        return f"{started[5:10]} {started[11:16]}"
    return started
