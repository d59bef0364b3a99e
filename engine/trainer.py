"""The training loop: one experiment into one run folder, reporting through events.

It reads top to bottom: load the data once (uint8, on the device), build the model, then for each
epoch shuffle, augment each batch on the device, step, and after the epoch validate, append a
metrics line, checkpoint, and tell the listener. Control comes in through a RunHandle checked at
every batch. User errors (a missing dataset, weights that cannot be had, a NaN loss, out of memory)
end the run with a state and a message, never an exception.
"""

from __future__ import annotations

import math
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine import checkpoint as ckpt
from engine.augment import BatchAugment, mixup
from engine.config import ConfigError, Experiment
from engine.data import DatasetMissing, Split, Splits, describe, load_splits
from engine.device import DeviceUnavailable, Runtime, select_runtime
from engine.evaluate import summarise_test
from engine.events import (
    BatchProgress,
    EpochFinished,
    Event,
    Listener,
    LogMessage,
    RunDiverged,
    RunFailed,
    RunFinished,
    RunHandle,
    RunStarted,
    RunStopped,
)
from engine.models import WeightsUnavailable, build_model, count_parameters
from engine.optim import LRSchedule, build_optimizer, phase_at, set_trainable
from engine.runs import RunFolder

PROGRESS_EVERY_S = 0.25  # batch events: a few per second, whatever the batch rate
STATUS_EVERY_S = 3.0  # live progress in status.json for views in other processes
EVAL_BATCH = 512


@dataclass
class RunResult:
    folder: RunFolder
    state: str
    summary: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    bad_input: bool = False  # failed because its input cannot train (data, weights, device, config), not in training


class _Diverged(Exception):
    pass


class _UserError(Exception):
    pass


def run_experiment(
    exp: Experiment,
    *,
    runs_dir: Path,
    preset: str | None = None,
    name: str | None = None,
    listener: Listener | None = None,
    handle: RunHandle | None = None,
) -> RunResult:
    folder = RunFolder.create(Path(runs_dir), exp, preset, name)
    return _Training(folder, exp, listener, handle, resume=False).run()


def resume_run(run_dir: Path, *, listener: Listener | None = None, handle: RunHandle | None = None) -> RunResult:
    folder = RunFolder(Path(run_dir))
    try:
        exp = folder.experiment()
    except (OSError, ValueError) as err:
        msg = f"cannot resume {run_dir}: its config.toml does not read ({err})"
        (listener or _ignore)(RunFailed(msg))
        return RunResult(folder, "failed", message=msg)
    return _Training(folder, exp, listener, handle, resume=True).run()


def _ignore(_event: Event) -> None:
    pass


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def batches_per_epoch(n: int, batch_size: int) -> int:
    # A last batch of one image would break BatchNorm in training mode: fold it away.
    steps = math.ceil(n / batch_size)
    return steps - 1 if steps > 1 and n % batch_size == 1 else steps


