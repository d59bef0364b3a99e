"""Two of the bench's ways: the pure compute (forward + backward + step on batches already in memory:
the ceiling) and the engine's real run through engine.training.trainer (timed by its own progress events)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from engine.bench import BenchError
from engine.experiment.config import Experiment


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(exp: Experiment, rt, classes: int, channels: int, size: int, init_scale: float = 2.0**16):
    """A new model of `exp` on `rt` in training mode, with the trainer's step over it
    (engine.training.step.make_step), its gradient scaler starting at `init_scale`."""
    from engine.models import build_model
    from engine.training.step import make_step

    model = build_model(exp.model, classes, size, channels).to(rt.device, memory_format=rt.memory_format)
    model.train()
    return make_step(exp, model, rt, init_scale=init_scale)


class PureCompute:
    """Forward + backward + step on float batches already on the device, normalised and laid out in
    the runtime's memory format, in its precision (a few distinct batches, taken in turn). The bench
    makes one per candidate of auto's probe (engine.training.autotune.candidates)."""

    DISTINCT_BATCHES = 4

    def __init__(self, exp: Experiment, rt, images, labels, mean, std, classes: int):
        from engine.data.augment import BatchAugment

        self.exp, self.rt = exp, rt
        channels, size = images.shape[1], images.shape[-1]
        # The trainer's own step, so the ratio measures what lies around it. fp16's scaler starts at 1,
        # as auto's probe does: early overflows would skip optimizer steps and time short.
        self.train_step = build(exp, rt, classes, channels, size, init_scale=1.0)
        self.model = self.train_step.model
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
        sync(self.rt.device)
        t0 = time.perf_counter()
        for i in range(steps):
            self._step(i)
        sync(self.rt.device)
        seconds = time.perf_counter() - t0
        return sum(len(self.batches[i % len(self.batches)][1]) for i in range(steps)) / seconds

    def _step(self, i: int) -> None:
        x, y = self.batches[i % len(self.batches)]
        self.train_step(x, y)


def engine_once(exp: Experiment, runs_dir: Path, warmup: int) -> dict[str, Any]:
    """One short run through engine.training.trainer. Images/s between the first BatchProgress at or after
    the warm-up and the last one (the trainer emits one after its last step), and the seconds from
    the last step to EpochFinished (loss and accuracy read back, metrics line, checkpoints, status)."""
    from engine.events import BatchProgress, EpochFinished, RunStarted
    from engine.training.trainer import run_experiment

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
