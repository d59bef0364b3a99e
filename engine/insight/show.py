"""A run's results drawn with rich: its figures beside its report's, per class, as a confusion heat
table, and as test images with their true and predicted labels (report 002's views); a sweep's table.

The renderables are plain functions of the run folder's data so that `cnnlab show` (engine/cli/show.py)
and the console draw the same: reference_table, per_class_table, confusion_table, render_thumbnail,
examples_grid, sweep_table, run_report. No torch here.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from engine.evaluation.evaluate import confused_pairs, worst_classes
from engine.experiment.config import Experiment, arch_kind
from engine.experiment.presets import find_preset
from engine.experiment.schema import inline_toml
from engine.insight.formatting import STATE_STYLES, cli_pct
from engine.insight.formatting import metric as metric_text
from engine.insight.top_losses_view import mistakes_report
from engine.runfolder.folder import RunFolder, user_presets_dir
from engine.runfolder.table import read_run

FULL_MATRIX_MAX = 20  # above this many classes the matrix is summarised (worst classes, most-confused pairs)
FIGURES = (
    ("train_loss", "train loss"),
    ("train_acc", "train acc"),
    ("val_loss", "val loss"),
    ("val_acc", "val acc"),
    ("test_loss", "test loss"),
    ("test_acc", "test acc"),
)


def _bar(frac: float | None, width: int = 20) -> Text:
    if frac is None:
        return Text("no images", style="dim")
    filled = round(frac * width)
    colour = "green" if frac >= 0.7 else "yellow" if frac >= 0.4 else "red"
    return Text("█" * filled, style=colour) + Text("░" * (width - filled), style="grey30")


# --- the report beside the run -------------------------------------------------------------------------


def run_figures(metrics: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, float | None]:
    """The run's figures comparable with a report's: the last epoch's train/val numbers, the test ones."""
    last = metrics[-1] if metrics else summary.get("final", {}) or {}
    return {
        "train_loss": last.get("train_loss"),
        "train_acc": last.get("train_acc"),
        "val_loss": last.get("val_loss"),
        "val_acc": last.get("val_acc"),
        "test_loss": summary.get("test_loss"),
        "test_acc": summary.get("test_acc"),
    }


def reference_table(preset, metrics: list[dict[str, Any]], summary: dict[str, Any]) -> Table:
    """The report's numbers (at the epoch they were measured) beside this run's (at its epoch)."""
    reference = getattr(preset, "reference", None)
    ref = {**reference.figures(), "epochs": reference.epochs} if reference else {}
    mine = run_figures(metrics, summary)
    epochs_done = len(metrics) or summary.get("epochs_done", 0)
    title = f"this run vs report {preset.report.split('_')[0]}" if preset is not None and preset.report else "this run"
    table = Table(title=Text(title), box=None, pad_edge=False, title_justify="left")
    table.add_column("")
    table.add_column(f"this run @{epochs_done} ep", justify="right")
    if ref:
        table.add_column(f"report @{ref['epochs']} ep" if ref.get("epochs") else "report", justify="right")
        table.add_column("difference", justify="right")
    for key, label in FIGURES:
        if mine.get(key) is None and ref.get(key) is None:
            continue
        cells = [label, metric_text(key, mine.get(key))]
        if ref:
            cells.append(metric_text(key, ref.get(key)))
            cells.append(_difference(key, mine.get(key), ref.get(key)))
        table.add_row(*cells)
    best = summary.get("best_val_acc")
    if best is not None:
        table.add_row(
            "best val acc", f"{cli_pct(best)} @{summary.get('best_epoch', '?')} ep", *([""] * (2 if ref else 0))
        )
    if reference is not None and reference.note:
        table.caption = Text(reference.note)
    return table


def _difference(key: str, mine: float | None, ref: float | None) -> Text:
    if mine is None or ref is None:
        return Text("")
    d = mine - ref
    better = d >= 0 if key.endswith("_acc") else d <= 0
    text = f"{100 * d:+.2f} pts" if key.endswith("_acc") else f"{d:+.4f}"
    return Text(text, style="green" if better else "red")