class _Training:
    def __init__(self, folder: RunFolder, exp: Experiment, listener: Listener | None, handle: RunHandle | None, resume: bool):
        self.folder, self.exp, self.resume = folder, exp, resume
        self.listener = listener or _ignore
        self.handle = handle or RunHandle()

    def emit(self, event: Event) -> None:
        try:
            self.listener(event)
        except Exception:  # a broken view must not kill the run
            traceback.print_exc()

    # --- the whole run, with its ways to end ----------------------------------------------------

    def run(self) -> RunResult:
        self.folder.write_status("running", message="starting")
        try:
            return self._train()
        except (DatasetMissing, WeightsUnavailable, DeviceUnavailable, ConfigError, ckpt.CheckpointError, _UserError) as err:
            return self._end_failed(str(err), bad_input=True)
        except torch.OutOfMemoryError:
            return self._end_failed(
                f"out of memory at batch size {self.exp.train.batch_size}: lower train.batch_size "
                "(or use precision bf16/fp16); the last finished epoch's checkpoint is kept"
            )
        except Exception as err:  # an engine bug: keep the details in the folder, a short line for the user
            (self.folder.path / "error.log").write_text(traceback.format_exc())
            return self._end_failed(f"{type(err).__name__}: {err} (details in {self.folder.path / 'error.log'})")

    def _end_failed(self, message: str, bad_input: bool = False) -> RunResult:
        self.folder.write_status("failed", message=message)
        self.emit(RunFailed(message))
        return RunResult(self.folder, "failed", message=message, bad_input=bad_input)

    def _train(self) -> RunResult:
        exp, t = self.exp, self.exp.train
        seed_everything(t.seed)
        rt = select_runtime(t)
        splits = load_splits(exp.data)
        if splits.train.labels.numel() == 0:
            raise _UserError("the training split is empty: check data.train_subset, data.val_split and data.test_split")
        size = splits.train.images.shape[-1]
        model = build_model(exp.model, splits.num_classes, size, splits.train.images.shape[1])
        model = model.to(rt.device, memory_format=rt.memory_format)
        params, _ = count_parameters(model)
        augment = BatchAugment(exp.augment, splits.mean, splits.std)
        scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.needs_scaler)

        bs = t.batch_size
        steps = batches_per_epoch(len(splits.train.labels), bs)
        start_epoch, best, history, saved = 0, None, [], None
        if self.resume:
            start_epoch, best, saved = self._restore(model, scaler, rt)
            history = self.folder.metrics()
        else:
            self.folder.truncate_metrics(0)

        step_model = model
        if t.compile:
            t0 = time.perf_counter()
            step_model = torch.compile(model)
            self.emit(LogMessage(f"torch.compile set up in {time.perf_counter() - t0:.1f} s (the first batches compile)"))

        train_x, train_y = _to_device(splits.train, rt)
        val = _to_device(splits.val, rt) if splits.val is not None else None
        self.folder.write_status(
            "running", message="", device=rt.describe(), precision=rt.precision, channels_last=rt.channels_last, params=params
        )
        self.emit(
            RunStarted(
                run_dir=str(self.folder.path),
                run_id=self.folder.id,
                device=str(rt.device),
                precision=rt.precision,
                channels_last=rt.channels_last,
                params=params,
                train_size=len(splits.train.labels),
                val_size=len(splits.val.labels) if splits.val is not None else 0,
                test_size=len(splits.test.labels) if splits.test is not None else 0,
                class_names=list(splits.class_names),
                epochs=t.epochs,
                start_epoch=start_epoch,
                batches_per_epoch=steps,
                history=history,
            )
        )

        if self.resume:
            self.emit(LogMessage(f"resumed after epoch {start_epoch}" if start_epoch else "no checkpoint yet: starting from epoch 1"))
        phase_index, schedule, optimizer = -1, None, None
        run_t0, images_done, last_status = time.perf_counter(), 0, 0.0
        bad_epochs = _epochs_since_best(history, best)
        for epoch in range(start_epoch, t.epochs):
            # Phase, optimizer and schedule for this epoch: a new phase gets an optimizer over the
            # parameters it trains and restarts the schedule at its own lr.
            idx, phase, phase_start = phase_at(t, epoch)
            if idx != phase_index or schedule is None:
                phase_index = idx
                if phase is not None:
                    set_trainable(model, phase.train)
                    self.emit(LogMessage(f"phase {idx + 1}: {phase.train} layers train, lr {phase.lr:g}, {phase.epochs} epochs"))
                base_lr = phase.lr if phase is not None else exp.optim.lr
                span = phase.epochs if phase is not None else t.epochs
                optimizer = build_optimizer(exp.optim, [p for p in model.parameters() if p.requires_grad], lr=base_lr)
                schedule = LRSchedule(exp.schedule, base_lr, span, steps)
                if saved is not None and saved.get("phase", idx) == idx:
                    # Resuming inside the phase the checkpoint was taken in: continue its state.
                    optimizer.load_state_dict(saved["optimizer"])
                    schedule.load_state_dict(saved["scheduler"])
                saved = None
            local_epoch = epoch - phase_start

            model.train()
            if phase is not None and phase.train == "head":
                _freeze_batchnorm_outside_head(model)
            e_t0 = time.perf_counter()
            perm = torch.randperm(len(train_y), device=rt.device)
            loss_sum = torch.zeros((), device=rt.device)
            correct = torch.zeros((), device=rt.device, dtype=torch.long)
            seen, last_emit, lr = 0, 0.0, schedule.lr(local_epoch, 0)
            for step in range(steps):
                self.handle.wait_if_paused()
                if self.handle.stop_requested:
                    return self._end_stopped(epoch)
                lr = schedule.lr(local_epoch, step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                idx_b = perm[step * bs : (step + 1) * bs] if step < steps - 1 else perm[step * bs :]
                x = augment.train(train_x[idx_b]).contiguous(memory_format=rt.memory_format)
                y = train_y[idx_b]
                target = y
                if exp.augment.mixup_alpha > 0:
                    x, target = mixup(x, y, exp.augment.mixup_alpha, splits.num_classes)
                logits, loss = train_step(step_model, model, optimizer, scaler, rt, x, target, exp)
                # Sums stay on the device: no host sync per batch.
                loss_sum += loss.detach() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)

                now = time.perf_counter()
                if now - last_emit >= PROGRESS_EVERY_S or step == steps - 1:
                    last_emit = now
                    mean_loss = loss_sum.item() / seen
                    if not math.isfinite(mean_loss):
                        return self._end_diverged(epoch, f"the training loss became {mean_loss} at epoch {epoch + 1}, batch {step + 1}")
                    elapsed = now - e_t0
                    ips = seen / elapsed if elapsed > 0 else 0.0
                    left = (steps - step - 1) * (elapsed / (step + 1)) + (t.epochs - epoch - 1) * steps * (elapsed / (step + 1))
                    self.emit(BatchProgress(epoch + 1, step + 1, steps, mean_loss, lr, ips, left))
                    if now - last_status >= STATUS_EVERY_S:
                        last_status = now
                        self.folder.write_status("running", progress={"epoch": epoch + 1, "batch": step + 1, "batches": steps, "images_per_sec": round(ips, 1)})
            train_seconds = time.perf_counter() - e_t0
            images_done += seen

            train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen
            val_loss = val_acc = None
            if val is not None:
                val_loss, val_acc, _ = evaluate(model, val, augment, rt)
                if not math.isfinite(val_loss):
                    return self._end_diverged(epoch, f"the validation loss became {val_loss} at epoch {epoch + 1}")
            schedule.end_epoch(val_loss)
            row = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "lr": lr,
                "seconds": round(time.perf_counter() - e_t0, 3),
                "images_per_sec": round(seen / train_seconds, 1),
                "phase": phase_index + 1 if phase is not None else None,
            }
            # Metrics first, then the checkpoint: a kill in between leaves a line the resume drops
            # (it truncates to the checkpoint's epoch), never an epoch without its line.
            self.folder.append_metrics(row)
            score = val_acc if val_acc is not None else train_acc
            improved = best is None or score > best
            if improved:
                best, bad_epochs = score, 0
            else:
                bad_epochs += 1
            state = self._state(model, optimizer, scaler, schedule, epoch + 1, best, phase_index)
            ckpt.save_checkpoint(self.folder.checkpoints / "last.pt", state)
            if improved:
                ckpt.save_checkpoint(self.folder.checkpoints / "best.pt", state)
            self.folder.write_status("running", progress={"epoch": epoch + 1, "batch": steps, "batches": steps, "images_per_sec": row["images_per_sec"]})
            self.emit(EpochFinished(row))
            if t.early_stop is not None and bad_epochs >= t.early_stop:
                self.emit(LogMessage(f"early stop: no better validation accuracy for {bad_epochs} epochs"))
                break

        return self._finish(model, splits, augment, rt, time.perf_counter() - run_t0)

    # --- endings ---------------------------------------------------------------------------------

    def _end_stopped(self, epoch: int) -> RunResult:
        msg = f"stopped during epoch {epoch + 1}; resumes from epoch {epoch + 1} (checkpoint of epoch {epoch})"
        self.folder.write_status("stopped", message=msg)
        self.emit(RunStopped(epoch, msg))
        return RunResult(self.folder, "stopped", message=msg)

    def _end_diverged(self, epoch: int, why: str) -> RunResult:
        msg = f"{why}; the checkpoint of epoch {epoch} is kept. Try a lower optim.lr or set optim.grad_clip."
        self.folder.write_status("diverged", message=msg)
        self.emit(RunDiverged(epoch, msg))
        return RunResult(self.folder, "diverged", message=msg)

    def _finish(self, model, splits: Splits, augment: BatchAugment, rt: Runtime, seconds: float) -> RunResult:
        rows = self.folder.metrics()
        vals = [(r["val_acc"], r["epoch"]) for r in rows if r.get("val_acc") is not None]
        summary: dict[str, Any] = {"epochs_done": len(rows), "seconds": round(seconds, 1), "class_names": list(splits.class_names)}
        if vals:
            best_acc, best_epoch = max(vals)
            summary.update(best_val_acc=best_acc, best_epoch=best_epoch)
        if rows:
            summary["final"] = {k: rows[-1].get(k) for k in ("train_loss", "train_acc", "val_loss", "val_acc")}
        if splits.test is not None:
            which = "best" if vals and (self.folder.checkpoints / "best.pt").exists() else "last"
            if which == "best":
                model.load_state_dict(ckpt.load_checkpoint(self.folder.checkpoints / "best.pt", rt.device)["model"])
            test = _to_device(splits.test, rt)
            test_loss, _, preds = evaluate(model, test, augment, rt)
            summary.update(summarise_test(preds.cpu(), splits.test.labels, list(splits.class_names), splits.test.images))
            summary.update(test_loss=test_loss, test_checkpoint=which)
        self.folder.write_summary(summary)
        self.folder.write_status("finished", message="")
        self.emit(RunFinished(summary))
        return RunResult(self.folder, "finished", summary)

    # --- checkpoints -----------------------------------------------------------------------------

    def _state(self, model, optimizer, scaler, schedule: LRSchedule, epoch: int, best, phase_index: int) -> dict:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": schedule.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": epoch,
            "phase": phase_index,
            "best": best,
            "rng": ckpt.rng_state(),
        }

    def _restore(self, model, scaler, rt: Runtime) -> tuple[int, float | None, dict | None]:
        """Model, scaler and RNG from last.pt; the optimizer and schedule states are returned for
        the epoch loop, which builds those per phase."""
        path = self.folder.checkpoints / "last.pt"
        if not path.exists():
            # Killed before the first epoch ended: nothing to continue, start over in place.
            self.folder.truncate_metrics(0)
            return 0, None, None
        state = ckpt.load_checkpoint(path, rt.device)
        model.load_state_dict(state["model"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        epoch = int(state["epoch"])
        self.folder.truncate_metrics(epoch)
        saved = {"optimizer": state["optimizer"], "scheduler": state["scheduler"], "phase": max(int(state.get("phase", 0)), 0)}
        return epoch, state.get("best"), saved


def train_step(step_model, model, optimizer, scaler, rt: Runtime, x, target, exp: Experiment):
    """One optimisation step (forward under autocast, loss, backward, clipping, step); `step_model`
    is the model or its torch.compile wrapper. Returns the logits and the loss, still on the device.
    `cnnlab bench` times this same function as pure compute."""
    with rt.autocast():
        logits = step_model(x)
        loss = F.cross_entropy(logits.float(), target, label_smoothing=exp.augment.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if exp.optim.grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), exp.optim.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return logits, loss


def _freeze_batchnorm_outside_head(model) -> None:
    # A frozen body keeps its BatchNorm statistics too (pretrained ones are worth keeping).
    head = set(map(id, model.head.modules()))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and id(m) not in head:
            m.eval()


def _epochs_since_best(history: list[dict], best: float | None) -> int:
    if best is None or not history:
        return 0
    key = "val_acc" if history[-1].get("val_acc") is not None else "train_acc"
    n = 0
    for row in reversed(history):
        if row.get(key) is not None and row[key] >= best:
            break
        n += 1
    return n


def _to_device(split: Split, rt: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    # The dataset lives on the device as uint8: one copy, augmentation happens there per batch.
    if rt.device.type == "cuda":
        return split.images.pin_memory().to(rt.device, non_blocking=True), split.labels.pin_memory().to(rt.device, non_blocking=True)
    return split.images.to(rt.device), split.labels.to(rt.device)


@torch.no_grad()
def evaluate(model, data: tuple[torch.Tensor, torch.Tensor], augment: BatchAugment, rt: Runtime) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy and the predictions over a split held on the device."""
    images, labels = data
    was_training = model.training
    model.eval()
    loss_sum, preds = 0.0, []
    for i in range(0, len(labels), EVAL_BATCH):
        x = augment.eval(images[i : i + EVAL_BATCH]).contiguous(memory_format=rt.memory_format)
        with rt.autocast():
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, labels[i : i + EVAL_BATCH], reduction="sum").item()
        preds.append(logits.argmax(1))
    model.train(was_training)
    p = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long, device=labels.device)
    n = max(len(labels), 1)
    return loss_sum / n, (p == labels).sum().item() / n, p


def dry_run(exp: Experiment) -> dict[str, Any]:
    """Validate, build the model and run one forward pass on a dummy batch: no dataset needed
    (a folder dataset still needs its class folders, to know the class count)."""
    rt = select_runtime(exp.train)
    classes, channels, size = describe(exp.data)
    model = build_model(exp.model, classes, size, channels).to(rt.device, memory_format=rt.memory_format).eval()
    x = torch.zeros(2, channels, size, size, device=rt.device).contiguous(memory_format=rt.memory_format)
    with torch.no_grad(), rt.autocast():
        out = model(x)
    total, trainable = count_parameters(model)
    return {
        "params": total,
        "trainable": trainable,
        "input_shape": list(x.shape),
        "output_shape": list(out.shape),
        "device": rt.describe(),
        "classes": classes,
    }


def evaluate_checkpoint(run_dir: Path, which: str = "best") -> dict[str, Any]:
    """Test-set figures of a run's checkpoint, on demand (`cnnlab show --checkpoint`)."""
    folder = RunFolder(Path(run_dir))
    exp = folder.experiment()
    rt = select_runtime(exp.train)
    splits = load_splits(exp.data)
    if splits.test is None:
        raise _UserError(f"{exp.data.dataset} has no labelled test set here (set data.test_split to carve one)")
    model = build_model(exp.model, splits.num_classes, splits.train.images.shape[-1], splits.train.images.shape[1])
    model = model.to(rt.device, memory_format=rt.memory_format)
    state = ckpt.load_checkpoint(folder.checkpoints / f"{which}.pt", rt.device)
    model.load_state_dict(state["model"])
    augment = BatchAugment(exp.augment, splits.mean, splits.std)
    test_loss, _, preds = evaluate(model, _to_device(splits.test, rt), augment, rt)
    out = summarise_test(preds.cpu(), splits.test.labels, list(splits.class_names), splits.test.images)
    out.update(test_loss=test_loss, test_checkpoint=which, checkpoint_epoch=state.get("epoch"))
    return out
