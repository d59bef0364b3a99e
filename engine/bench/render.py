"""The bench's result drawn for a terminal: a rich table of medians and ratios (fits 80 columns) and
the lines under it (machine, goals, end of epoch, memory, decoded cache)."""

from __future__ import annotations

from typing import Any

from engine.bench.targets import GOAL_CACHE_SPEEDUP, GOAL_ENGINE_VS_PURE, GOAL_ENGINE_VS_REPORTS


def _ips(s: dict[str, Any], best: bool = False) -> str:
    spread_pct = f" ±{100 * s['iqr'] / s['median']:.0f}%" if s["iqr"] and s["median"] else ""
    return f"{s['median']:,.0f}{spread_pct}{'*' if best else ''}"


def _ratio(value: float, goal: float) -> str:
    return f"[{'green' if value >= goal else 'red'}]{value:.2f}[/]"


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def render(result: dict[str, Any]):
    """The rich table of medians and ratios (fits 80 columns), and the lines under it."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    m = result["machine"]
    table = Table(
        title="cnnlab bench: training images/s, median ±IQR", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    for col in ("model", "batch", "pure", "engine", "rep. w0", "rep. w2", "eng/pure", "eng/rep"):
        table.add_column(col, justify="left" if col == "model" else "right")
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, "
        f"torch {m['torch']}, Python {m['python']}"
    ]
    for r in result["models"]:
        best = r["reports_best_workers"]
        table.add_row(
            r["model"],
            str(r["batch"]),
            _ips(r["pure"]),
            _ips(r["engine"]),
            _ips(r["reports_w0"], best == 0),
            _ips(r["reports_w2"], best == 2),
            _ratio(r["engine_vs_pure"], GOAL_ENGINE_VS_PURE),
            _ratio(r["engine_vs_reports"], GOAL_ENGINE_VS_REPORTS),
        )
        layout = "channels_last" if r["channels_last"] else "contiguous"
        share = f" ({100 * r['epoch_end_share']:.2f} % of a full epoch)" if r.get("epoch_end_share") is not None else ""
        lines.append(
            f"{r['model']}: {r['steps']} steps x {r['repeats']} repeats on {r['device']}, {r['precision']}, {layout} "
            f"(the engine ran {r['engine_precision']}{', channels_last' if r['engine_channels_last'] else ''}); "
            f"end of epoch (metrics, checkpoints) {r['epoch_end_s']:.2f} s{share}"
        )
    goals_line = (
        f"goals: engine/pure ≥ {GOAL_ENGINE_VS_PURE:.2f}, engine/reports ≥ {GOAL_ENGINE_VS_REPORTS:.0f} "
        "against the better (*) of the reports' pipeline with 0 and 2 DataLoader workers"
    )
    parts: list[Any] = [table, Text(goals_line, style="dim")]
    parts += [Text(line, style="dim") for line in lines]
    for mem in result["memory"]:
        parts.append(
            Text(
                f"memory: {mem['dataset']} train split, {mem['train_images']:,} images: "
                f"{_mb(mem['uint8_bytes'])} as uint8 (held so) vs {_mb(mem['float32_bytes'])} as float32"
            )
        )
    c = result.get("cache")
    if c:
        ok = c["speedup"] >= GOAL_CACHE_SPEEDUP
        parts.append(
            Text.from_markup(
                f"decoded cache: {c['images']:,} PNG files, first load {c['first_s']:.3f} s, "
                f"second {c['second_s']:.3f} s: [{'green' if ok else 'red'}]{c['speedup']:.1f}x[/] "
                f"(goal ≥ {GOAL_CACHE_SPEEDUP:.0f}x); held as {c['held_dtype']}, {_mb(c['held_bytes'])}"
            )
        )
    return Group(*parts)
