"""What a run gets wrong, drawn with rich for `cnnlab show` and the console's results: what the
model predicts most (a one-label collapse, report 002's Adam run, reads 100 % there), the most
confused class pairs with their counts, and the test images with the highest loss, each with its
predicted class and probability, its true class and its loss. No torch here.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from engine.evaluation.evaluate import confused_pairs

PAIRS = 8
SHARES = 3


def prediction_shares(confusion: list[list[int]], class_names: list[str], n: int = SHARES) -> list[tuple[str, float]]:
    """The n classes predicted most, with their share of all predictions."""
    m = np.asarray(confusion, dtype=np.int64)
    total = int(m.sum())
    if total == 0:
        return []
    predicted = m.sum(axis=0)
    order = np.argsort(-predicted, kind="stable")[:n]
    return [(class_names[i] if i < len(class_names) else str(i), float(predicted[i] / total)) for i in order]


def shares_line(summary: dict[str, Any]) -> Text:
    confusion = summary.get("confusion") or []
    names = summary.get("class_names") or []
    shares = prediction_shares(confusion, names)
    text = Text("predicted most: ", style="bold")
    for i, (name, share) in enumerate(shares):
        if i:
            text.append(" · ")
        text.append(f"{name} {100 * share:.0f}%", style="bold red" if share >= 0.9 and len(names) > 1 else "")
    return text


def confused_table(summary: dict[str, Any], n: int = PAIRS) -> RenderableType:
    confusion = summary.get("confusion") or []
    names = summary.get("class_names") or [str(i) for i in range(len(confusion))]
    pairs = confused_pairs(confusion, names, n)
    if not pairs:
        return Text("no mistakes on the test set", style="green")
    table = Table(box=None, pad_edge=False)
    table.add_column("true", no_wrap=True)
    table.add_column("predicted as", no_wrap=True)
    table.add_column("images", justify="right")
    for t, p, count in pairs:
        table.add_row(Text(t), Text(p), str(count))
    return Group(Text("most confused (true → predicted)", style="italic"), table)  # a title that never wraps


def half_blocks(png_b64: str, width: int) -> Text:
    """A thumbnail in half blocks: ▀ with the upper pixel as its colour, the lower as its background."""
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(png_b64))).convert("RGB")
    if img.width != width:
        img = img.resize((width, max(1, round(img.height * width / img.width))), Image.Resampling.LANCZOS)
    px = img.load()
    art = Text()
    for y in range(0, img.height, 2):
        for x in range(img.width):
            top = px[x, y]
            low = px[x, y + 1] if y + 1 < img.height else (0, 0, 0)
            art.append("▀", Style(color=f"rgb{tuple(top)}", bgcolor=f"rgb{tuple(low)}"))
        if y + 2 < img.height:
            art.append("\n")
    return art


def top_loss_card(item: dict[str, Any], width: int = 16) -> RenderableType:
    """A thumbnail with `✗ predicted 97%`, `true: cat` and its loss (✓ in green when it was right)."""
    room = max(width, 12)
    mark, style = ("✓", "bold green") if item.get("correct") else ("✗", "bold red")
    lines = [
        Text(f"{mark} {item.get('pred', '?')} {100 * item.get('prob', 0):.0f}%"[:room], style=style),
        Text(f"true: {item.get('true', '?')}"[:room], style="dim"),
        Text(f"loss {item.get('loss', 0):.2f}"[:room], style="dim"),
    ]
    art = half_blocks(item["png"], width) if item.get("png") else Text("")
    return Group(art, *lines)


def top_losses_grid(summary: dict[str, Any], width: int = 16) -> RenderableType:
    items = summary.get("top_losses") or []
    if not items:
        return Text("no per-image losses in this run's summary (runs before cnnlab kept them have none)", style="dim")
    return Columns([top_loss_card(i, width) for i in items], padding=(0, 2))


def mistakes_report(summary: dict[str, Any], with_warning: bool = True, with_shares: bool = True) -> RenderableType:
    """Everything on what the run gets wrong, top to bottom: the collapse warning (with_warning), the
    classes predicted most (with_shares), the most confused pairs, the highest-loss images."""
    parts: list[RenderableType] = []
    if with_warning and summary.get("collapse_warning"):
        parts += [Text(summary["collapse_warning"], style="bold red"), Text("")]
    if summary.get("confusion"):
        parts += [shares_line(summary), Text("")] if with_shares else []
        parts += [confused_table(summary), Text("")]
    parts += [
        Text("highest-loss test images: predicted class and probability, the true class, the loss", style="bold"),
        top_losses_grid(summary),
    ]
    return Group(*parts)
