"""`cnnlab bench --ui`: what the console costs.

  start-up   a fresh `python -c` process imports tui.app and runs the console headless until its
             first frame (the preset picker) is up; wall time from process start, median of N, and
             whether torch got imported on the way (it must not be).
  lateness   while a real run trains on the shapes data inside the console, a 10 ms timer posts to
             the app's message queue; how late each tick arrives (p50 / p95 / max) is how late a key
             press would be handled.
  charts     one chart (40x24 cells, a third of the run screen in a 120x40 terminal) rebuilt with
             2 series x 500 points, thinned to its width as the console does and unthinned.
  throughput the same small run headless and inside the console, each in a fresh process, taking
             turns: the ratio of their training images/s is what drawing costs the training.

The console runs headless here: Textual lays out and renders every widget (plotext builds its
charts), only the bytes to the terminal are not written. Torch is imported by the runs, never by
this module. Goals (issue 5): start-up < 0.5 s, lateness p95 < 50 ms, console cost < 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from textual._time import get_time
from textual.app import App, ComposeResult

from engine.bench.machine import cpu_name
from engine.config import Experiment, apply_overrides
from tui.app import CnnlabApp
from tui.widgets.charts import MetricChart

GOAL_COLD_START_S = 0.5
GOAL_LATENESS_P95_MS = 50.0
GOAL_CONSOLE_COST = 0.05

TICK_S = 0.010
APP_SIZE = (120, 40)
CHART_SIZE = (40, 24)
CHART_POINTS = 500
RUN_TIMEOUT_S = 900.0

# The child process: time from its first line to the console's first frame. It reports the
# moment on its own stdout (os.write: Textual captures print while it runs), then its facts.
COLD_START_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from tui.app import CnnlabApp
from tui.screens.pick import PickScreen
t_import = time.perf_counter()

class FirstFrame(CnnlabApp):
    CSS_PATH = os.path.join(os.path.dirname(sys.modules["tui.app"].__file__), "app.tcss")  # no file to be relative to

    def on_ready(self):
        facts["ready_s"] = time.perf_counter() - t0
        os.write(1, b"ready\n")
        screen = self.screen
        facts["screen"] = type(screen).__name__
        facts["presets_shown"] = screen.query_one("#presets").row_count if isinstance(screen, PickScreen) else 0
        facts["torch_imported"] = "torch" in sys.modules
        facts["torchvision_imported"] = "torchvision" in sys.modules
        self.exit()

facts = {"import_s": t_import - t0}
FirstFrame(sys.argv[1]).run(headless=True)
print(json.dumps(facts), flush=True)
"""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks."""
    vals = sorted(values)
    if not vals:
        return 0.0
    pos = (len(vals) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


# --- (a) start-up to the picker ------------------------------------------------------------------


def cold_start_once(runs_dir: Path) -> dict[str, Any]:
    env = dict(os.environ, CNNLAB_RUNS=str(runs_dir))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", COLD_START_CHILD, str(runs_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    first = proc.stdout.readline()
    wall = time.perf_counter() - t0
    out, err = proc.communicate(timeout=60)
    if first.strip() != b"ready" or proc.returncode != 0:
        raise RuntimeError(f"the console did not start (exit {proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    facts = json.loads(out.decode().strip().splitlines()[-1])
    facts["wall_s"] = wall
    return facts


def cold_start(starts: int, runs_dir: Path) -> dict[str, Any]:
    runs = [cold_start_once(runs_dir) for _ in range(starts)]
    walls = [r["wall_s"] for r in runs]
    return {
        "median_s": round(statistics.median(walls), 4),
        "runs_s": [round(w, 4) for w in walls],
        "import_s": round(statistics.median(r["import_s"] for r in runs), 4),
        "in_process_s": round(statistics.median(r["ready_s"] for r in runs), 4),
        "screen": runs[-1]["screen"],
        "presets_shown": runs[-1]["presets_shown"],
        "torch_imported": any(r["torch_imported"] for r in runs),
        "torchvision_imported": any(r["torchvision_imported"] for r in runs),
    }


# --- (b) event-loop lateness while a run trains, and (c) its throughput ----------------------------


class ProbedApp(CnnlabApp):
    """The console with a 10 ms timer on the app's message queue; each tick's lateness is filed under
    what the run was doing (starting: data, model, torch import; running: the training itself)."""

    CSS_PATH = Path(__file__).resolve().parent / "app.tcss"  # the console's own, whatever subclasses this

    def __init__(self, runs_dir: Path) -> None:
        super().__init__(runs_dir)
        self.ticks: dict[str, list[float]] = {"starting": [], "running": []}
        self._probe = None

    def start_probe(self) -> None:
        self._probe = self.set_interval(TICK_S, name="bench-probe")

    def on_timer(self, event) -> None:
        if self._probe is None or event.timer is not self._probe:
            return
        late = get_time() - event.time
        run = self.active_run
        phase = "starting" if run is None else run.state
        if phase in self.ticks:
            self.ticks[phase].append(late)


def bench_experiment(images: int, epochs: int, batch: int) -> Experiment:
    """The shapes-demo preset, cut to `images` training images and `epochs` epochs."""
    from engine.presets import get_preset

    base = get_preset("shapes-demo").experiment
    return apply_overrides(
        base, {"data.train_subset": images, "train.epochs": epochs, "train.batch_size": batch}
    )


def training_ips(rows: list[dict[str, Any]]) -> float:
    """Images/s of the training steps; the first epoch (warm-up) is left out when there are more."""
    rows = rows[1:] if len(rows) > 1 else rows
    rates = [r["images_per_sec"] for r in rows if r.get("images_per_sec")]
    if not rates:
        raise RuntimeError("the run finished no epoch")
    return statistics.harmonic_mean(rates)


async def _in_console(exp: Experiment, runs_dir: Path, probe: bool) -> tuple[float, dict[str, list[float]]]:
    app = ProbedApp(runs_dir)
    async with app.run_test(headless=True, size=APP_SIZE) as pilot:
        if probe:
            app.start_probe()
        app.start_run(exp)
        run = app.active_run
        # Waits in a thread for the training thread to return: the console's loop keeps running.
        await asyncio.to_thread(run.wait, RUN_TIMEOUT_S)
        await pilot.pause()
    if run is None or run.state != "finished":
        raise RuntimeError(f"the run in the console ended {getattr(run, 'state', 'unstarted')}: {getattr(run, 'message', '')}")
    return training_ips(run.result.folder.metrics()), app.ticks


def in_console(exp: Experiment, runs_dir: Path, probe: bool = False) -> tuple[float, dict[str, list[float]]]:
    return asyncio.run(_in_console(exp, runs_dir, probe))


def headless(exp: Experiment, runs_dir: Path) -> float:
    from engine.trainer import run_experiment

    result = run_experiment(exp, runs_dir=runs_dir)
    if result.state != "finished":
        raise RuntimeError(f"the headless run ended {result.state}: {result.message}")
    return training_ips(result.folder.metrics())


# Each measured run is a fresh process, as a user's would be: a run in this process would share
# torch's thread pool (and its spinning threads) with the runs before it.
RUN_CHILD = r"""
import json, os, sys
from tui.bench import measured_run
result = measured_run(**json.loads(sys.argv[1]))
os.write(1, ("RESULT " + json.dumps(result) + "\n").encode())
"""


def measured_run(way: str, images: int, epochs: int, batch: int, runs_dir: str, threads: int | None, probe: bool) -> dict[str, Any]:
    """One run, in the console or headless, in this (child) process: its training images/s and the
    probe's ticks."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    exp = bench_experiment(images, epochs, batch)
    if way == "console":
        ips, ticks = in_console(exp, Path(runs_dir), probe)
        return {"ips": ips, "ticks": ticks}
    return {"ips": headless(exp, Path(runs_dir)), "ticks": {}}