# --- per class and the confusion matrix ----------------------------------------------------------------


def per_class_table(summary: dict[str, Any]) -> Table:
    names = summary.get("class_names") or []
    accs = summary.get("per_class_acc") or []
    confusion = summary.get("confusion") or []
    table = Table(title="accuracy per class (test set)", box=None, pad_edge=False, title_justify="left")
    table.add_column("class")
    table.add_column("accuracy", justify="right")
    table.add_column("")
    table.add_column("images", justify="right", style="dim")
    for i, acc in enumerate(accs):
        n = sum(confusion[i]) if i < len(confusion) else None
        table.add_row(
            Text(names[i] if i < len(names) else str(i)), cli_pct(acc), _bar(acc), "" if n is None else str(n)
        )
    return table


def _heat(share: float, diagonal: bool) -> Style:
    # Right answers shade to green, mistakes to red; the stronger, the larger the row's share.
    base = (28, 28, 28)
    top = (0, 150, 60) if diagonal else (190, 40, 40)
    r, g, b = (round(lo + (hi - lo) * min(share, 1.0)) for lo, hi in zip(base, top, strict=True))
    return Style(color="white", bgcolor=f"rgb({r},{g},{b})")


def confusion_table(summary: dict[str, Any]) -> RenderableType:
    """The matrix as a heat table (rows: true class, columns: predicted); for many classes, the worst
    classes and the most-confused pairs instead of a table nobody can read."""
    confusion = summary.get("confusion") or []
    names = summary.get("class_names") or [str(i) for i in range(len(confusion))]
    if not confusion:
        return Text("no confusion matrix (the run has no test figures yet)", style="dim")
    if len(confusion) > FULL_MATRIX_MAX:
        worst = Table(title="worst classes", box=None, pad_edge=False, title_justify="left")
        worst.add_column("class")
        worst.add_column("accuracy", justify="right")
        worst.add_column("")
        for name, acc in worst_classes(confusion, names, 10):
            worst.add_row(Text(name), cli_pct(acc), _bar(acc))
        pairs = Table(title="most confused (true → predicted)", box=None, pad_edge=False, title_justify="left")
        pairs.add_column("true")
        pairs.add_column("predicted as")
        pairs.add_column("images", justify="right")
        for t, p, n in confused_pairs(confusion, names, 10):
            pairs.add_row(Text(t), Text(p), str(n))
        return Group(worst, Text(""), pairs)
    table = Table(
        title="confusion matrix (rows: true class, columns: predicted)",
        box=None,
        pad_edge=False,
        title_justify="left",
        collapse_padding=True,
    )
    table.add_column("true \\ pred")
    for j in range(len(confusion)):
        table.add_column(str(j), justify="right")
    for i, row in enumerate(confusion):
        total = sum(row) or 1
        cells = [Text(f"{i} {names[i][:12]}")]
        for j, n in enumerate(row):
            cells.append(Text(f"{n:>4}", style=_heat(n / total, i == j)) if n else Text("   ·", style="grey42"))
        table.add_row(*cells)
    return table


# --- prediction examples --------------------------------------------------------------------------------


def _pixels(example: dict[str, Any], width: int):
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(example["png"]))).convert("RGB")
    if img.width != width:
        img = img.resize((width, max(1, round(img.height * width / img.width))), Image.Resampling.LANCZOS)
    return img


