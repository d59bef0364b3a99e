"""The learning-rate range test (Smith 2015, fastai's `lr_find`): train a copy of the model for a
few hundred batches while the lr grows exponentially from tiny to huge, record the loss, and read a
good lr off the curve.

Everything trains on copies: the model (and any weights it was given) is deep-copied and the
optimizer is a new one over the copy, so the experiment, its preset and a run's checkpoint are
untouched. The steps are the trainer's own (engine.training.step.make_step: autocast, scaler, clipping,
label smoothing, mixup) on the training split augmented as in training, so the curve is that of the
run it advises. It stops early once the smoothed loss has exploded (4x its best, as fastai's does).

Two rules read the curve (both on the smoothed loss, the first tenth and the last few points left
out, as fastai and torch-lr-finder do):

- valley (fastai's default since 2.5): the longest stretch over which the loss keeps falling; the lr
  two thirds of the way down it;
- steepest: where the loss falls fastest against log lr (torch-lr-finder's suggestion).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from engine.compute.device import Runtime, select_runtime
from engine.data.augment import BatchAugment, mixup
from engine.data.splits import DatasetUnusable, load_splits
from engine.experiment.config import Experiment, Phase
from engine.insight.lr_find_text import target_field
from engine.models import build_model
from engine.training.optim import freeze_batchnorm_outside_head, phase_at, set_trainable
from engine.training.step import TrainStep, make_step

START_LR, END_LR, BATCHES = 1e-7, 10.0, 100  # fastai's defaults
SMOOTHING = 0.98  # EMA weight of the loss (fastai's); debiased, so the first points are not dragged to 0
DIVERGE = 4.0  # the smoothed loss at this many times its best: the run has exploded, stop
RULES = ("valley", "steepest")
MIN_POINTS = 10  # fewer batches than this before it stopped: no curve to read a suggestion from

Progress = Callable[[int, int, float, float], None]  # (batch done, batches, lr, smoothed loss)


@dataclass
class LRFinding:
    """What the range test saw and suggests; all plain numbers (the console and --json take it as is)."""

    lrs: list[float]
    losses: list[float]  # raw, one per batch
    smoothed: list[float]
    batches: int  # asked for
    start_lr: float
    end_lr: float
    rule: str
    suggestion: float | None
    stopped_early: str = ""  # why it stopped before its last batch, "" when it did not
    seconds: float = 0.0
    device: str = ""
    target: str | None = "optim.lr"  # the field the suggestion belongs in (see target_field)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def lr_at(i: int, n: int, start: float, end: float) -> float:
    """The i-th of n lrs spaced evenly on a log scale from start to end."""
    return start * (end / start) ** (i / max(n - 1, 1))


def smooth(losses: list[float], weight: float = SMOOTHING) -> list[float]:
    """Debiased exponential moving average (as TensorBoard and fastai draw it)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses):
        avg = weight * avg + (1 - weight) * loss
        out.append(avg / (1 - weight ** (i + 1)))
    return out


def _trimmed(lrs: list[float], losses: list[float]) -> tuple[list[float], list[float]]:
    # The first tenth is the loss before anything moved, the last few the explosion (fastai's cut).
    n = len(losses)
    lo, hi = n // 10, n - 5 if n > 15 else n
    return lrs[lo:hi], losses[lo:hi]


