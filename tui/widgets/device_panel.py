"""The run screen's device panel: one line with the device and what it is doing, sampled every two
seconds from engine.compute.device_stats while the run trains in a process this console can see (its own,
or another on this machine, by the pid in status.json); otherwise the device the run used and the
peak memory its metrics recorded. A missing optional library is a dim note, never an error."""

from __future__ import annotations

from typing import Any, Callable

from rich.text import Text
from textual.widgets import Static

SAMPLE_EVERY_S = 2.0


def recorded_text(device: str, rows: list[dict[str, Any]]) -> Text:
    """What the folder says: the device, and the highest peak memory of its epochs (each rank's, for
    a run on several devices)."""
    text = Text(device or "device not known yet")
    ranks = ranks_peak(rows)
    if ranks:
        text.append(f" · {ranks}")
        return text
    peaks = [r["peak_memory_mb"] for r in rows if isinstance(r.get("peak_memory_mb"), (int, float))]
    if peaks:
        text.append(f" · peak memory {max(peaks):.0f} MB", style="")
    return text


def ranks_peak(rows: list[dict[str, Any]]) -> str:
    """ "peak memory per rank 812 / 790 MB" over the epochs so far; "" for a run on one device."""
    per_rank: list[float] = []
    for row in rows:
        values = row.get("peak_memory_mb_ranks")
        if not isinstance(values, list):
            continue
        per_rank += [0.0] * (len(values) - len(per_rank))
        for i, v in enumerate(values):
            if isinstance(v, (int, float)):
                per_rank[i] = max(per_rank[i], v)
    if len(per_rank) < 2:
        return ""
    return "peak memory per rank " + " / ".join(f"{v:.0f}" for v in per_rank) + " MB"


class DevicePanel(Static):
    """`track(device, rows, pid)` samples the training process while there is one, else shows the record."""

    DEFAULT_CSS = """
    DevicePanel {
        height: 1;
        width: 1fr;
        padding: 0 1;
        color: $text-muted;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.monitor = None
        self.device = ""
        self.rows: list[dict[str, Any]] = []
        self.samples = 0  # what the tests wait for

    def on_mount(self) -> None:
        self.set_interval(SAMPLE_EVERY_S, self.sample)

    def follow(self, device: str, pid: int | None) -> None:
        """Sample the process `pid` training on `device` (the engine's device string)."""
        from engine.compute.device_stats import DeviceMonitor  # /proc and the stdlib; torch only for CUDA

        self.device = device
        self.monitor = DeviceMonitor(device.split(" · ")[0], pid)
        self.sample()

    def track(self, device: str, rows: list[dict[str, Any]], pid: Callable[[], int | None] | None) -> None:
        """Follow the training process while `pid` is given (asked for it once), else show the record."""
        self.rows = rows
        if pid is None or not device:
            if self.monitor is not None:
                self.monitor = None
            self.show_record(device, rows)
            return
        if self.monitor is None:
            which = pid()
            if which is None:
                self.show_record(device, rows)
                return
            self.follow(device, which)

    def show_record(self, device: str, rows: list[dict[str, Any]]) -> None:
        self.device, self.rows = device, rows
        if self.monitor is None:
            self.update(recorded_text(device, rows), layout=False)

    def sample(self) -> None:
        if self.monitor is None:
            return
        from engine.compute.device_stats import panel_text

        s = self.monitor.sample()
        self.samples += 1
        text = Text(panel_text(s))
        ranks = ranks_peak(self.rows)  # the sampled process is rank 0's; the others' from the metrics
        if ranks:
            text.append(f" · {ranks}")
        if s.note:
            text.append(f" · {s.note}", style="dim italic")
        self.update(text, layout=False)  # fixed size: a layout of the screen would hold the GIL the trainer needs