def render_thumbnail(example: dict[str, Any], width: int = 16) -> RenderableType:
    """An example image in half blocks (▀: the upper pixel as the glyph's colour, the lower as its
    background: two pixel rows per line), with its predicted label, green when right, red when wrong
    (and then the true label under it). An image that does not decode is a line saying so."""
    try:
        img = _pixels(example, width)
    except Exception:  # damaged base64 or PNG bytes surface as any of Pillow's and binascii's errors
        return Text("(image does not decode)", style="dim")
    px = img.load()
    art = Text()
    for y in range(0, img.height, 2):
        for x in range(img.width):
            top = px[x, y]
            bottom = px[x, y + 1] if y + 1 < img.height else (0, 0, 0)
            art.append(
                "▀",
                Style(color=f"rgb({top[0]},{top[1]},{top[2]})", bgcolor=f"rgb({bottom[0]},{bottom[1]},{bottom[2]})"),
            )
        if y + 2 < img.height:
            art.append("\n")
    room = max(width, 12)
    if example.get("correct"):
        caption = Text(f"✓ {example.get('pred', '?')}"[:room], style="bold green")
    else:
        caption = Text(f"✗ {example.get('pred', '?')}"[:room], style="bold red") + Text(
            "\n" + f"true: {example.get('true', '?')}"[:room], style="dim"
        )
    return Group(art, caption)


def examples_grid(summary: dict[str, Any], width: int = 16) -> RenderableType:
    examples = summary.get("examples") or []
    if not examples:
        return Text("no prediction examples", style="dim")
    return Columns([render_thumbnail(e, width) for e in examples], padding=(0, 2))


# --- sweeps ---------------------------------------------------------------------------------------------


def sweep_table(rows: list[dict[str, Any]], varied: list[str], metric: str = "val_acc") -> Table:
    """Report 002's Table 1: the varied fields, train / val / test accuracy and minutes per trial, best first.
    Every cell is a name or a figure: none wraps (the CLI prints it as plain rows when it cannot fit)."""
    table = Table(title=Text(f"sweep results, best {metric} first"), box=None, pad_edge=False, title_justify="left")
    table.add_column("trial", justify="right", no_wrap=True)
    short = [k.split(".")[-1] for k in varied]
    for key, name in zip(varied, short, strict=True):
        # "lr", "momentum": the field's own name when that is unambiguous, as report 002's table has it
        table.add_column(name if short.count(name) == 1 else key, justify="right", no_wrap=True)
    for col in ("state", "epochs", "train acc", "val acc", "test acc", "minutes"):
        table.add_column(col, justify="right", no_wrap=True)
    for n, r in enumerate(rows):
        style = "bold green" if n == 0 and r.get(metric) is not None else None
        table.add_row(
            str(r["trial"]),
            *[Text(str(r.get(k))) for k in varied],  # values are the user's: never read as markup
            Text(str(r.get("state", ""))),
            str(r.get("epochs", "")),
            cli_pct(r.get("train_acc")),
            cli_pct(r.get("val_acc")),
            cli_pct(r.get("test_acc")),
            "-" if r.get("minutes") is None else f"{r['minutes']:.2f}",
            style=style,
        )
    return table


# --- the whole run --------------------------------------------------------------------------------------


def config_essentials(exp: Experiment, preset_name: str) -> Text:
    d, m, o, s, t, a = exp.data, exp.model, exp.optim, exp.schedule, exp.train, exp.augment
    opt = (
        f"{o.name} lr {o.lr:g}"
        + (f" momentum {o.momentum:g}" if o.name == "sgd" else "")
        + (f" wd {o.weight_decay:g}" if o.weight_decay else "")
    )
    if o.grad_clip:
        opt += f" clip {o.grad_clip:g}"
    aug = [
        n
        for n, on in (
            ("flip", a.hflip),
            (f"crop±{a.crop_padding}", a.crop_padding),
            (f"rotate {a.rotation:g}°", a.rotation),
            (f"jitter {a.color_jitter:g}", a.color_jitter),
            (f"mixup {a.mixup_alpha:g}", a.mixup_alpha),
            (f"smoothing {a.label_smoothing:g}", a.label_smoothing),
        )
        if on
    ]
    lines = [
        ("preset", preset_name or "-"),
        (
            "data",
            f"{d.dataset}"
            + (f", first {d.classes} classes" if d.classes else "")
            + (f", {d.train_subset} train images" if d.train_subset else "")
            + f", val split {d.val_split:g}"
            + (f", test split {d.test_split:g}" if d.test_split else ""),
        ),
        (
            "model",
            f"{m.arch}"
            + (" (ImageNet weights)" if m.pretrained else "")
            + (" (small-image stem)" if m.small_input else "")
            + (f", {inline_toml(m.kwargs)}" if m.kwargs else "")
            + (f", init {m.init}" if m.init != "default" else ""),
        ),
        (
            "training",
            f"{t.epochs} epochs, batch {t.batch_size}, {opt}, schedule {s.name}"
            + (f", {len(t.phases)} phases" if t.phases else ""),
        ),
        ("augment", ", ".join(aug) or "none"),
    ]
    text = Text()
    for i, (k, v) in enumerate(lines):
        text.append(f"{k:>9}  ", style="bold cyan")
        text.append(v + ("\n" if i < len(lines) - 1 else ""))
    return text


