"""`cnnlab bench --ui`: what the console costs.

  start-up   a fresh process runs the console headless until its first frame (the preset picker)
             is up; wall time, median of N, and whether torch got imported on the way (startup.py)
  lateness   how late the app's message queue answers while a real run trains inside the console
  throughput the same small run headless and in the console: what drawing costs the training
             (both in in_console.py)
  charts     one chart rebuilt with 2 series x 500 points, thinned and unthinned (charts.py)

The console runs headless here: Textual lays out and renders every widget (plotext builds its
charts), only the bytes to the terminal are not written. Torch is imported by the runs, never by
this package. Goals (issue 5): start-up < 0.5 s, lateness p95 < 50 ms, console cost < 5 %.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine.bench.machine import cpu_name
from tui.bench.charts import chart_cost
from tui.bench.in_console import APP_SIZE, console_cost
from tui.bench.startup import cold_start

GOAL_COLD_START_S = 0.5
GOAL_LATENESS_P95_MS = 50.0
GOAL_CONSOLE_COST = 0.05


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks."""
    vals = sorted(values)
    if not vals:
        return 0.0
    pos = (len(vals) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def lateness(ticks: dict[str, list[float]]) -> dict[str, Any]:
    """The probe's ticks (seconds late, by phase of the run) as the report's figures."""
    ms = [1000 * v for v in (ticks["running"] or ticks["starting"])]
    return {
        "ticks": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "max_ms": round(max(ms, default=0.0), 2),
        "starting_max_ms": round(1000 * max(ticks["starting"], default=0.0), 2),
        "starting_ticks": len(ticks["starting"]),
    }


def run_ui_bench(
    *,
    starts: int = 5,
    repeats: int = 3,
    images: int = 2560,
    epochs: int = 10,
    batch: int = 128,
    threads: int | None = None,
    say=lambda text: None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-ui-") as tmp:
        runs_dir = Path(tmp) / "runs"
        runs_dir.mkdir()
        say(f"start-up: {starts} fresh processes…")
        start = cold_start(starts, runs_dir)
        say("charts: 2 series x 500 points…")
        charts = chart_cost(max(3, repeats * 3))
        say(
            f"a shapes run of {images} images x {epochs} epochs, {repeats} times in the console and headless, "
            "each a fresh process…"
        )
        ticks, throughput = console_cost(
            images=images, epochs=epochs, batch=batch, repeats=repeats, runs_dir=runs_dir, threads=threads, say=say
        )
    import torch

    return {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": threads or torch.get_num_threads()},
        "goals": {
            "cold_start_s": GOAL_COLD_START_S,
            "lateness_p95_ms": GOAL_LATENESS_P95_MS,
            "console_cost": GOAL_CONSOLE_COST,
        },
        "cold_start": start,
        "lateness": lateness(ticks),
        "charts": charts,
        "throughput": throughput,
        "run": {"dataset": "shapes", "images": images, "epochs": epochs, "batch": batch, "terminal": list(APP_SIZE)},
    }


def render(result: dict[str, Any]):
    from rich.table import Table

    def mark(ok: bool, text: str) -> str:
        return f"[{'green' if ok else 'red'}]{text}[/]"

    s, lt, ch, tp = result["cold_start"], result["lateness"], result["charts"], result["throughput"]
    m = result["machine"]
    table = Table(title=f"cnnlab bench --ui · {m['cpu']}, {m['cores']} cores", title_justify="left")
    table.add_column("what")
    table.add_column("measured", justify="right")
    table.add_column("goal", justify="right")
    table.add_row(
        f"start-up to the picker (median of {len(s['runs_s'])}, wall)",
        mark(s["median_s"] < GOAL_COLD_START_S, f"{s['median_s'] * 1000:.0f} ms"),
        f"< {GOAL_COLD_START_S * 1000:.0f} ms",
    )
    table.add_row("  torch imported on the way", mark(not s["torch_imported"], str(s["torch_imported"])), "False")
    table.add_row(
        f"event-loop lateness while training, p50 / p95 / max ({lt['ticks']} ticks)",
        mark(lt["p95_ms"] < GOAL_LATENESS_P95_MS, f"{lt['p50_ms']:.1f} / {lt['p95_ms']:.1f} / {lt['max_ms']:.0f} ms"),
        f"p95 < {GOAL_LATENESS_P95_MS:.0f} ms",
    )
    table.add_row("  worst while the run starts (data, model, torch import)", f"{lt['starting_max_ms']:.0f} ms", "")
    table.add_row(
        f"chart of 2x{ch['points']} points, thinned to {ch['thinned_to']} / unthinned",
        f"{ch['thinned_ms']:.1f} / {ch['unthinned_ms']:.1f} ms",
        "",
    )
    share = f"{100 * ch['redraw_share']:.1f} %"
    table.add_row("  three charts at the run screen's redraw rate (share of a core)", share, "")
    ips = f"{tp['headless_ips']:,.0f} / {tp['console_ips']:,.0f}"
    table.add_row("training img/s headless / in the console", ips, "")
    cost = mark(tp["cost"] < GOAL_CONSOLE_COST, f"{100 * tp['cost']:.1f} %")
    table.add_row("  what the console costs the training", cost, f"< {100 * GOAL_CONSOLE_COST:.0f} %")
    share = f"{100 * tp['ui_thread_share']:.1f} %"
    table.add_row("  the console's own thread while it trained (share of a core)", share, "")
    return table


def main(argv: list[str] | None = None) -> int:
    what = "Measure the console: start-up, event-loop lateness while training, chart cost."
    parser = argparse.ArgumentParser(prog="cnnlab bench --ui", description=what)
    parser.add_argument("--ui", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--starts", type=int, default=5, help="fresh console processes timed (default 5)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs in the console and headless, taking turns (default 3)"
    )
    parser.add_argument(
        "--images", type=int, default=2560, help="shapes images the measured run trains on (default 2560)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=10,
        help="epochs of the measured run; the first is left out as warm-up (default 10: a few seconds, so the "
        "charts' rebuilds every two seconds are in it, as in a real run)",
    )
    parser.add_argument("--batch", type=int, default=128, help="batch size of the measured run (default 128)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    for flag in ("starts", "repeats", "images", "epochs", "batch", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag} must be at least 1")

    from rich.console import Console

    err = Console(stderr=True)
    quiet = args.json and not sys.stderr.isatty()
    say = (lambda text: None) if quiet else (lambda text: err.print(text, style="dim", highlight=False))
    try:
        result = run_ui_bench(
            starts=args.starts,
            repeats=args.repeats,
            images=args.images,
            epochs=args.epochs,
            batch=args.batch,
            threads=args.threads,
            say=say,
        )
    except RuntimeError as e:
        err.print(f"[bold red]bench failed:[/] {e}")
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        Console().print(render(result))
    return 0
