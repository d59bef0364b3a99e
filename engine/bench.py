"""`cnnlab bench`: how fast the engine trains, against two yardsticks, in one process.

For a preset (or a model and a batch size) three ways of training the same model on the same
uint8 images are timed, taking turns, R times:

  pure     the model's forward + backward + optimizer step on float, normalised batches already in
           memory, with the precision, autocast and memory layout engine.device chooses: the ceiling.
  engine   engine.trainer.run_experiment through its real path, on a folder dataset of the preset's
           image size and class count written to a temporary directory (decoded cache, uint8 data,
           BatchAugment with the preset's augmentation, metrics, events, status file). Images/s over
           the training steps after the warm-up, timed by the trainer's own BatchProgress events;
           the end of the epoch (metrics line, checkpoints) is timed apart and set against a full
           epoch of the preset's dataset.
  reports  the reports' way: a CIFAR-style dataset making one PIL image per item, through
           RandomCrop(size, padding=4), RandomHorizontalFlip, ToTensor and Normalize, in a
           DataLoader with 0 and with 2 worker processes, in fp32.

Every way uses the preset's optimizer, loss (label smoothing) and gradient clipping, so the ratios
measure what lies around the step. The goals (issue 5): engine / pure >= 0.90, engine / reports >= 2.
A memory line (the train split as uint8 against float32) and the decoded cache's speed-up (first
against second load of the folder dataset) close the report.

Torch is imported only when the bench runs, so `cnnlab presets` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import ARCHS, DATASETS, Experiment, apply_overrides

GOAL_ENGINE_VS_PURE = 0.90
GOAL_ENGINE_VS_REPORTS = 2.0
GOAL_CACHE_SPEEDUP = 5.0

# The preset each architecture is benched at (its batch size, augmentation, optimizer).
MODEL_PRESETS = {
    "simplecnn": "simplecnn-cifar100",
    "alexnet32": "alexnet-cifar100-sgd",
    "mobilenet": "mobilenet-cifar100-lr",
    "backbone": "backbone-cifar10",
    "alexnet64": "alexnet-tinyimage10",
    "resnet34": "resnet34-cifar100",
    "resnet50": "resnet50-pretrained-cifar100",
}
DEFAULT_MODELS = ("simplecnn", "alexnet32", "mobilenet", "backbone")

# (timed steps, warm-up steps, most repeats) per architecture: a few seconds per way on a 2-core
# CPU. The Backbone takes about 10 s a step at batch 256 there, so it gets one step and two repeats.
PLANS: dict[str, tuple[int, int, int | None]] = {
    "simplecnn": (10, 2, None),
    "alexnet32": (15, 2, None),
    "mobilenet": (4, 1, None),
    "backbone": (1, 1, 2),
    "resnet34": (3, 1, 3),
    "resnet50": (2, 1, 2),
}
DEFAULT_PLAN = (8, 2, None)
DEFAULT_REPEATS = 5
REPORTS_WORKERS = (0, 2)
CACHE_MIN_IMAGES = 2000  # enough files for the decoded cache's speed-up to mean something

# Training images of each dataset before any split: for the memory line and to set the end of an
# epoch against a whole epoch.
TRAIN_IMAGES = {"shapes": 6000, "cifar10": 50000, "cifar100": 50000, "tiny-imagenet": 100000}


class BenchError(Exception):
    """The bench cannot measure what was asked (an engine run that failed, a bad model name)."""


@dataclass
class Target:
    """One model to bench: the experiment as the user would run it, and how long to time it."""

    label: str
    exp: Experiment
    preset: str | None
    steps: int
    warmup: int
    repeats: int

    @property
    def batch(self) -> int:
        return self.exp.train.batch_size


# --- what to bench ------------------------------------------------------------------------------


def plan_for(arch: str, steps: int | None, warmup: int | None, repeats: int | None) -> tuple[int, int, int]:
    p_steps, p_warmup, p_most = PLANS.get(arch, DEFAULT_PLAN)
    if repeats is None:
        repeats = DEFAULT_REPEATS if p_most is None else min(DEFAULT_REPEATS, p_most)
    return steps or p_steps, p_warmup if warmup is None else warmup, repeats


def model_experiment(arch: str, batch: int) -> Experiment:
    """A bare experiment for `--model ARCH`: CIFAR-100 at 32 pixels, Tiny ImageNet for 64-pixel models."""
    size = ARCHS[arch]["input"] or 32
    dataset = "tiny-imagenet" if size == 64 else "cifar100"
    return apply_overrides(Experiment(), {"model.arch": arch, "data.dataset": dataset, "train.batch_size": batch})


def resolve_targets(
    *,
    preset: str | None = None,
    model: str | None = None,
    models: list[str] | None = None,
    batch: int | None = None,
    sets: dict[str, Any] | None = None,
    steps: int | None = None,
    warmup: int | None = None,
    repeats: int | None = None,
    user_dir: Path | None = None,
) -> list[Target]:
    from engine.presets import get_preset, load_experiment_source

    chosen: list[tuple[str, Experiment, str | None]] = []
    if preset is not None:
        exp, p = load_experiment_source(preset, user_dir)
        chosen.append((exp.model.arch, exp, p.name if p else None))
    elif model is not None:
        if model not in ARCHS:
            raise BenchError(f"--model {model!r}: known architectures are {', '.join(ARCHS)}")
        chosen.append((model, model_experiment(model, batch or 128), None))
    else:
        for name in models or DEFAULT_MODELS:
            if name not in MODEL_PRESETS:
                raise BenchError(f"--models: {name!r} is not one of {', '.join(MODEL_PRESETS)}")
            p = get_preset(MODEL_PRESETS[name], user_dir)
            chosen.append((name, p.experiment, p.name))
    out = []
    for label, exp, preset_name in chosen:
        overrides = dict(sets or {})
        if batch is not None:
            overrides["train.batch_size"] = batch
        if overrides:
            exp = apply_overrides(exp, overrides)
        s, w, r = plan_for(exp.model.arch, steps, warmup, repeats)
        out.append(Target(label, exp, preset_name, s, w, r))
    return out


def engine_experiment(exp: Experiment, root: Path, images: int) -> Experiment:
    """The experiment as the engine runs it in the bench: the preset's model, augmentation, optimizer
    and precision on the bench's folder dataset, one epoch, no validation. What needs a validation
    split (plateau, early stop) or a download (ImageNet weights) is set aside: it does not change a
    training step's cost."""
    over: dict[str, Any] = {
        "data.dataset": "folder",
        "data.root": str(root),
        "data.classes": None,
        "data.train_subset": images,
        "data.val_split": 0,
        "data.test_split": 0,
        "data.image_size": None,
        "data.cache": True,
        "train.epochs": 1,
        "train.phases": [],
        "train.early_stop": None,
        "model.pretrained": False,
        "model.weights_path": None,
    }
    if exp.data.normalize == "compute":
        over["data.normalize"] = "dataset"  # the folder's measured statistics: the same arithmetic
    if exp.schedule.name == "plateau":
        over["schedule.name"] = "constant"
    return apply_overrides(exp, over)


