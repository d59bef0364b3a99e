"""The bench itself: write the folder datasets, time the decoded cache, then for every target time the
ways taking turns (pure compute in each of auto's candidates, the engine, the reports' pipeline; the
order rotating every repeat) and reduce them to medians, ratios, the ceiling and a small batch's
per-step overhead."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.bench import BenchError
from engine.bench.ceiling import TRAIN_FORWARDS, ceiling, matmul_rate
from engine.bench.images import CACHE_MIN_IMAGES, count_images, time_decoded_cache, write_folder_dataset
from engine.bench.machine import machine
from engine.bench.measure import PureCompute, engine_once
from engine.bench.reports import REPORTS_WORKERS, ReportsPipeline
from engine.bench.targets import (
    SMALL_BATCH,
    Target,
    engine_experiment,
    goals,
    memory_line,
    shape_of,
    train_split_images,
    without_weights,
)
from engine.experiment.config import Experiment
from engine.models.flops import forward_flops


def spread(values: list[float], digits: int = 1) -> dict[str, Any]:
    """Median, interquartile range and the values themselves."""
    vals = sorted(values)
    iqr = 0.0
    if len(vals) >= 2:
        q = statistics.quantiles(vals, n=4, method="inclusive")
        iqr = q[2] - q[0]
    return {
        "median": round(statistics.median(vals), digits),
        "iqr": round(iqr, digits),
        "runs": [round(v, digits) for v in values],
    }


def bench_target(
    target: Target, root: Path, runs_dir: Path, say=lambda text: None, rates: dict | None = None
) -> dict[str, Any]:
    """Time the ways for one target, taking turns: pure compute in every candidate of auto's probe,
    the engine, the reports' pipeline. The order rotates every repeat so that a slow patch of the
    machine does not always fall on the same way. `rates` keeps the matmul rates measured so far
    (per device and precision), so each is measured once per bench."""
    started = time.perf_counter()
    ways = Ways.build(target, root, runs_dir)
    runs = ways.take_turns(say)
    out = ways.describe()
    out.update(way_figures(runs, ways.pures, out["engine_way"]))
    out["ceiling"] = target_ceiling(ways.pures, ways.rule.device, {c.precision for c in ways.cands}, rates, out)
    if target.batch <= SMALL_BATCH:
        out["small_batch"] = small_batch(out)
    out.update(epoch_end(ways.exp, ways.engine.epoch_end, out["engine"]["median"]))
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


class EngineWay:
    """The engine's real run as one of the ways: each call one `engine_once`, its images/s returned,
    what it ran and its end of epoch kept."""

    def __init__(self, target: Target, exp: Experiment, root: Path, runs_dir: Path, images: int):
        self.target, self.exp, self.root, self.runs_dir = target, exp, root, runs_dir
        self.first_exp = engine_experiment(exp, root, images)
        self.first = True
        self.info: dict[str, Any] = {}
        self.epoch_end: list[float] = []

    def __call__(self) -> float:
        # The engine's first run warms torch up like the other ways' first steps (and lets auto
        # measure, or recall, its choice); later runs only need their first step (optimizer state,
        # allocations) kept out of the timing.
        t = self.target
        info = engine_once(
            self.first_exp if self.first else engine_experiment(self.exp, self.root, (1 + t.steps) * t.batch),
            self.runs_dir,
            t.warmup if self.first else 1,
        )
        self.first = False
        self.info = info
        self.epoch_end.append(info["epoch_end_s"])
        return info["ips"]


@dataclass
class Ways:
    """One target's ways to train, each built as the engine's run builds the model: pure compute in
    every candidate of auto's probe that could be built, the engine, the reports' pipeline."""

    target: Target
    exp: Experiment
    splits: Any  # engine.data.splits' splits, read from the decoded cache
    rule: Any  # engine.compute.device's runtime for the experiment
    cands: list[Any]  # auto's candidates, the rule's own first
    pures: dict[str, PureCompute]
    failed: dict[str, str]  # a candidate that cannot train: the first line of why
    engine: EngineWay
    reports: ReportsPipeline

    @classmethod
    def build(cls, target: Target, root: Path, runs_dir: Path) -> Ways:
        from engine.compute.device import Runtime, select_runtime
        from engine.data.splits import load_splits
        from engine.training.autotune import candidates

        exp = without_weights(target.exp)  # pure compute and the reports' way build the model as the engine's run does
        # The reports' first measure takes at least one untimed batch, even at --warmup 0.
        engine = EngineWay(target, exp, root, runs_dir, (max(target.warmup, 1) + target.steps) * target.batch)
        splits = load_splits(engine.first_exp.data)  # read from the decoded cache, as the engine's runs will
        rule = select_runtime(exp.train)
        cands = candidates(exp, rule)  # the probe's own set: the same safe precisions and layouts
        data = (splits.train.images, splits.train.labels, splits.mean, splits.std, splits.num_classes)
        pures: dict[str, PureCompute] = {}
        failed: dict[str, str] = {}
        for c in cands:
            try:
                pures[c.label] = PureCompute(exp, Runtime(rule.device, c.precision, c.channels_last), *data)
            except RuntimeError as err:  # a kernel missing in this precision: the probe drops it too
                failed[c.label] = _first_line(err)
        if not pures:
            raise BenchError(f"{target.label}: no candidate precision and layout could train: {failed}")
        reports = ReportsPipeline(exp, rule.device, *data)
        return cls(target, exp, splits, rule, cands, pures, failed, engine, reports)

    def take_turns(self, say) -> dict[str, list[float]]:
        """Every way once a repeat, the order rotating; the images/s of each way's turns. A pure
        candidate that builds but cannot step is dropped, and named in `failed`."""
        t = self.target
        ways: dict[str, Any] = {
            **{f"pure {label}": (lambda p=p: p.measure(t.steps, t.warmup)) for label, p in self.pures.items()},
            "engine": self.engine,
            **{f"reports_w{w}": (lambda w=w: self.reports.measure(t.steps, t.warmup, w)) for w in REPORTS_WORKERS},
        }
        runs: dict[str, list[float]] = {name: [] for name in ways}
        order = list(ways)
        for r in range(t.repeats):
            k = r % len(order)
            line = []
            for name in order[k:] + order[:k]:
                if name not in ways:
                    continue
                try:
                    value = ways[name]()
                except RuntimeError as err:  # a pure candidate that builds but cannot step
                    if not name.startswith("pure "):
                        raise
                    self.failed[name[5:]] = _first_line(err)
                    del ways[name], runs[name], self.pures[name[5:]]
                    continue
                runs[name].append(value)
                line.append(f"{name} {value:,.0f}")
            say(f"{t.label}: repeat {r + 1}/{t.repeats}: " + " · ".join(line) + " img/s")
        if not self.pures:
            raise BenchError(f"{t.label}: no candidate precision and layout could train: {self.failed}")
        return runs

    def describe(self) -> dict[str, Any]:
        """The row's first fields: what was benched, how long, on what, and the way the engine ran."""
        from engine.training.autotune import Candidate

        t, exp, info = self.target, self.exp, self.engine.info
        return {
            "model": t.label,
            "arch": exp.model.arch,
            "preset": t.preset,
            "batch": t.batch,
            "classes": self.splits.num_classes,
            "image_size": int(self.splits.train.images.shape[-1]),
            "steps": t.steps,
            "warmup": t.warmup,
            "repeats": t.repeats,
            "device": str(self.rule.device),
            "rule": self.cands[0].label,  # what engine.compute.device's rule alone would take
            "candidates": [c.label for c in self.cands],
            "failed": self.failed,
            "engine_way": Candidate(info.get("precision"), bool(info.get("channels_last"))).label,
            "engine_precision": info.get("precision"),
            "engine_channels_last": info.get("channels_last"),
            "augment": {k: v for k, v in exp.augment.model_dump().items() if v},
        }


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0][:200]


