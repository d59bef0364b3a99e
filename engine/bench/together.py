"""`cnnlab bench --together N`: N trainings at once on one machine, each a process of its own, against
one alone, taking turns; the total images/s of the N over the one's.

Every training is a real `python -m engine run` of the same experiment on the same folder dataset
(the preset's shape, written once and decoded into its cache first), so each sizes its thread pool
through engine.compute.threads as real runs do. The figures are the trainings' own: the images/s of every
epoch in metrics.jsonl. The bench reads those files as the runs write them, so it knows when each
epoch ended (and, from its seconds, when it began), and counts only the epochs after the first (the
first warms up) that lie wholly inside the span when all N trainings were training: the start-up of a
process (imports, data loading) is no part of the figure, nor is a training left alone at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.bench import BenchError
from engine.bench.images import time_decoded_cache, write_folder_dataset
from engine.bench.machine import machine
from engine.bench.runner import spread
from engine.bench.targets import GOAL_TOGETHER, engine_experiment, shape_of
from engine.experiment.config import Experiment
from engine.experiment.overrides import apply_overrides
from engine.runfolder.folder import RunFolder

POLL_S = 0.05  # how often the bench reads the runs' metrics: the error in an epoch's end
DEFAULT_EPOCHS = 4
DEFAULT_IMAGES = 8192


@dataclass
class Training:
    """One `python -m engine run` process and what the bench read of its run folder."""

    proc: subprocess.Popen
    runs_dir: Path
    log: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)  # monotonic time each metrics line was first seen
    threads: set[int] = field(default_factory=set)  # its pool's sizes while it shared the cores (alone: its size)
    sharing: int = 1  # the most trainings it saw on the machine at once
    pid: int | None = None  # the process that trained, as its status.json says
    expect: int = 1  # the trainings of its group

    def folder(self) -> RunFolder | None:
        found = [p for p in self.runs_dir.iterdir() if p.is_dir() and (p / "status.json").exists()]
        return RunFolder(found[0]) if found else None

    def look(self, now: float, status: bool) -> None:
        folder = self.folder()
        if folder is None:
            return
        rows = folder.metrics()
        for row in rows[len(self.rows) :]:
            self.rows.append(row)
            self.ends.append(now)
        if status:
            st = folder.status()
            self.pid = st.get("pid") or self.pid
            sharing = int(st.get("trainings_sharing") or 1)
            if st.get("threads") and sharing >= self.expect:  # not the moments before the others claimed
                self.threads.add(int(st["threads"]))
            self.sharing = max(self.sharing, sharing)

    def epochs(self) -> list[tuple[float, float, float]]:
        """(start, end, images/s) of every epoch after the first."""
        pairs = zip(self.rows, self.ends, strict=True)
        return [(end - float(r["seconds"]), end, float(r["images_per_sec"])) for r, end in pairs][1:]


def engine_env() -> dict[str, str]:
    """The trainings' environment: this engine package importable wherever this process found it."""
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}


def run_group(toml: Path, count: int, where: Path) -> list[Training]:
    """`count` trainings of the TOML started at once; returns when all have ended."""
    env = engine_env()
    group = []
    for i in range(count):
        runs_dir = where / f"training-{i}"
        runs_dir.mkdir(parents=True)
        log = where / f"training-{i}.log"
        argv = [sys.executable, "-m", "engine", "run", str(toml), "--runs-dir", str(runs_dir), "--name", "together"]
        with log.open("w") as err:
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        group.append(Training(proc, runs_dir, log, expect=count))
    last_status = 0.0
    while True:
        running = [t.proc.poll() is None for t in group]
        now = time.monotonic()
        status = now - last_status >= 0.5
        last_status = now if status else last_status
        for t in group:
            t.look(now, status)
        if not any(running):
            break
        time.sleep(POLL_S)
    for t in group:
        t.look(time.monotonic(), True)
        folder = t.folder()
        st = folder.status() if folder else {}
        if st.get("state") != "finished" or not t.rows:
            tail = t.log.read_text(errors="replace").strip().splitlines()[-3:] if t.log.exists() else []
            why = st.get("message") or " ".join(tail) or f"exit status {t.proc.returncode}"
            raise BenchError(
                f"a training of the --together bench ended {st.get('state', 'without a run folder')}: {why}"
            )
    return group


def group_rate(group: list[Training]) -> dict[str, Any]:
    """The total images/s of a group over the span when all of its trainings were past their first
    epoch and none had ended: each training's images over its seconds in the epochs wholly inside
    that span (a poll's time of leeway), summed. A training with no epoch inside it (epochs too short
    for the start-ups' skew) counts all its epochs after the first, and the figure says so."""
    spans = [t.epochs() for t in group]
    if any(not s for s in spans):
        raise BenchError("--together needs at least two epochs per training: the first warms up")
    lo = max(s[0][0] for s in spans)
    hi = min(s[-1][1] for s in spans)
    slack = 2 * POLL_S
    each, overlapped = [], True
    for s in spans:
        inside = [e for e in s if e[0] >= lo - slack and e[1] <= hi + slack]
        if not inside:
            inside, overlapped = s, False
        seconds = sum(end - start for start, end, _ in inside)
        each.append(sum((end - start) * ips for start, end, ips in inside) / seconds)
    return {"total": sum(each), "each": [round(v, 1) for v in each], "overlapped": overlapped}