def shape_of(exp: Experiment) -> tuple[int, int, int]:
    """(classes, channels, image size) of the preset's data, without loading it."""
    from engine.data import DatasetMissing, DatasetUnusable, describe

    try:
        return describe(exp.data)
    except (DatasetMissing, DatasetUnusable) as err:  # a folder preset whose folder is not here
        raise BenchError(str(err)) from None


def train_split_images(exp: Experiment) -> int | None:
    """How many images a full epoch of the preset trains on (None: a folder of unknown size)."""
    n = TRAIN_IMAGES.get(exp.data.dataset)
    if n is None:
        return None
    d = exp.data
    if d.train_subset is not None:
        n = min(n, d.train_subset)
    held = 0
    for split in (d.val_split, d.test_split):
        if split > 0:
            held += int(split) if split >= 1 else max(1, round(split * n))
    return max(n - held, 1)


# --- the images: a folder dataset of the preset's shape ------------------------------------------


def write_folder_dataset(root: Path, images: int, classes: int, size: int) -> None:
    """`root/train/<class>/<n>.png`: the generated shapes images (resized to `size`, repeated as
    needed), labelled round-robin over `classes` folders."""
    import numpy as np
    from PIL import Image

    from engine.config import DataConfig
    from engine.datasets import shapes
    from engine.datasets.images import resize_images

    source = shapes.decode(DataConfig(dataset="shapes", val_split=0)).train[0]
    source = resize_images(source, size).permute(0, 2, 3, 1).contiguous().numpy()
    folders = [root / "train" / f"c{k:03d}" for k in range(classes)]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        Image.fromarray(np.ascontiguousarray(source[i % len(source)])).save(folders[i % classes] / f"{i:06d}.png")


