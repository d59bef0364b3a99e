"""The bench's result drawn for a terminal: two rich tables of medians, ratios and the ceiling (each
fits 80 columns) and the lines under them (machine, goals, matmul rate, a small batch's overhead,
every candidate's pure compute, end of epoch, memory, decoded cache)."""

from __future__ import annotations

from typing import Any

from engine.bench.targets import (
    GOAL_CACHE_SPEEDUP,
    GOAL_ENGINE_VS_PURE,
    GOAL_ENGINE_VS_REPORTS,
    GOAL_SMALL_BATCH_OVERHEAD,
)


def _ips(s: dict[str, Any], best: bool = False) -> str:
    spread_pct = f"±{100 * s['iqr'] / s['median']:.0f}%" if s["iqr"] and s["median"] else ""
    return f"{s['median']:,.0f}{spread_pct}{'*' if best else ''}"


def _ratio(value: float, goal: float) -> str:
    return f"[{'green' if value >= goal else 'red'}]{value:.2f}[/]"


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _short(label: str | None) -> str:
    return (label or "?").replace(", channels_last", " cl")


def _pct(share: float | None) -> str:
    if share is None:
        return "–"
    return f"{100 * share:.1f}%" if share < 0.1 else f"{100 * share:.0f}%"


GOALS_LINE = (
    f"goals: engine/best pure ≥ {GOAL_ENGINE_VS_PURE:.2f}, engine/reports ≥ {GOAL_ENGINE_VS_REPORTS:.0f} "
    "against the better (*) of the reports' pipeline with 0 and 2 DataLoader workers"
)


def render(result: dict[str, Any]):
    """Two rich tables (speed and ways; ceiling and the reports' pipeline), each within 80 columns,
    and the lines under them."""
    from rich.console import Group
    from rich.text import Text

    models = result["models"]
    parts: list[Any] = [_speed_table(models), Text(""), _ceiling_table(models), Text(GOALS_LINE, style="dim")]
    if result.get("matmul"):
        parts.append(Text(_matmul_line(result["matmul"]), style="dim"))
    parts += [Text.from_markup(line) for line in filter(None, map(_small_batch_line, models))]
    parts += [Text(line, style="dim") for line in (_machine_line(result["machine"]), *map(_model_line, models))]
    parts += [Text(_memory_line(mem)) for mem in result["memory"]]
    if result.get("cache"):
        parts.append(Text.from_markup(_cache_line(result["cache"])))
    return Group(*parts)


def _table(title: str, columns: tuple[str, ...], left: tuple[str, ...]):
    from rich import box
    from rich.table import Table

    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
    )
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    return table


def _speed_table(models: list[dict[str, Any]]):
    """Every model's pure compute and engine in images/s, the ways they ran, and the two ratios."""
    speed = _table(
        "cnnlab bench: training images/s, median ±IQR; pure: the best of auto's candidates, in its way "
        "(cl: channels_last); auto: the engine's way",
        ("model", "batch", "pure", "way", "engine", "auto", "eng/pure", "eng/rep"),
        left=("model", "way", "auto"),
    )
    for r in models:
        speed.add_row(
            r["model"],
            str(r["batch"]),
            _ips(r["pure"]),
            _short(r["pure_best"]),
            _ips(r["engine"]),
            _short(r["engine_way"]),
            _ratio(r["engine_vs_pure"], GOAL_ENGINE_VS_PURE),
            _ratio(r["engine_vs_reports"], GOAL_ENGINE_VS_REPORTS),
        )
    return speed


def _ceiling_table(models: list[dict[str, Any]]):
    """Every model's FLOPs, its ceiling and the shares of it reached, and the reports' pipeline."""
    room = _table(
        "the ceiling: train FLOPs per image against the measured matmul rate; the reports' pipeline",
        ("model", "GFLOP/img", "ceiling", "pure", "engine", "rep. w0", "rep. w2"),
        left=("model",),
    )
    for r in models:
        best = r["reports_best_workers"]
        c = r.get("ceiling") or {}
        room.add_row(
            r["model"],
            f"{c['train_flops'] / 1e9:.3g}" if c.get("train_flops") else "–",
            f"{c['ips']:,.0f}" if c.get("ips") else "–",
            _pct(c.get("pure_share")),
            _pct(c.get("engine_share")),
            _ips(r["reports_w0"], best == 0),
            _ips(r["reports_w2"], best == 2),
        )
    return room


