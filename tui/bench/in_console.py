"""What training inside the console costs: event-loop lateness while a run trains, and the run's
throughput against the same run headless.

  lateness   while a real run trains on the shapes data inside the console, a probe posts a
             message to the app's queue every 10 ms; how late each one is handled (p50 / p95 /
             max) is how late a key press would be handled.
  throughput the same small run headless and inside the console, each in a fresh process, taking
             turns: the ratio of their training images/s is what drawing costs the training.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from textual import on
from textual.message import Message

from engine.experiment.config import Experiment
from engine.experiment.overrides import apply_overrides
from tui.app import CnnlabApp

TICK_S = 0.010
APP_SIZE = (120, 40)
RUN_TIMEOUT_S = 900.0
REPO = Path(__file__).resolve().parents[2]


class ProbedApp(CnnlabApp):
    """The console with a probe on the app's message queue; each tick's lateness is filed under
    what the run was doing (starting: data, model, torch import; running: the training itself)."""

    class Tick(Message):
        def __init__(self, due: float) -> None:
            super().__init__()
            self.due = due

    def __init__(self, runs_dir: Path) -> None:
        super().__init__(runs_dir)
        self.ticks: dict[str, list[float]] = {"starting": [], "running": []}

    def start_probe(self) -> None:
        self.run_worker(self._probe(), name="bench-probe", group="bench-probe", exclusive=True)

    async def _probe(self) -> None:
        while True:
            due = time.monotonic() + TICK_S
            await asyncio.sleep(TICK_S)
            self.post_message(self.Tick(due))

    @on(Tick)
    def _tick(self, message: Tick) -> None:
        late = time.monotonic() - message.due
        run = self.active_run
        phase = "starting" if run is None else run.state
        if phase in self.ticks:
            self.ticks[phase].append(late)


def bench_experiment(images: int, epochs: int, batch: int) -> Experiment:
    """The shapes-demo preset, cut to `images` training images and `epochs` epochs."""
    from engine.experiment.presets import get_preset

    base = get_preset("shapes-demo").experiment
    return apply_overrides(base, {"data.train_subset": images, "train.epochs": epochs, "train.batch_size": batch})


def training_ips(rows: list[dict[str, Any]]) -> float:
    """Images/s of the training steps; the first epoch (warm-up) is left out when there are more."""
    rows = rows[1:] if len(rows) > 1 else rows
    rates = [r["images_per_sec"] for r in rows if r.get("images_per_sec")]
    if not rates:
        raise RuntimeError("the run finished no epoch")
    return statistics.harmonic_mean(rates)


async def _in_console(exp: Experiment, runs_dir: Path, probe: bool) -> tuple[float, float, dict[str, list[float]]]:
    """The run's training images/s, the share of a core the console's own thread used while the run
    trained, and the probe's ticks."""
    app = ProbedApp(runs_dir)
    async with app.run_test(headless=True, size=APP_SIZE) as pilot:
        if probe:
            app.start_probe()
        app.start_run(exp)
        run = app.active_run
        while not (run.model.started or run.model.ended):
            await asyncio.sleep(0.01)
        cpu, wall = time.thread_time(), time.monotonic()  # this thread is the console's event loop
        # Waits in a thread for the training thread to return: the console's loop keeps running.
        await asyncio.to_thread(run.wait, RUN_TIMEOUT_S)
        share = (time.thread_time() - cpu) / max(time.monotonic() - wall, 1e-9)
        await pilot.pause()
    if run.state != "finished":
        raise RuntimeError(f"the run in the console ended {run.state}: {run.model.message}")
    return training_ips(run.result.folder.metrics()), share, app.ticks


def headless(exp: Experiment, runs_dir: Path) -> float:
    from engine.training.trainer import run_experiment

    result = run_experiment(exp, runs_dir=runs_dir)
    if result.state != "finished":
        raise RuntimeError(f"the headless run ended {result.state}: {result.message}")
    return training_ips(result.folder.metrics())


# Each measured run is a fresh process, as a user's would be: a run in this process would share
# torch's thread pool (and its spinning threads) with the runs before it.
RUN_CHILD = r"""
import json, os, sys
from tui.bench.in_console import measured_run
result = measured_run(**json.loads(sys.argv[1]))
os.write(1, ("RESULT " + json.dumps(result) + "\n").encode())
"""


def measured_run(
    way: str, images: int, epochs: int, batch: int, runs_dir: str, threads: int | None, probe: bool
) -> dict[str, Any]:
    """One run, in the console or headless, in this (child) process: its training images/s and the
    probe's ticks."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    exp = bench_experiment(images, epochs, batch)
    if way == "console":
        ips, share, ticks = asyncio.run(_in_console(exp, Path(runs_dir), probe))
        return {"ips": ips, "ui_share": share, "ticks": ticks}
    return {"ips": headless(exp, Path(runs_dir)), "ticks": {}}


def run_in_child(way: str, *, runs_dir: Path, probe: bool = False, **spec: Any) -> dict[str, Any]:
    spec = {"way": way, "runs_dir": str(runs_dir), "probe": probe, **spec}
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CHILD, json.dumps(spec)],
        capture_output=True,
        env=dict(os.environ, CNNLAB_RUNS=str(runs_dir)),
        cwd=str(REPO),
        timeout=RUN_TIMEOUT_S,
    )
    lines = [line for line in proc.stdout.decode(errors="replace").splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        why = proc.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"the {way} run failed (exit {proc.returncode}): {why}")
    return json.loads(lines[-1][len("RESULT ") :])


def console_cost(
    *,
    images: int,
    epochs: int,
    batch: int,
    repeats: int,
    runs_dir: Path,
    threads: int | None = None,
    say=lambda text: None,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """The same run in the console and headless, each in a fresh process, taking turns; then once more
    in the console with the lateness probe on. The probe wakes the event loop a hundred times a
    second, far more than a user types, so it stays out of the throughput runs.

    Returns the probe's ticks (seconds late, by phase) and the throughput figures."""
    run = partial(run_in_child, images=images, epochs=epochs, batch=batch, runs_dir=runs_dir, threads=threads)
    console_ips: list[float] = []
    headless_ips: list[float] = []
    ui_shares: list[float] = []
    for r in range(repeats):
        ways = ["console", "headless"] if r % 2 == 0 else ["headless", "console"]
        for way in ways:
            measured = run(way)
            (console_ips if way == "console" else headless_ips).append(measured["ips"])
            if way == "console":
                ui_shares.append(measured["ui_share"])
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
        "ui_thread_share": round(statistics.median(ui_shares), 4),  # of one core, while the run trained
    }
    return ticks, throughput