def time_decoded_cache(root: Path) -> dict[str, Any]:
    """First load of a folder dataset (decode every file, write the cache) against the second (read
    the cache). The files were just written, so both read from the OS's page cache."""
    import torch

    from engine.config import DataConfig
    from engine.data import load_splits

    cfg = DataConfig(dataset="folder", root=str(root), val_split=0)
    t0 = time.perf_counter()
    first = load_splits(cfg)
    t1 = time.perf_counter()
    second = load_splits(cfg)
    t2 = time.perf_counter()
    if not torch.equal(first.train.images, second.train.images):
        raise BenchError("the decoded cache gave back other images than the files hold")
    images = first.train.images
    return {
        "images": int(images.shape[0]),
        "first_s": round(t1 - t0, 4),
        "second_s": round(t2 - t1, 4),
        "speedup": round((t1 - t0) / max(t2 - t1, 1e-9), 1),
        "held_dtype": str(images.dtype).replace("torch.", ""),
        "held_bytes": images.element_size() * images.numel(),
    }


def memory_line(exp: Experiment) -> dict[str, Any] | None:
    """Bytes a full train split of the preset's dataset takes as uint8 (how the engine holds it) and
    as float32 (how a float tensor dataset would)."""
    n = train_split_images(exp)
    if n is None:
        return None
    _, channels, size = shape_of(exp)
    nbytes = n * channels * size * size
    return {"dataset": exp.data.dataset, "train_images": n, "uint8_bytes": nbytes, "float32_bytes": 4 * nbytes}


# --- the three ways -----------------------------------------------------------------------------


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build(exp: Experiment, rt, classes: int, channels: int, size: int):
    import torch

    from engine.models import build_model
    from engine.optim import build_optimizer

    model = build_model(exp.model, classes, size, channels).to(rt.device, memory_format=rt.memory_format)
    model.train()
    optimizer = build_optimizer(exp.optim, model.parameters())
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.needs_scaler)
    return model, optimizer, scaler