def way_figures(runs: dict[str, list[float]], pures: dict[str, PureCompute], engine_way: str) -> dict[str, Any]:
    """Every way's spread, the best pure candidate and reports' worker count, and the engine against them."""
    out: dict[str, Any] = {"pure_ways": {label: spread(runs[f"pure {label}"]) for label in pures}}
    best = max(out["pure_ways"], key=lambda label: out["pure_ways"][label]["median"])
    out["pure_best"] = best
    out["pure"] = out["pure_ways"][best]
    for name in ("engine", *(f"reports_w{w}" for w in REPORTS_WORKERS)):
        out[name] = spread(runs[name])
    best_w = max(REPORTS_WORKERS, key=lambda w: out[f"reports_w{w}"]["median"])
    out["reports_best_workers"] = best_w
    engine_ips = out["engine"]["median"]
    out["engine_vs_pure"] = round(engine_ips / out["pure"]["median"], 3)
    same = out["pure_ways"].get(engine_way)
    # Against pure compute in the engine's own way: what lies around the step, apart from auto's choice.
    out["engine_vs_same_way"] = round(engine_ips / same["median"], 3) if same else None
    out["engine_vs_reports"] = round(engine_ips / out[f"reports_w{best_w}"]["median"], 3)
    # The fastest turn of each: on a machine whose speed shifts between turns (a shared VM runs at two
    # speeds about 1.5x apart) the medians of few turns can fall in different bands, the fastest not.
    out["engine_vs_pure_fastest"] = round(max(runs["engine"]) / max(runs[f"pure {best}"]), 3)
    return out