def suggest(lrs: list[float], smoothed: list[float], rule: str = "valley") -> float | None:
    """The suggested lr by `rule` (see the module's docstring); None when the curve is too short."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; use one of {', '.join(RULES)}")
    if len(smoothed) < MIN_POINTS:
        return None
    xs, ys = _trimmed(lrs, smoothed)
    if rule == "steepest":
        slope = np.gradient(np.asarray(ys), np.log(np.asarray(xs)))
        return float(xs[int(np.argmin(slope))])
    # fastai's valley: the longest decreasing subsequence of the loss, two thirds of the way down.
    n = len(ys)
    runs = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if ys[i] < ys[j] and runs[i] < runs[j] + 1:
                runs[i] = runs[j] + 1
        if runs[end] < runs[i]:
            end, start = i, i - runs[i]
    third = (end - start) / 3
    return float(xs[min(max(start + int(third) + int(third / 2), 0), n - 1)])


def lr_find(
    exp: Experiment,
    *,
    batches: int = BATCHES,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    rule: str = "valley",
    model: nn.Module | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LRFinding:
    """Run the range test for `exp` (on a copy of `model` when given, else of a new one).

    Raises engine.data.splits's DatasetMissing / DatasetUnusable when the data cannot be loaded, and the
    model's WeightsUnavailable, as a run would; `should_stop()` ends the test early (the console's
    cancel key)."""
    if not 0 < start_lr < end_lr:
        raise ValueError(f"the lr range must rise: start {start_lr:g}, end {end_lr:g}")
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; use one of {', '.join(RULES)}")
    t0 = time.perf_counter()
    trial = _Trial.of(exp, model, start_lr)
    lrs, losses, smoothed, why = trial.sweep(batches, start_lr, end_lr, progress, should_stop)
    notes = []
    if trial.phase is not None:
        notes.append(f"the first phase's layers trained ({trial.phase.train}); each phase sets its own lr")
    return LRFinding(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        batches=batches,
        start_lr=start_lr,
        end_lr=end_lr,
        rule=rule,
        suggestion=suggest(lrs, smoothed, rule),
        stopped_early=why,
        seconds=round(time.perf_counter() - t0, 2),
        device=trial.rt.describe(),
        target=target_field(exp),
        notes=notes,
    )


@dataclass
class _Trial:
    """A copy of the model with the trainer's step (engine.training.step.make_step), in the first
    phase's trainable layers, and the training split held on the device as a run holds it."""

    exp: Experiment
    rt: Runtime
    step: TrainStep
    augment: BatchAugment
    train_x: torch.Tensor
    train_y: torch.Tensor
    batch_size: int  # the run's, never above the split nor leaving a batch of one image
    classes: int
    phase: Phase | None

    @classmethod
    def of(cls, exp: Experiment, model: nn.Module | None, start_lr: float) -> _Trial:
        t = exp.train
        torch.manual_seed(t.seed)
        rt = select_runtime(t)
        splits = load_splits(exp.data)
        n_train = len(splits.train.labels)
        if n_train < 2:
            raise DatasetUnusable("the training split has fewer than 2 images: nothing to run the lr range test on")
        images = splits.train.images
        if model is None:
            model = build_model(exp.model, splits.num_classes, images.shape[-1], images.shape[1])
        trial = copy.deepcopy(model).to(rt.device, memory_format=rt.memory_format)
        _, phase, _ = phase_at(t, 0)
        if phase is not None:
            set_trainable(trial, phase.train)
        trial.train()
        if phase is not None and phase.train == "head":
            freeze_batchnorm_outside_head(trial)
        step = make_step(exp, trial, rt, lr=start_lr)
        augment = BatchAugment(exp.augment, splits.mean, splits.std)
        train_x, train_y = rt.hold(splits.train)
        bs = min(t.batch_size, n_train)
        if n_train % bs == 1:
            bs -= 1  # never a batch of one image: BatchNorm cannot train on it
        return cls(exp, rt, step, augment, train_x, train_y, bs, splits.num_classes, phase)

    def sweep(
        self,
        batches: int,
        start_lr: float,
        end_lr: float,
        progress: Progress | None,
        should_stop: Callable[[], bool] | None,
    ) -> tuple[list[float], list[float], list[float], str]:
        """The lrs, raw and smoothed losses of the batches trained, and why it stopped early ("" when it did not)."""
        rt, bs, n_train, alpha = self.rt, self.batch_size, len(self.train_y), self.exp.augment.mixup_alpha
        lrs: list[float] = []
        losses: list[float] = []
        smoothed: list[float] = []
        best, avg, why = math.inf, 0.0, ""
        perm, at = torch.randperm(n_train, device=rt.device), 0
        for i in range(batches):
            if should_stop is not None and should_stop():
                why = "cancelled"
                break
            if at + bs > n_train:  # a new pass over the data, in a new order
                perm, at = torch.randperm(n_train, device=rt.device), 0
            idx = perm[at : at + bs]
            at += bs
            lr = lr_at(i, batches, start_lr, end_lr)
            for group in self.step.optimizer.param_groups:
                group["lr"] = lr
            x = self.augment.train(self.train_x[idx]).contiguous(memory_format=rt.memory_format)
            y = target = self.train_y[idx]
            if alpha > 0:
                x, target = mixup(x, y, alpha, self.classes)
            _, loss = self.step(x, target)
            value = float(loss.item())
            if not math.isfinite(value):
                why = f"the loss became {value} at lr {lr:.3g}"
                break
            lrs.append(lr)
            losses.append(value)
            avg = SMOOTHING * avg + (1 - SMOOTHING) * value
            s = avg / (1 - SMOOTHING ** (i + 1))
            smoothed.append(s)
            best = min(best, s)
            if progress is not None:
                progress(i + 1, batches, lr, s)
            if s > DIVERGE * best and i > batches // 10:
                why = f"the loss exploded at lr {lr:.3g} ({s:.3g}, {DIVERGE:g}x its best {best:.3g})"
                break
        return lrs, losses, smoothed, why