class PureCompute:
    """Forward + backward + step on float batches already on the device, normalised and laid out as
    the engine lays them out (a few distinct batches, taken in turn)."""

    DISTINCT_BATCHES = 4

    def __init__(self, exp: Experiment, rt, images, labels, mean, std, classes: int):
        from engine.augment import BatchAugment
        from engine.trainer import train_step

        self.train_step = train_step  # the trainer's own step, so the ratio measures what lies around it
        self.exp, self.rt = exp, rt
        channels, size = images.shape[1], images.shape[-1]
        self.model, self.optimizer, self.scaler = _build(exp, rt, classes, channels, size)
        augment = BatchAugment(exp.augment, mean, std)
        bs = exp.train.batch_size
        count = max(1, min(self.DISTINCT_BATCHES, len(labels) // bs))
        self.batches = [
            (
                augment.eval(images[i * bs : (i + 1) * bs].to(rt.device)).contiguous(memory_format=rt.memory_format),
                labels[i * bs : (i + 1) * bs].to(rt.device),
            )
            for i in range(count)
        ]
        self.warm = False

    def measure(self, steps: int, warmup: int) -> float:
        """Images per second over `steps` steps (after `warmup` untimed ones, the first time)."""
        if not self.warm:
            for i in range(warmup):
                self._step(i)
            self.warm = True
        _sync(self.rt.device)
        t0 = time.perf_counter()
        for i in range(steps):
            self._step(i)
        _sync(self.rt.device)
        seconds = time.perf_counter() - t0
        return sum(len(self.batches[i % len(self.batches)][1]) for i in range(steps)) / seconds

    def _step(self, i: int) -> None:
        x, y = self.batches[i % len(self.batches)]
        self.train_step(self.model, self.model, self.optimizer, self.scaler, self.rt, x, y, self.exp)


class PILImages:
    """torchvision's CIFAR10 dataset without its files: uint8 images held as one (N, H, W, C) array,
    each item made a PIL image and put through the transform, as the reports' pipelines do. A plain
    map-style dataset (len and getitem): DataLoader asks no more."""

    def __init__(self, images, labels, transform):
        from PIL import Image

        hwc = images.permute(0, 2, 3, 1)
        self.data = (hwc[..., 0] if hwc.shape[-1] == 1 else hwc).contiguous().numpy()
        self.targets = [int(v) for v in labels]
        self.transform = transform
        self._to_pil = Image.fromarray

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.transform(self._to_pil(self.data[i])), self.targets[i]


def reports_transform(size: int, mean, std):
    """The reports' per-image augmentation (report 001 and 004's listings): PIL in, tensor out."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.RandomCrop(size, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


class ReportsPipeline:
    """The reports' way: PIL transforms per image in a DataLoader, fp32, the model in its default
    layout. One model serves every worker count."""

    def __init__(self, exp: Experiment, device, images, labels, mean, std, classes: int):
        from engine.device import Runtime
        from engine.trainer import train_step

        self.train_step = train_step  # the same step as the engine's: only the data path differs
        self.exp = exp
        self.rt = Runtime(device, "fp32", False)
        channels, size = images.shape[1], images.shape[-1]
        self.model, self.optimizer, self.scaler = _build(exp, self.rt, classes, channels, size)
        self.dataset = PILImages(images, labels, reports_transform(size, mean, std))
        self.warm = False

    def loader(self, workers: int):
        from torch.utils.data import DataLoader

        return DataLoader(
            self.dataset,
            batch_size=self.exp.train.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            pin_memory=self.rt.device.type == "cuda",
        )

    def measure(self, steps: int, warmup: int, workers: int) -> float:
        """Images per second over `steps` steps. Each measure starts a new epoch: with workers, one
        untimed step lets them start; `warmup` untimed steps the first time the model trains."""
        device = self.rt.device
        batches = iter(self.loader(workers))
        for _ in range((1 if workers else 0) if self.warm else max(warmup, 1)):
            self._step(next(batches))
        self.warm = True
        _sync(device)
        t0 = time.perf_counter()
        seen = 0
        for _ in range(steps):
            seen += self._step(next(batches))
        _sync(device)
        seconds = time.perf_counter() - t0
        del batches  # shuts the workers down before the next way runs
        return seen / seconds

    def _step(self, batch) -> int:
        x, y = batch
        device = self.rt.device
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        self.train_step(self.model, self.model, self.optimizer, self.scaler, self.rt, x, y, self.exp)
        return len(y)


def engine_once(exp: Experiment, runs_dir: Path, warmup: int) -> dict[str, Any]:
    """One short run through engine.trainer. Images/s between the first BatchProgress at or after
    the warm-up and the last one (the trainer emits one after its last step), and the seconds from
    the last step to EpochFinished (loss and accuracy read back, metrics line, checkpoints, status)."""
    from engine.events import BatchProgress, EpochFinished, RunStarted
    from engine.trainer import run_experiment

    marks: list[tuple[float, int]] = []
    seen: dict[str, Any] = {}

    def listen(event) -> None:
        now = time.perf_counter()
        if isinstance(event, BatchProgress):
            marks.append((now, event.batch))
        elif isinstance(event, EpochFinished):
            seen["epoch_end"] = now
            seen["row"] = event.metrics
        elif isinstance(event, RunStarted):
            seen["started"] = event

    result = run_experiment(exp, runs_dir=runs_dir, name="bench", listener=listen)
    try:
        if result.state != "finished" or "row" not in seen:
            raise BenchError(f"the engine's run ended {result.state}: {result.message}")
        t_last, last = marks[-1]
        t_first, first = next(((t, b) for t, b in marks if b >= warmup), marks[-1])
        bs = exp.train.batch_size
        if last > first:
            ips = (last - first) * bs / (t_last - t_first)
        else:  # too quick for a progress event after the warm-up: the trainer's own epoch figure
            ips = float(seen["row"]["images_per_sec"])
        started = seen["started"]
        return {
            "ips": ips,
            "epoch_end_s": seen["epoch_end"] - t_last,
            "device": started.device,
            "precision": started.precision,
            "channels_last": started.channels_last,
            "timed_steps": max(last - first, 0),
        }
    finally:
        shutil.rmtree(result.folder.path, ignore_errors=True)


# --- the bench ------------------------------------------------------------------------------------


def spread(values: list[float], digits: int = 1) -> dict[str, Any]:
    """Median, interquartile range and the values themselves."""
    vals = sorted(values)
    iqr = 0.0
    if len(vals) >= 2:
        q = statistics.quantiles(vals, n=4, method="inclusive")
        iqr = q[2] - q[0]
    return {"median": round(statistics.median(vals), digits), "iqr": round(iqr, digits), "runs": [round(v, digits) for v in values]}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
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
        info = engine_once(eng_exp if first_engine else engine_experiment(exp, root, (1 + target.steps) * target.batch), runs_dir, target.warmup if first_engine else 1)
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
            elif needed > _count_images(roots[key]):
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


def _count_images(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root / "train"))


def goals() -> dict[str, float]:
    return {"engine_vs_pure": GOAL_ENGINE_VS_PURE, "engine_vs_reports": GOAL_ENGINE_VS_REPORTS, "cache_speedup": GOAL_CACHE_SPEEDUP}


# --- showing it -----------------------------------------------------------------------------------


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
    table = Table(title="cnnlab bench: training images/s, median ±IQR", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("model", "batch", "pure", "engine", "rep. w0", "rep. w2", "eng/pure", "eng/rep"):
        table.add_column(col, justify="left" if col == "model" else "right")
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, Python {m['python']}"]
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
                f"memory: {mem['dataset']} train split, {mem['train_images']:,} images: {_mb(mem['uint8_bytes'])} as uint8 "
                f"(held so) vs {_mb(mem['float32_bytes'])} as float32"
            )
        )
    c = result.get("cache")
    if c:
        ok = c["speedup"] >= GOAL_CACHE_SPEEDUP
        parts.append(
            Text.from_markup(
                f"decoded cache: {c['images']:,} PNG files, first load {c['first_s']:.3f} s, second {c['second_s']:.3f} s: "
                f"[{'green' if ok else 'red'}]{c['speedup']:.1f}x[/] (goal ≥ {GOAL_CACHE_SPEEDUP:.0f}x); held as {c['held_dtype']}, "
                f"{_mb(c['held_bytes'])}"
            )
        )
    return Group(*parts)


# --- the command ----------------------------------------------------------------------------------


def add_cli(subparsers) -> None:
    sp = subparsers.add_parser(
        "bench",
        help="measure training speed: pure compute vs the engine vs the reports' DataLoader pipeline",
        description="Time, in one process and taking turns, a model's pure compute (forward + backward + step on "
        "batches in memory), the engine's real training path, and the reports' PIL-transform DataLoader pipeline; "
        "print medians and the ratios engine/pure (goal >= 0.90) and engine/reports (goal >= 2). Without a preset "
        "or --model it benches " + ", ".join(DEFAULT_MODELS) + " at their presets' batch sizes.",
    )
    sp.add_argument("preset", nargs="?", metavar="PRESET_OR_TOML", help="bench this preset (default: the four report models)")
    sp.add_argument("--model", choices=list(ARCHS), help="bench an architecture on CIFAR-shaped data instead of a preset")
    sp.add_argument("--batch", type=int, help="batch size (default: the preset's; 128 with --model)")
    sp.add_argument("--models", help="comma-separated subset of " + ",".join(MODEL_PRESETS) + " (default " + ",".join(DEFAULT_MODELS) + ")")
    sp.add_argument("--repeats", type=int, help=f"turns of every way (default {DEFAULT_REPEATS}; the Backbone 2)")
    sp.add_argument("--steps", type=int, help="timed steps per way (default per model, e.g. 10 for simplecnn, 1 for the Backbone)")
    sp.add_argument("--warmup", type=int, help="untimed steps before the first timing of each way")
    sp.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field, e.g. train.precision=bf16 (repeatable)")
    sp.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    sp.add_argument("--ui", action="store_true", help="measure the console instead (start-up, event-loop lateness, chart cost): `cnnlab bench --ui`")
    sp.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from engine.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, parse_sets
    from engine.runs import default_runs_dir, user_presets_dir

    err = Console(stderr=True)
    if args.ui:
        err.print("run `cnnlab bench --ui` (the console's benchmark)")
        return EXIT_USAGE
    for flag in ("batch", "repeats", "steps", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag} must be at least 1")
    if args.warmup is not None and args.warmup < 0:
        raise UsageError("--warmup must be 0 or more")
    chosen = [bool(args.preset), bool(args.model), bool(args.models)]
    if sum(chosen) > 1:
        raise UsageError("give a preset, --model or --models, not several")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    try:
        targets = resolve_targets(
            preset=args.preset,
            model=args.model,
            models=models,
            batch=args.batch,
            sets=parse_sets(args.set),
            steps=args.steps,
            warmup=args.warmup,
            repeats=args.repeats,
            user_dir=user_presets_dir(default_runs_dir()),
        )
    except BenchError as e:
        raise UsageError(str(e)) from None

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    say = (lambda text: err.print(text, style="dim", highlight=False)) if not args.json or sys.stderr.isatty() else (lambda text: None)
    try:
        result = run_bench(targets, say=say)
    except BenchError as e:
        err.print(f"[bold red]bench failed:[/] {e}")
        return EXIT_FAILED
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        Console().print(render(result))
    return EXIT_OK