def epoch_end(exp: Experiment, seconds: list[float], engine_ips: float) -> dict[str, Any]:
    """The end of the engine's epoch (checkpoints), in seconds and as a share of a full epoch."""
    end_s = statistics.median(seconds)
    out: dict[str, Any] = {"epoch_end_s": round(end_s, 3)}
    full = train_split_images(exp)
    if full is not None:
        # The end of an epoch (checkpoints) set against a whole epoch of the preset's data.
        out["epoch_end_share"] = round(end_s / (full / engine_ips + end_s), 4)
    return out


def target_ceiling(
    pures: dict[str, PureCompute], device, precisions: set[str], rates: dict | None, row: dict[str, Any]
) -> dict[str, Any]:
    """The model's FLOPs per image against the device's matmul rate, and the share of it pure
    compute (its best way) and the engine reach."""
    any_pure = next(iter(pures.values()))
    shape = tuple(any_pure.batches[0][0].shape[1:])
    fwd = forward_flops(any_pure.model, shape)
    rates = {} if rates is None else rates
    for p in sorted(precisions):
        if (str(device), p) not in rates:
            rates[(str(device), p)] = matmul_rate(device, p)
    mine = {p: rates[(str(device), p)] for p in precisions}
    c = ceiling({"forward_flops": fwd, "train_flops": TRAIN_FORWARDS * fwd}, mine)
    c["matmul"] = {p: r["tflops"] for p, r in sorted(mine.items())}
    if c["ips"]:
        c["pure_share"] = round(row["pure"]["median"] / c["ips"], 4)
        c["engine_share"] = round(row["engine"]["median"] / c["ips"], 4)
    return c


def small_batch(row: dict[str, Any]) -> dict[str, Any]:
    """Milliseconds per step of the engine against pure compute (in the engine's own way, else the
    best), and the engine's overhead over it."""
    b = row["batch"]
    way = row["engine_way"] if row["engine_way"] in row["pure_ways"] else row["pure_best"]
    ms = lambda ips: round(1000 * b / ips, 3) if ips else None  # noqa: E731
    engine_ms, pure_ms = ms(row["engine"]["median"]), ms(row["pure_ways"][way]["median"])
    return {
        "batch": b,
        "engine_ms": engine_ms,
        "pure_ms": pure_ms,
        "pure_way": way,
        "pure_best_ms": ms(row["pure"]["median"]),
        "overhead": round(engine_ms / pure_ms - 1, 4) if engine_ms and pure_ms else None,
    }


def run_bench(targets: list[Target], *, say=lambda text: None, workdir: Path | None = None) -> dict[str, Any]:
    """The whole bench: write the folder datasets, time the cache, bench every target."""
    import torch

    result: dict[str, Any] = {"machine": machine(), "goals": goals(), "models": [], "memory": [], "cache": None}
    rates: dict[tuple[str, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-", dir=workdir) as tmp:
        tmp_path = Path(tmp)
        runs_dir = tmp_path / "runs"
        roots: dict[tuple[int, int, int], Path] = {}
        for t in targets:
            classes, channels, size = shape_of(t.exp)
            if channels != 3:
                raise BenchError(f"{t.label}: the bench writes RGB images; {channels}-channel data is not supported")
            key = (classes, channels, size)
            needed = (max(t.warmup, 1) + t.steps) * t.batch
            if key not in roots:
                root = tmp_path / f"data-{classes}-{size}"
                count = max(needed, CACHE_MIN_IMAGES, classes)
                say(f"writing {count} {size}x{size} PNG images in {classes} class folders…")
                write_folder_dataset(root, count, classes, size)
                roots[key] = root
                if result["cache"] is None:
                    result["cache"] = time_decoded_cache(root)
                else:
                    time_decoded_cache(root)  # makes the cache the engine's runs read
            elif needed > count_images(roots[key]):
                raise BenchError(f"{t.label}: needs {needed} images; use fewer --steps")
        for t in targets:
            mem = memory_line(t.exp)
            if mem is not None and mem not in result["memory"]:
                result["memory"].append(mem)
            classes, channels, size = shape_of(t.exp)
            say(f"{t.label}: batch {t.batch}, {t.steps} timed steps after {t.warmup} warm-up, {t.repeats} repeats")
            with torch.random.fork_rng():
                result["models"].append(bench_target(t, roots[(classes, channels, size)], runs_dir, say, rates))
    result["matmul"] = [{"device": device, **r} for (device, _), r in sorted(rates.items())]
    return result