def bench_together(
    exp: Experiment,
    count: int,
    *,
    label: str,
    preset: str | None = None,
    epochs: int = DEFAULT_EPOCHS,
    images: int = DEFAULT_IMAGES,
    repeats: int = 2,
    say=lambda text: None,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """`count` trainings of `exp` at once against one alone, `repeats` turns of each (the order
    alternating), on a folder dataset of `images` images written for the bench."""
    if count < 2:
        raise BenchError("--together N runs N trainings at once against one alone: give N of 2 or more")
    if epochs < 2:
        raise BenchError("--together needs at least two epochs per training: the first warms up")
    classes, channels, size = shape_of(exp)
    if channels != 3:
        raise BenchError(f"{label}: the bench writes RGB images; {channels}-channel data is not supported")
    images = max(images, exp.train.batch_size, classes)
    started = time.perf_counter()
    turns = Turns(count)
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-together-", dir=workdir) as tmp:
        tmp_path = Path(tmp)
        say(f"writing {images} {size}x{size} PNG images in {classes} class folders…")
        toml = together_toml(exp, tmp_path, images, classes, size, epochs)
        for r in range(repeats):
            order = [1, count] if r % 2 == 0 else [count, 1]  # taking turns: a slow patch falls on both
            for n in order:
                rate = turns.add(n, run_group(toml, n, tmp_path / f"turn-{r}-{n}"))
                say(
                    f"{label}: repeat {r + 1}/{repeats}: {n} at once {rate['total']:,.0f} img/s"
                    + (f" in total ({' + '.join(f'{v:,.0f}' for v in rate['each'])})" if n > 1 else "")
                )
    return {
        "machine": machine(),
        "goals": {"together": GOAL_TOGETHER},
        "model": label,
        "preset": preset,
        "arch": exp.model.arch,
        "batch": exp.train.batch_size,
        "trainings": count,
        "epochs": epochs,
        "images_per_epoch": images,
        "repeats": repeats,
        **turns.figures(),
        "seconds": round(time.perf_counter() - started, 1),
    }


def together_toml(exp: Experiment, where: Path, images: int, classes: int, size: int, epochs: int) -> Path:
    """The folder dataset written and decoded into its cache once, and the TOML every training runs on it."""
    root = where / "data"
    write_folder_dataset(root, images, classes, size)
    time_decoded_cache(root)  # the cache every training reads
    run_exp = apply_overrides(
        engine_experiment(exp, root, images), {"train.epochs": epochs, "train.checkpoint_minutes": 0}
    )
    toml = where / "together.toml"
    toml.write_text(run_exp.to_toml())
    return toml


class Turns:
    """What the turns of one training alone and of `count` at once measured, group by group."""

    def __init__(self, count: int):
        self.count = count
        self.runs: dict[int, list[float]] = {1: [], count: []}  # every turn's total images/s
        self.each: list[list[float]] = []  # every turn of `count`: each training's images/s
        self.pids: list[list[int | None]] = []
        self.threads: dict[int, set[int]] = {1: set(), count: set()}
        self.sharing, self.overlapped = 1, True

    def add(self, n: int, group: list[Training]) -> dict[str, Any]:
        """One turn's group of `n` trainings, counted; returns its group_rate."""
        rate = group_rate(group)
        self.runs[n].append(rate["total"])
        self.overlapped = self.overlapped and rate["overlapped"]
        for t in group:
            self.threads[n] |= t.threads
        if n == self.count:
            self.each.append(rate["each"])
            self.pids.append([t.pid for t in group])
            self.sharing = max([self.sharing, *(t.sharing for t in group)])
        return rate

    def figures(self) -> dict[str, Any]:
        """The result's figures: the medians alone and together, their ratio, the threads and processes seen."""
        alone, together = spread(self.runs[1]), spread(self.runs[self.count])
        return {
            "alone": alone,
            "together_total": together,
            "together_each": self.each,
            "together_pids": self.pids,  # the processes that trained, turn by turn
            "ratio": round(together["median"] / alone["median"], 3) if alone["median"] else None,
            "threads_alone": sorted(self.threads[1]),
            "threads_together": sorted(self.threads[self.count]),
            "trainings_seen": self.sharing,  # the most trainings one of them saw sharing the machine's cores
            "overlapped": self.overlapped,
        }


def render_together(result: dict[str, Any]) -> str:
    m, n = result["machine"], result["trainings"]
    where = m["cuda"] or f"{m['cpu']}, {m['cores']} cores"
    ratio, goal = result["ratio"], result["goals"]["together"]
    each = result["together_each"][-1] if result["together_each"] else []
    lines = [
        f"cnnlab bench --together {n}: {result['model']}, batch {result['batch']}, {result['images_per_epoch']:,} "
        f"images an epoch, {result['epochs']} epochs, median of {result['repeats']} ({where}, torch {m['torch']})",
        f"  1 alone:      {result['alone']['median']:,.0f} img/s"
        f" ({', '.join(map(str, result['threads_alone'])) or '?'} thread(s))",
        f"  {n} at once:    {result['together_total']['median']:,.0f} img/s in total"
        + (f" (last turn {' + '.join(f'{v:,.0f}' for v in each)})" if each else "")
        + f", {', '.join(map(str, result['threads_together'])) or '?'} thread(s) each while sharing",
        f"  together/alone: {ratio:.2f} ({'meets' if ratio >= goal else 'misses'} the goal ≥ {goal:.2f})",
    ]
    if not result["overlapped"]:
        lines.append(
            "  (epochs shorter than the trainings' start-up skew: epochs counted whether or not all overlapped)"
        )
    return "\n".join(lines)
