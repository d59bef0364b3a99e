"""How numbers, durations and run states read, in the CLI and in the console alike.

Pure functions of plain values: no torch, no Textual. Two widths of percentage exist on purpose:
the CLI prints two decimals ("61.23%"), the console's narrow cells one ("61.2 %").
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "–"

# Rich styles per run state, shared by `cnnlab runs`, `cnnlab show` and the console.
STATE_STYLES = {
    "created": "dim",
    "starting": "yellow",
    "running": "bold green",
    "paused": "bold yellow",
    "stopping": "bold yellow",
    "finished": "bold cyan",
    "stopped": "bold yellow",
    "failed": "bold red",
    "diverged": "bold red",
    "pruned": "magenta",  # a sweep trial its pruner stopped early: an outcome, not a fault
    "crashed": "bold red",
    "damaged": "bold red",
}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def pct(v: Any, digits: int = 1, space: bool = True, missing: str = MISSING) -> str:
    """0.6123 → "61.2 %" (console) or, with digits=2, space=False, "61.23%" (CLI)."""
    if not _is_number(v):
        return missing
    return f"{v * 100:.{digits}f}{' ' if space else ''}%"


def cli_pct(v: Any) -> str:
    """The CLI's percentage: two decimals, no space, "-" when missing."""
    return pct(v, digits=2, space=False, missing="-")


def num(v: Any, digits: int = 4, missing: str = MISSING) -> str:
    return f"{v:.{digits}f}" if _is_number(v) else missing


def metric(key: str, v: Any, missing: str = "-") -> str:
    """A metric by its name: accuracies as percentages, losses and the rest as four decimals."""
    if not _is_number(v):
        return missing
    return cli_pct(v) if key.endswith("_acc") else f"{v:.4f}"


def duration(seconds: float | None) -> str:
    """Seconds as m:ss or h:mm:ss."""
    if not _is_number(seconds) or seconds < 0:
        return MISSING
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def state_markup(state: str) -> str:
    """A run state as rich markup in its colour."""
    return f"[{STATE_STYLES.get(state, 'white')}]{state}[/]"
