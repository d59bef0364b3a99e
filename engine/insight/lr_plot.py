"""The lr range test's curve drawn with plotext: loss against a log-scale lr, the suggestion marked.

One drawing for the CLI (`cnnlab lr-find` prints plotext's build) and the console (a textual-plotext
widget hands its own plotext object), so both show the same. No torch here.
"""

from __future__ import annotations

import math
from typing import Any


def _decades(lo: float, hi: float) -> list[float]:
    first, last = math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9)
    step = max(1, math.ceil((last - first + 1) / 6))
    return [10.0**e for e in range(first, last + 1, step)]


def draw_lr_curve(plt: Any, finding: dict[str, Any], width: int | None = None, height: int | None = None) -> None:
    """Draw `finding` (LRFinding.as_dict()) on plotext's `plt`, cleared first."""
    plt.clear_figure()
    if width and height:
        plt.plotsize(width, height)
    lrs, raw, smoothed = finding.get("lrs") or [], finding.get("losses") or [], finding.get("smoothed") or []
    plt.title("lr range test: loss against learning rate")
    plt.xlabel("learning rate (log scale)")
    if len(lrs) < 2:
        return
    plt.plot(lrs, raw, label="loss", color="gray", marker="braille")
    plt.plot(lrs, smoothed, label="smoothed", color="cyan", marker="braille")
    plt.xscale("log")
    ticks = _decades(lrs[0], lrs[-1])
    if ticks:
        plt.xticks(ticks, [f"{t:.0e}" for t in ticks])
    # An explosion dwarfs the interesting part: the top is a little above where the loss started.
    head = smoothed[: max(len(smoothed) // 10, 1)]
    top = max(head) * 1.25
    bottom = min(min(smoothed), min(raw))
    if top > bottom:
        plt.ylim(bottom - 0.05 * (top - bottom), top)
    lr = finding.get("suggestion")
    if lr:
        plt.vline(lr, "red")