def _runs_dir_of(run_dir: Path) -> Path:
    """The runs folder a run lives in (a sweep's trials are one level deeper): where its user presets are."""
    from engine.sweeps.folder import is_sweep

    return run_dir.parent.parent if is_sweep(run_dir.parent) else run_dir.parent


def run_report(run_dir: Path, summary: dict[str, Any] | None = None, runs_dir: Path | None = None) -> RenderableType:
    """Everything `cnnlab show` prints for a run folder (summary: figures to show instead of summary.json's)."""
    folder = RunFolder(Path(run_dir))
    info = read_run(folder.path)
    if info is None:
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.toml)")
    metrics = folder.metrics()
    summary = {**folder.summary(), **(summary or {})}
    preset = find_preset(info.preset, user_presets_dir(runs_dir or _runs_dir_of(folder.path)))
    head = Text()
    head.append(f"{info.id}  ", style="bold")
    head.append(info.state, style=STATE_STYLES.get(info.state, "bold red"))
    head.append(f"  {info.epochs_done}/{info.epochs} epochs")
    if summary.get("seconds"):
        head.append(f"  {summary['seconds'] / 60:.1f} min")
    parts: list[RenderableType] = [head]
    if info.problems:
        parts += [Text(f"damaged: {p}", style="bold red") for p in info.problems]
    elif info.message:
        parts.append(Text(info.message, style="yellow"))
    if info.resumable and len(metrics) > info.epochs_done:
        redo = ", ".join(str(r["epoch"]) for r in metrics[info.epochs_done :])
        parts.append(Text(f"epoch {redo} ended after the last checkpoint: a resume trains it again", style="yellow"))
        metrics = metrics[: info.epochs_done]
    try:
        exp = folder.experiment()
        parts.append(config_essentials(exp, info.preset))
        if arch_kind(exp.model.arch) in ("file", "module"):
            from engine.models import user_file  # torch: only for a run of the user's own model

            drifted = user_file.drift(folder.path)  # the user's file edited or gone since the run's copy
            if drifted:
                parts.append(Text(drifted, style="yellow"))
    except (OSError, ValueError) as err:  # ConfigError is a ValueError and names the fields
        parts.append(Text(f"config.toml does not validate: {err}", style="red"))
    parts += [Text(""), reference_table(preset, metrics, summary)]
    if summary.get("collapse_warning"):
        parts += [Text(""), Text(summary["collapse_warning"], style="bold red")]
    if summary.get("per_class_acc"):
        if summary.get("test_checkpoint"):
            epoch = summary.get("checkpoint_epoch")
            weights = f"{summary['test_checkpoint']} checkpoint" + (f" (epoch {epoch})" if epoch is not None else "")
            parts += [Text(""), Text(f"test figures from the {weights}", style="dim")]
        parts += [
            Text(""),
            per_class_table(summary),
            Text(""),
            confusion_table(summary),
            Text(""),
            Text("test images: predicted label (green right, red wrong) and the true one when wrong", style="bold"),
            examples_grid(summary),
            Text(""),
            mistakes_report(summary, with_warning=False),  # engine.insight.top_losses_view: what it gets most wrong
        ]
    elif info.state == "finished":
        parts += [Text(""), Text("no test set: no per-class figures (set data.test_split to carve one)", style="dim")]
    return Group(*parts)