def run_in_child(way: str, *, images: int, epochs: int, batch: int, runs_dir: Path, threads: int | None, probe: bool = False) -> dict[str, Any]:
    spec = {"way": way, "images": images, "epochs": epochs, "batch": batch, "runs_dir": str(runs_dir), "threads": threads, "probe": probe}
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CHILD, json.dumps(spec)],
        capture_output=True,
        env=dict(os.environ, CNNLAB_RUNS=str(runs_dir)),
        cwd=str(Path(__file__).resolve().parent.parent),
        timeout=RUN_TIMEOUT_S,
    )
    lines = [line for line in proc.stdout.decode(errors="replace").splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the {way} run failed (exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def console_cost(
    *, images: int, epochs: int, batch: int, repeats: int, runs_dir: Path, threads: int | None = None, say=lambda text: None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same run in the console and headless, each in a fresh process, taking turns; then once more
    in the console with the lateness probe on. The probe wakes the event loop a hundred times a
    second, far more than a user types, so it stays out of the throughput runs."""
    run = partial(run_in_child, images=images, epochs=epochs, batch=batch, runs_dir=runs_dir, threads=threads)
    console_ips: list[float] = []
    headless_ips: list[float] = []
    for r in range(repeats):
        ways = ["console", "headless"] if r % 2 == 0 else ["headless", "console"]
        for way in ways:
            (console_ips if way == "console" else headless_ips).append(run(way)["ips"])
        say(f"repeat {r + 1}/{repeats}: console {console_ips[-1]:,.0f} img/s, headless {headless_ips[-1]:,.0f} img/s")
    ticks = run("console", probe=True)["ticks"]
    c, h = statistics.median(console_ips), statistics.median(headless_ips)
    throughput = {
        "console_ips": round(c, 1),
        "headless_ips": round(h, 1),
        "console_runs": [round(v, 1) for v in console_ips],
        "headless_runs": [round(v, 1) for v in headless_ips],
        "ratio": round(c / h, 3),
        "cost": round(1 - c / h, 3),
    }
    running = ticks["running"] or ticks["starting"]
    ms = [1000 * v for v in running]
    lateness = {
        "ticks": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "max_ms": round(max(ms, default=0.0), 2),
        "starting_max_ms": round(1000 * max(ticks["starting"], default=0.0), 2),
        "starting_ticks": len(ticks["starting"]),
    }
    return lateness, throughput


# --- (c) the cost of one chart ---------------------------------------------------------------------


class ChartApp(App):
    CSS = f"MetricChart {{ width: {CHART_SIZE[0]}; height: {CHART_SIZE[1]}; }}"

    def compose(self) -> ComposeResult:
        yield MetricChart("loss", id="chart")


def curves(points: int) -> tuple[list[float], list[float], list[float]]:
    """Two noisy, falling loss curves over `points` steps."""
    rng = random.Random(0)
    xs = [i / 10 for i in range(points)]
    train = [2.3 * 0.995**i + rng.gauss(0, 0.05) for i in range(points)]
    val = [2.4 * 0.996**i + rng.gauss(0, 0.03) for i in range(points)]
    return xs, train, val


def _build_once(chart: MetricChart) -> float:
    """One rebuild as the screen's timer does it, plus the render that runs plotext's build."""
    t0 = time.perf_counter()
    chart.redraw(force=True)
    chart.render()
    return time.perf_counter() - t0


async def _chart_cost(repeats: int) -> dict[str, Any]:
    import tui.widgets.charts as charts

    app = ChartApp()
    async with app.run_test(headless=True, size=APP_SIZE) as pilot:
        await pilot.pause()
        chart = app.query_one(MetricChart)
        xs, train, val = curves(CHART_POINTS)
        chart.set_series("train", xs, train)
        chart.set_series("val", xs, val)
        _build_once(chart)
        thinned = [_build_once(chart) for _ in range(repeats)]
        # The same chart with every point drawn: thinning switched off for this measure only.
        keep = charts.thin
        charts.thin = lambda xs, ys, n: (list(xs), list(ys))
        try:
            _build_once(chart)
            unthinned = [_build_once(chart) for _ in range(repeats)]
        finally:
            charts.thin = keep
        width = chart.size.width
    t_ms, u_ms = 1000 * statistics.median(thinned), 1000 * statistics.median(unthinned)
    from tui.screens.run import CHART_EVERY_S

    return {
        "series": 2,
        "points": CHART_POINTS,
        "chart_cells": list(CHART_SIZE),
        "thinned_to": max(width - 8, 16),
        "thinned_ms": round(t_ms, 2),
        "unthinned_ms": round(u_ms, 2),
        "speedup": round(u_ms / t_ms, 1) if t_ms else None,
        # Three charts rebuilt at the run screen's most frequent rate: the share of one core.
        "redraw_share": round(3 * t_ms / 1000 / CHART_EVERY_S, 4),
    }


def chart_cost(repeats: int) -> dict[str, Any]:
    return asyncio.run(_chart_cost(repeats))


# --- the command -----------------------------------------------------------------------------------


def run_ui_bench(
    *,
    starts: int = 5,
    repeats: int = 3,
    images: int = 2560,
    epochs: int = 3,
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
        say(f"a shapes run of {images} images x {epochs} epochs, {repeats} times in the console and headless, each a fresh process…")
        lateness, throughput = console_cost(
            images=images, epochs=epochs, batch=batch, repeats=repeats, runs_dir=runs_dir, threads=threads, say=say
        )
    import torch

    return {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": threads or torch.get_num_threads()},
        "goals": {"cold_start_s": GOAL_COLD_START_S, "lateness_p95_ms": GOAL_LATENESS_P95_MS, "console_cost": GOAL_CONSOLE_COST},
        "cold_start": start,
        "lateness": lateness,
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
    table.add_row("  three charts at the run screen's redraw rate (share of a core)", f"{100 * ch['redraw_share']:.1f} %", "")
    table.add_row(
        "training img/s headless / in the console",
        f"{tp['headless_ips']:,.0f} / {tp['console_ips']:,.0f}",
        "",
    )
    table.add_row("  what the console costs the training", mark(tp["cost"] < GOAL_CONSOLE_COST, f"{100 * tp['cost']:.1f} %"), f"< {100 * GOAL_CONSOLE_COST:.0f} %")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnnlab bench --ui", description="Measure the console: start-up, event-loop lateness while training, chart cost.")
    parser.add_argument("--ui", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--starts", type=int, default=5, help="fresh console processes timed (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="runs in the console and headless, taking turns (default 3)")
    parser.add_argument("--images", type=int, default=2560, help="shapes images the measured run trains on (default 2560)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the measured run; the first is left out as warm-up (default 3)")
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
    say = (lambda text: err.print(text, style="dim", highlight=False)) if not args.json or sys.stderr.isatty() else (lambda text: None)
    try:
        result = run_ui_bench(
            starts=args.starts, repeats=args.repeats, images=args.images, epochs=args.epochs, batch=args.batch, threads=args.threads, say=say
        )
    except RuntimeError as e:
        err.print(f"[bold red]bench failed:[/] {e}")
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        Console().print(render(result))
    return 0
