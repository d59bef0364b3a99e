"""The bench itself: write the folder datasets, time the decoded cache, then for every target time the
three ways taking turns (the order rotating every repeat) and reduce them to medians and ratios."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.bench import BenchError
from engine.bench.images import CACHE_MIN_IMAGES, count_images, time_decoded_cache, write_folder_dataset
from engine.bench.machine import machine
from engine.bench.measure import PureCompute, engine_once
from engine.bench.reports import REPORTS_WORKERS, ReportsPipeline
from engine.bench.targets import Target, engine_experiment, goals, memory_line, shape_of, train_split_images


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


def bench_target(target: Target, root: Path, runs_dir: Path, say=lambda text: None) -> dict[str, Any]:
    """Time the three ways for one target, taking turns; the order rotates every repeat so that a
    slow patch of the machine does not always fall on the same way."""
    from engine.data import load_splits
    from engine.device import select_runtime

    exp = target.exp
    started = time.perf_counter()
    images = (target.warmup + target.steps) * target.batch
    eng_exp = engine_experiment(exp, root, images)
    splits = load_splits(eng_exp.data)  # read from the decoded cache, as the engine's runs will
    rt = select_runtime(exp.train)
    x, y = splits.train.images, splits.train.labels
    classes = splits.num_classes
    pure = PureCompute(exp, rt, x, y, splits.mean, splits.std, classes)
    reports = ReportsPipeline(exp, rt.device, x, y, splits.mean, splits.std, classes)

    runs: dict[str, list[float]] = {"pure": [], "engine": [], **{f"reports_w{w}": [] for w in REPORTS_WORKERS}}
    epoch_end: list[float] = []
    engine_info: dict[str, Any] = {}
    first_engine = True

    def run_engine() -> float:
        nonlocal first_engine, engine_info
        # The engine's first run warms torch up like the other ways' first steps; later runs only
        # need their first step (optimizer state, allocations) kept out of the timing.
        info = engine_once(
            eng_exp if first_engine else engine_experiment(exp, root, (1 + target.steps) * target.batch),
            runs_dir,
            target.warmup if first_engine else 1,
        )
        first_engine = False
        engine_info = info
        epoch_end.append(info["epoch_end_s"])
        return info["ips"]

    ways = {
        "pure": lambda: pure.measure(target.steps, target.warmup),
        "engine": run_engine,
        **{f"reports_w{w}": (lambda w=w: reports.measure(target.steps, target.warmup, w)) for w in REPORTS_WORKERS},
    }
    order = list(ways)
    for r in range(target.repeats):
        k = r % len(order)
        line = []
        for name in order[k:] + order[:k]:
            value = ways[name]()
            runs[name].append(value)
            line.append(f"{name} {value:,.0f}")
        say(f"{target.label}: repeat {r + 1}/{target.repeats}: " + " · ".join(line) + " img/s")

    out: dict[str, Any] = {
        "model": target.label,
        "arch": exp.model.arch,
        "preset": target.preset,
        "batch": target.batch,
        "classes": classes,
        "image_size": int(x.shape[-1]),
        "steps": target.steps,
        "warmup": target.warmup,
        "repeats": target.repeats,
        "device": str(rt.device),
        "precision": rt.precision,
        "channels_last": rt.channels_last,
        "engine_precision": engine_info.get("precision"),
        "engine_channels_last": engine_info.get("channels_last"),
        "augment": {k: v for k, v in exp.augment.model_dump().items() if v},
    }
    for name, values in runs.items():
        out[name] = spread(values)
    best_w = max(REPORTS_WORKERS, key=lambda w: out[f"reports_w{w}"]["median"])
    out["reports_best_workers"] = best_w
    engine_ips = out["engine"]["median"]
    out["engine_vs_pure"] = round(engine_ips / out["pure"]["median"], 3)
    out["engine_vs_reports"] = round(engine_ips / out[f"reports_w{best_w}"]["median"], 3)
    end_s = statistics.median(epoch_end)
    out["epoch_end_s"] = round(end_s, 3)
    full = train_split_images(exp)
    if full is not None:
        # The end of an epoch (checkpoints) set against a whole epoch of the preset's data.
        out["epoch_end_share"] = round(end_s / (full / engine_ips + end_s), 4)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def run_bench(targets: list[Target], *, say=lambda text: None, workdir: Path | None = None) -> dict[str, Any]:
    """The whole bench: write the folder datasets, time the cache, bench every target."""
    import torch

    result: dict[str, Any] = {"machine": machine(), "goals": goals(), "models": [], "memory": [], "cache": None}
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-", dir=workdir) as tmp:
        tmp_path = Path(tmp)
        runs_dir = tmp_path / "runs"
        roots: dict[tuple[int, int, int], Path] = {}
        for t in targets:
            classes, channels, size = shape_of(t.exp)
            if channels != 3:
                raise BenchError(f"{t.label}: the bench writes RGB images; {channels}-channel data is not supported")
            key = (classes, channels, size)
            needed = (t.warmup + t.steps) * t.batch
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
                result["models"].append(bench_target(t, roots[(classes, channels, size)], runs_dir, say))
    return result