def _machine_line(m: dict[str, Any]) -> str:
    flags = ", ".join(m.get("cpu_flags") or []) or "none of note"
    return (
        f"machine: {m['cpu']} ({flags}; bf16 {'native' if m.get('bf16_native') else 'not native'}), "
        f"{m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, Python {m['python']}"
        + (f", {m['cuda']}" if m.get("cuda") else "")
    )


def _model_line(r: dict[str, Any]) -> str:
    """One model's every candidate, the way the engine ran, its fastest turns and its end of epoch."""
    ways = " · ".join(f"{_short(label)} {s['median']:,.0f}" for label, s in r["pure_ways"].items())
    same = r.get("engine_vs_same_way")
    share = f" ({100 * r['epoch_end_share']:.2f} % of a full epoch)" if r.get("epoch_end_share") is not None else ""
    return (
        f"{r['model']}: pure {ways} img/s; the rule alone: {_short(r['rule'])}; the engine ran "
        f"{_short(r['engine_way'])}" + (f", {same:.2f} of pure in that way" if same is not None else "") + "; "
        f"fastest turns, engine/best pure {r['engine_vs_pure_fastest']:.2f}; "
        f"{r['steps']} steps x {r['repeats']} repeats on {r['device']}; "
        f"end of epoch {r['epoch_end_s']:.2f} s{share}"
        + (f"; failed: {', '.join(r['failed'])}" if r.get("failed") else "")
    )


def _small_batch_line(r: dict[str, Any]) -> str | None:
    """A small batch's step against pure compute's, in markup; None for a model without one."""
    sb = r.get("small_batch")
    if not sb or sb.get("overhead") is None:
        return None
    ok = sb["overhead"] <= GOAL_SMALL_BATCH_OVERHEAD
    return (
        f"batch {sb['batch']}, {r['model']}: the engine {sb['engine_ms']:.1f} ms a step against pure compute's "
        f"{sb['pure_ms']:.1f} ms ({_short(sb['pure_way'])}): overhead "
        f"[{'green' if ok else 'red'}]{100 * sb['overhead']:+.1f} %[/] (goal ≤ "
        f"{100 * GOAL_SMALL_BATCH_OVERHEAD:.0f} %)"
    )


def _matmul_line(mm: list[dict[str, Any]]) -> str:
    rates = ", ".join(f"{r['precision']} {r['tflops']:.3g} TFLOP/s" for r in mm)
    size = mm[0]["size"]
    return (
        f"matmul rate ({size}x{size}, median of {mm[0]['repeats']}): {rates}; the ceiling takes the fastest "
        "and a training step as three forwards"
    )


def _memory_line(mem: dict[str, Any]) -> str:
    return (
        f"memory: {mem['dataset']} train split, {mem['train_images']:,} images: "
        f"{_mb(mem['uint8_bytes'])} as uint8 (held so) vs {_mb(mem['float32_bytes'])} as float32"
    )


def _cache_line(c: dict[str, Any]) -> str:
    """The decoded cache's two loads against its goal, in markup."""
    ok = c["speedup"] >= GOAL_CACHE_SPEEDUP
    return (
        f"decoded cache: {c['images']:,} PNG files, first load {c['first_s']:.3f} s, "
        f"second {c['second_s']:.3f} s: [{'green' if ok else 'red'}]{c['speedup']:.1f}x[/] "
        f"(goal ≥ {GOAL_CACHE_SPEEDUP:.0f}x); held as {c['held_dtype']}, {_mb(c['held_bytes'])}"
    )
