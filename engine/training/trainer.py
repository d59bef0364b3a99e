"""The training loop: one experiment into one run folder, reporting through events.

It reads top to bottom as a training script: set up (the data once, uint8 on the device; the model; a
resume's checkpoint), then for each epoch enter its phase (engine.training.phases: optimizer, schedule,
step), train it (shuffle, augment each batch on the device, step), validate, write its metrics line,
checkpoint (engine.training.checkpointing) and tell the listeners. What is not the loop's own idea is a
collaborator it calls: status.json (engine.training.live_status, also a listener of every event), the
steering between two batches (engine.training.steering: go on, pause, checkpoint or stop, from the
handle, the control channel and the clock), the best score and early stop (engine.training.early_stop),
and how the run is spread over processes (engine.training.distribution). One process trains a run at a
time: it holds the run's lock (engine.runfolder.lock) from start to end. A stop saves the exact position
inside the epoch (engine.training.position) and a resume continues at the next batch, from a point
engine.training.resume_point has checked. User errors (a missing dataset, weights that cannot be had, a
NaN loss, out of memory) end the run with a state and a message, never an exception.

Under torchrun the same loop runs on every rank (engine.processes.world), each asking its
engine.training.distribution.DataParallel what one process would do alone: the model in
DistributedDataParallel, each rank its equal part of every batch, the sums all-reduced, rank 0's decision
before each batch on every rank, and rank 0 alone writing the folder. A rank that is lost ends the run
as failed, resumable.
"""

from __future__ import annotations

import errno
import math
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.compute.device import DeviceUnavailable, Runtime, select_runtime
from engine.compute.device_stats import peak_memory_mb
from engine.compute.frozen_heap import frozen_heap
from engine.compute.threads import CoreShare
from engine.compute.threads import words as cores_words
from engine.data.augment import BatchAugment, mixup
from engine.data.splits import DatasetMissing, DatasetUnusable, Splits, load_splits
from engine.events import (
    BatchProgress,
    EndEvent,
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
    end_state,
)
from engine.experiment.config import Experiment
from engine.experiment.errors import ConfigError
from engine.export.tensorboard_events import with_live_tensorboard
from engine.files import os_error_text
from engine.models import WeightsUnavailable, build_model, count_parameters, user_file
from engine.processes import world as distributed
from engine.processes.world import SINGLE, RankLost, World
from engine.runfolder.folder import RunFolder
from engine.runfolder.json_files import newer_status
from engine.runfolder.lock import RunLock
from engine.training import autotune
from engine.training import checkpoint as ckpt
from engine.training.checkpointing import Checkpoints
from engine.training.distribution import DIVERGED, distribution
from engine.training.dry_run import check_model
from engine.training.early_stop import BestScore
from engine.training.live_status import LiveStatus
from engine.training.phases import Phases
from engine.training.position import Position
from engine.training.predict import predict
from engine.training.resume_point import restore, resume_point
from engine.training.run_summary import summarise
from engine.training.steering import STOP, Steering
from engine.training.step import scaler_for

PROGRESS_EVERY_S = 0.25  # batch events: a few per second, whatever the batch rate


@dataclass
class RunResult:
    folder: RunFolder
    state: str
    summary: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    bad_input: bool = False  # failed because its input cannot train (data, weights, device, config), not in training


def run_experiment(
    exp: Experiment,
    *,
    runs_dir: Path,
    preset: str | None = None,
    name: str | None = None,
    listener: Listener | None = None,
    handle: RunHandle | None = None,
) -> RunResult:
    """Train `exp` in a new run folder under runs_dir. Raises ConfigError, before any folder is made,
    when the model cannot be built (engine.training.dry_run.check_model); every later fault ends the run."""
    world = _join(exp)
    if world.main:
        check_model(exp)  # a model that cannot be built (the user's file, a library's name): no folder, one message
    folder = RunFolder.create(Path(runs_dir), exp, preset, name) if world.main else None
    if world.distributed:  # under torchrun: one folder, made by rank 0
        folder = RunFolder(Path(world.broadcast_object(str(folder.path) if folder else None)))
    return _Training(folder, exp, listener, handle, resume=False, world=world).run()


def resume_run(
    run_dir: Path, *, listener: Listener | None = None, handle: RunHandle | None = None, epochs: int | None = None
) -> RunResult:
    """Continue a run from its checkpoint (the exact position of a stop, else the last finished epoch).
    `epochs` above the run's own trains it on to that many (engine.training.extend). Raises run_lock.RunLocked,
    writing nothing, while another process trains the run."""
    folder = RunFolder(Path(run_dir))
    newer = newer_status(folder.path / "status.json")
    if newer:  # its files may mean what this cnnlab does not know: nothing of it is touched
        msg = f"cannot resume {run_dir}: {newer}"
        (listener or _ignore)(RunFailed(msg))
        return RunResult(folder, "failed", message=msg, bad_input=True)
    try:
        exp = folder.experiment()
    except (OSError, ValueError) as err:
        msg = f"cannot resume {run_dir}: its config.toml does not read ({err})"
        (listener or _ignore)(RunFailed(msg))
        return RunResult(folder, "failed", message=msg, bad_input=True)
    extend_to = epochs if epochs is not None and epochs != exp.train.epochs else None
    return _Training(folder, exp, listener, handle, resume=True, extend_to=extend_to, world=_join(exp)).run()


def _join(exp: Experiment) -> World:
    """The ranks torchrun started (engine.processes.world), NCCL when the run trains on CUDA."""
    if not distributed.under_torchrun():
        return SINGLE
    cuda = exp.train.device in ("auto", "cuda") and torch.cuda.is_available()
    return distributed.join("cuda" if cuda else "cpu")


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


class _StopRequested(Exception):
    """A stop was asked for: the run ends at this batch (0-based `batch` of `epoch`), its exact position saved."""

    def __init__(self, epoch: int, batch: int, batches: int) -> None:
        super().__init__(epoch, batch, batches)
        self.epoch, self.batch, self.batches = epoch, batch, batches


class _LossNotFinite(Exception):
    """A NaN or infinite loss: the run has diverged; str(e) says which loss, where."""


@dataclass
class _EpochTrained:
    """The training half of an epoch's metrics line."""

    loss: float
    acc: float
    lr: float  # at the epoch's last batch
    images_per_sec: float  # training only, without the validation and pauses
    started: float  # perf_counter at the epoch's start, as if it had run without a stop or a pause


@dataclass
class _Ready:
    """Everything a run has before its first batch (what _set_up made)."""

    rt: Runtime
    splits: Splits
    model: torch.nn.Module
    augment: BatchAugment
    scaler: torch.amp.GradScaler
    steps: int  # batches per epoch, per rank
    start_epoch: int
    best: BestScore
    phases: Phases
    train_x: torch.Tensor
    train_y: torch.Tensor
    val: tuple[torch.Tensor, torch.Tensor] | None
    position: Position | None  # where a resume continues inside its first epoch; None once it has
    started: float  # perf_counter when the run's training began


class _Training:
    def __init__(
        self,
        folder: RunFolder,
        exp: Experiment,
        listener: Listener | None,
        handle: RunHandle | None,
        resume: bool,
        extend_to: int | None = None,
        world: World = SINGLE,
    ):
        self.exp, self.resume, self.extend_to = exp, resume, extend_to
        self.ranks = ranks = distribution(world)
        self.folder = folder = ranks.folder(folder)  # rank 0 alone writes the folder and tells the listeners
        listener = (listener or _ignore) if ranks.writes else _ignore
        self.listener = with_live_tensorboard(exp, listener)  # train.tensorboard: events as it trains
        self.handle = handle or RunHandle()
        self.status = LiveStatus(folder)
        self.steer = Steering(folder, self.handle, self.status, self.emit, exp.train.checkpoint_minutes)
        self.checkpoints = Checkpoints(folder, self.status, self.steer, ranks)
        self.cores = CoreShare(ranks.threads(exp.train.threads), on_change=self._cores_changed)
        self.epoch = 0  # where a stop or a divergence ends the run
        self.model: torch.nn.Module | None = None  # the model it trains, once set up

    def emit(self, event: Event) -> None:
        if not self.ranks.writes:
            return
        self.status(event)
        try:
            self.listener(event)
        except Exception:  # a broken view must not kill the run
            traceback.print_exc()

    # --- the whole run, with its ways to end ----------------------------------------------------

    def run(self) -> RunResult:
        ranks, lock = self.ranks, RunLock(self.folder.path)
        try:
            ranks.barrier()  # every rank has read the config before rank 0 writes anything
            if ranks.writes:
                lock.acquire()  # RunLocked while another process trains it: nothing written
        except BaseException:
            ranks.world.leave()
            raise
        try:
            fresh = self.folder.status().get("state") == "created"  # made for a detached process to start
            if ranks.writes:
                self.status.write("running", "starting", **ranks.status_fields())
                self.status.start_heartbeat()
                self.steer.begin(time.time_ns())
            self.cores.start()  # this thread's pool: its share of the cores, resized between batches
            return self._run(fresh)
        finally:
            self.cores.close()
            self.status.stop_heartbeat()
            lock.release()
            ranks.world.leave()

    def _cores_changed(self, threads: int, trainings: int) -> None:
        if not self.ranks.writes:
            return
        self.status.update(threads=threads, trainings_sharing=trainings)
        if trainings > 1 or self.cores.fixed or self.cores.resizes > 1:  # alone at its start: nothing to say
            self.emit(LogMessage(cores_words(threads, trainings, self.cores.cores, bool(self.cores.fixed))))

    def _run(self, fresh: bool) -> RunResult:
        try:
            if self.extend_to is not None:
                self._extend(self.extend_to)
            return self._train(fresh)
        except _StopRequested as stop:
            return self._end(RunStopped(self.epoch, self._stopped_message(stop)))
        except RankLost as err:
            return self._lost(err)
        except _LossNotFinite as err:
            e = self.epoch
            self.checkpoints.remove_position()  # a place inside the epoch that diverged is no place to go on from
            kept = f"the checkpoint of epoch {e} is kept" if e else "no epoch had finished, so no checkpoint is kept"
            advice = "Try a lower optim.lr or set optim.grad_clip."
            return self._end(RunDiverged(e, f"{err}; {kept}. {advice}"))
        except (DatasetMissing, WeightsUnavailable, DeviceUnavailable, ConfigError, ckpt.CheckpointError) as err:
            return self._end(RunFailed(str(err)), bad_input=True)
        except torch.OutOfMemoryError:
            advice = "lower train.batch_size (or use precision bf16/fp16); the last finished epoch's checkpoint is kept"
            return self._end(RunFailed(f"out of memory at batch size {self.exp.train.batch_size}: {advice}"))
        except OSError as err:  # a full disk, a read-only or unreadable path: the checkpoints before it are kept
            full = err.errno in (errno.ENOSPC, errno.EDQUOT)
            kept = "; the checkpoints written before it are kept" if full else ""
            return self._end(RunFailed(os_error_text(err) + kept), bad_input=not full)
        except Exception as err:  # an engine bug: keep the details in the folder, a short line for the user
            if self.ranks.is_lost(err):  # DDP's own all-reduce found a rank gone
                return self._lost(err)
            log = self.ranks.error_log(self.folder)
            try:
                log.write_text(traceback.format_exc())
                where = f" (details in {log})"
            except OSError:
                where = ""
            return self._end(RunFailed(f"{type(err).__name__}: {err}{where}"))

    def _lost(self, err: Exception) -> RunResult:
        kept = f"the checkpoint of epoch {self.epoch} is kept" if self.epoch else "no epoch had finished"
        words = distributed.lost_words(err, self.ranks.world)
        return self._end(RunFailed(f"{words}; {kept}; cnnlab resume continues it"))

    def _end(self, event: EndEvent, summary: dict[str, Any] | None = None, bad_input: bool = False) -> RunResult:
        """Every way a run ends: status.json says how, then the listeners hear it (even when the status
        cannot be written: the disk that failed the run may not take it)."""
        state, message = end_state(event), getattr(event, "message", "")
        if state == "finished":
            self.checkpoints.remove_position()
        try:
            self.status.write(state, message)
        except OSError:
            pass
        self.emit(event)
        return RunResult(self.folder, state, summary or {}, message, bad_input)

    def _stopped_message(self, stop: _StopRequested) -> str:
        epoch, batch = stop.epoch, stop.batch
        by = self.steer.stop_by or "a stop request"
        if batch == 0:
            return f"stopped by {by} at the start of epoch {epoch + 1}; resume starts it (the exact position is saved)"
        return (
            f"stopped by {by} at epoch {epoch + 1}, batch {batch} of {stop.batches}; "
            f"resume continues at batch {batch + 1} (the exact position is saved)"
        )

    def _extend(self, epochs: int) -> None:
        from engine.training import extend

        old, summary = self.exp.train.epochs, self.folder.summary()
        ext = extend.extension(self.exp, epochs, self.folder.epochs_kept())
        self.ranks.barrier()  # every rank has read the folder before rank 0 records the extension
        if self.ranks.writes:
            extend.record(self.folder, ext, old, summary)
            (self.folder.path / "summary.json").unlink(missing_ok=True)  # its figures are of a finish now passed
        self.exp = ext.experiment
        self.emit(LogMessage(f"extended from {old} to {epochs} epochs: {ext.words}"))

    # --- the training script ----------------------------------------------------------------------

    def _train(self, fresh: bool) -> RunResult:
        """Set up; then each epoch: its phase, its batches, validation, the metrics line, the
        checkpoints, the listeners; then the summary."""
        r = self._set_up(fresh)
        with frozen_heap() as freeze:
            for epoch in range(r.start_epoch, self.exp.train.epochs):
                self.epoch = epoch
                r.phases.enter(epoch)
                freeze()  # and what the phase built (engine/compute/frozen_heap.py)
                trained = self._train_epoch(r, epoch)
                val_loss, val_acc = self._validate(r, epoch)
                r.phases.schedule.end_epoch(val_loss)
                row = self._metrics_row(r, epoch, trained, val_loss, val_acc)
                # Metrics first, then the checkpoint: a kill in between leaves a line the resume drops
                # (it truncates to the checkpoint's epoch), never an epoch without its line.
                self.folder.append_metrics(row)
                improved = r.best.update(val_acc if val_acc is not None else trained.acc)
                self.checkpoints.epoch_end(epoch + 1, self._state(r, epoch + 1), improved, r.steps)
                self.emit(EpochFinished(row))  # LiveStatus writes the epoch's place into status.json
                if r.best.out_of_patience:
                    text = f"early stop: no better validation accuracy for {r.best.bad_epochs} epochs"
                    self.emit(LogMessage(text))
                    break
        return self._finish(r)

    # --- setting up -------------------------------------------------------------------------------

    def _set_up(self, fresh: bool) -> _Ready:
        """Data on the device, the model, a resume's checkpoint; then RunStarted."""
        exp, t, ranks = self.exp, self.exp.train, self.ranks
        seed_everything(t.seed)
        rt = ranks.runtime(select_runtime(t), exp, self.emit)
        splits = load_splits(exp.data)
        if splits.train.labels.numel() == 0:
            raise DatasetUnusable(
                "the training split is empty: check data.train_subset, data.val_split and data.test_split"
            )
        images = splits.train.images
        # A run that starts keeps a copy of the user's model file; it and every resume build from the copy.
        starts = not self.resume or fresh
        keep = ranks.writes and starts
        ranks.writer_first(lambda: user_file.keep_copy(self.folder.path, exp.model) if keep else None)
        if ranks.writes:
            self.folder.write_preprocessing(splits.preprocessing())
        model_cfg = user_file.for_run(self.folder.path, exp.model)
        model = build_model(model_cfg, splits.num_classes, images.shape[-1], images.shape[1])
        # auto precision or layout: measured on copies of this model (engine.training.autotune), or as kept.
        rt, tuning = ranks.settle(exp, rt, model, tuple(images.shape[1:]), splits.num_classes)
        if tuning is not None:
            self.emit(LogMessage(autotune.words(tuning)))
        self.model = model = ranks.prepare(model, exp, rt, self.emit)
        augment = BatchAugment(exp.augment, splits.mean, splits.std)
        scaler = scaler_for(rt)
        steps = ranks.batches(len(splits.train.labels), t.batch_size, batches_per_epoch)
        # A resume continues from the exact position of a stop, else last.pt; killed before the first
        # epoch ended and without a position, it starts over in place. Rank 0 first: it tidies the folder.
        restored = (lambda: self._restore(rt, splits, model, scaler, steps)) if self.resume else (lambda: (None, None))
        saved, position = ranks.writer_first(restored)
        start_epoch, best = (saved.epoch, saved.best) if saved else (0, None)
        self.folder.truncate_metrics(start_epoch)  # each epoch's line once: the checkpoint's epochs
        ranks.barrier()
        history = self.folder.metrics()
        compiled = ranks.compile(model, exp, self.emit)
        train_x, train_y = rt.hold(splits.train)
        r = _Ready(
            rt=rt,
            splits=splits,
            model=model,
            augment=augment,
            scaler=scaler,
            steps=steps,
            start_epoch=start_epoch,
            best=BestScore(best, history, t.early_stop),
            phases=Phases(
                exp, model, rt, scaler, steps, lambda: ranks.forward(model, compiled, rt, exp), self.emit, saved
            ),
            train_x=train_x,
            train_y=train_y,
            val=rt.hold(splits.val) if splits.val is not None else None,
            position=position,
            started=time.perf_counter(),
        )
        self._started(r, history, tuning, fresh)
        return r

    def _restore(
        self, rt: Runtime, splits: Splits, model: torch.nn.Module, scaler: torch.amp.GradScaler, steps: int
    ) -> tuple[ckpt.Restored | None, Position | None]:
        """What resume_point chose, loaded into the model, the scaler and the RNGs (engine.training.resume_point),
        and the position inside an epoch it continues from."""
        n = len(splits.train.labels)
        point = resume_point(self.folder.checkpoints, self.folder.metrics(), rt.device, n, steps)
        for note in point.notes:
            self.emit(LogMessage(note, "warning"))
        saved = restore(point, model, scaler, self.folder.checkpoints)
        self.ranks.restore_rng(point.state, self.exp.train.seed)  # rank 0's draws were restored: each rank its own
        return saved, point.position

    def _started(self, r: _Ready, history: list[dict[str, Any]], tuning: dict[str, Any] | None, fresh: bool) -> None:
        rt, splits = r.rt, r.splits
        params, _ = count_parameters(r.model)
        self.status.write(  # through LiveStatus, so its later writes keep this message, not "starting"
            "running",
            "",
            device=rt.describe(),
            precision=rt.precision,
            channels_last=rt.channels_last,
            params=params,
            autotune=tuning,
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
                epochs=self.exp.train.epochs,
                start_epoch=r.start_epoch,
                batches_per_epoch=r.steps,
                history=history,
                start_batch=r.position.batch if r.position is not None else 0,
            )
        )
        if self.resume and not fresh:
            start, pos = r.start_epoch, r.position
            if pos is not None and pos.batch:
                text = f"resumed at epoch {start + 1}, batch {pos.batch + 1} of {r.steps}: the exact position saved"
            else:
                text = f"resumed after epoch {start}" if start else "no checkpoint yet: starting from epoch 1"
            self.emit(LogMessage(text))

    # --- one epoch --------------------------------------------------------------------------------

    def _train_epoch(self, r: _Ready, epoch: int) -> _EpochTrained:
        """Every batch of the epoch, in a fresh random order (or, resumed inside it, from the saved
        place on); sums stay on the device (no host sync per batch) and are read a few times a second
        for the progress event. Between two batches the steering may pause, checkpoint or stop."""
        steps, bs, rt, phases = r.steps, self.exp.train.batch_size, r.rt, r.phases
        alpha = self.exp.augment.mixup_alpha
        phases.train_mode()
        pos, r.position = r.position, None
        if pos is None:  # one order for every rank: rank 0's
            perm = self.ranks.broadcast(torch.randperm(len(r.train_y), device=rt.device))
            pos = Position(epoch, 0, perm, *_zero_sums(rt.device))
            pos.lr = phases.lr(epoch, 0)
        else:
            pos = self.ranks.resumed(pos, rt.device)
        perm, loss_sum, correct, seen, lr = pos.perm, pos.loss_sum, pos.correct, pos.seen, pos.lr
        t0, before, paused0, last_emit = time.perf_counter(), pos.seconds, self.steer.paused_s, 0.0

        def elapsed() -> float:
            return before + time.perf_counter() - t0 - (self.steer.paused_s - paused0)

        usable = self.ranks.usable(len(perm))
        for step in range(pos.batch, steps):
            while (action := self._between_batches(epoch, step, steps)) is not None:
                self._save_position(r, Position(epoch, step, perm, loss_sum, correct, seen, elapsed(), lr))
                if action == STOP:
                    raise _StopRequested(epoch, step, steps)
            self.cores.tick()
            lr = phases.lr(epoch, step)
            phases.set_lr(lr)
            batch = perm[step * bs : (step + 1) * bs] if step < steps - 1 else perm[step * bs : usable]
            batch = self.ranks.part(batch)  # this rank's equal part of the batch
            x = r.augment.train(r.train_x[batch]).contiguous(memory_format=rt.memory_format)
            y = target = r.train_y[batch]
            if alpha > 0:
                x, target = mixup(x, y, alpha, r.splits.num_classes)
            logits, loss = phases.step(x, target)
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            now = time.perf_counter()
            if now - last_emit >= PROGRESS_EVERY_S or step == steps - 1:
                last_emit = now
                self._progress(r, epoch, step, loss_sum.item() / seen, lr, seen, elapsed())
        trained = elapsed()
        loss_sum, correct, seen = self.ranks.all_sum(loss_sum, correct, seen)
        if not math.isfinite(loss_sum):  # the same sums on every rank: they all end here
            raise _LossNotFinite(
                self.ranks.diverged or f"the training loss became {loss_sum / seen} in epoch {epoch + 1}"
            )
        ips = seen / trained if trained > 0 else 0.0
        return _EpochTrained(loss_sum / seen, correct / seen, lr, ips, time.perf_counter() - trained)

    def _between_batches(self, epoch: int, step: int, steps: int) -> str | None:
        """The steering's word before a batch (over several ranks, rank 0's on all of them)."""
        action = self.ranks.between_batches(self.steer, epoch, step, steps)
        if action == DIVERGED:
            raise _LossNotFinite(self.ranks.diverged or "the training loss on rank 0 is not finite")
        return action

    def _progress(
        self, r: _Ready, epoch: int, step: int, mean_loss: float, lr: float, seen: int, elapsed: float
    ) -> None:
        if not math.isfinite(mean_loss):
            text = f"the training loss became {mean_loss} at epoch {epoch + 1}, batch {step + 1}"
            if not self.ranks.defers_divergence(text):  # over several ranks: told to every rank before the next batch
                raise _LossNotFinite(text)
            return
        seen *= self.ranks.size  # the images of all ranks: equal parts
        steps, per_step = r.steps, elapsed / (step + 1)
        left = (steps - step - 1) * per_step + (self.exp.train.epochs - epoch - 1) * steps * per_step
        ips = seen / elapsed if elapsed > 0 else 0.0
        self.emit(BatchProgress(epoch + 1, step + 1, steps, mean_loss, lr, ips, left))

    def _validate(self, r: _Ready, epoch: int) -> tuple[float | None, float | None]:
        """The validation split's loss and accuracy (None, None without one)."""
        if r.val is None:
            return None, None
        val_loss, val_acc, _ = predict(r.model, r.val, r.augment, r.rt, self.ranks.world)
        if not math.isfinite(val_loss):
            raise _LossNotFinite(f"the validation loss became {val_loss} at epoch {epoch + 1}")
        return val_loss, val_acc

    def _metrics_row(
        self, r: _Ready, epoch: int, trained: _EpochTrained, val_loss: float | None, val_acc: float | None
    ) -> dict[str, Any]:
        """The epoch's line of metrics.jsonl."""
        peak = peak_memory_mb(str(r.rt.device))  # the epoch's peak (CUDA), the process's (CPU)
        return {
            "epoch": epoch + 1,
            "train_loss": trained.loss,
            "train_acc": trained.acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": trained.lr,
            "seconds": round(time.perf_counter() - trained.started, 3),
            "images_per_sec": round(trained.images_per_sec, 1),
            "phase": r.phases.number,
            "peak_memory_mb": peak,
            **self.ranks.memory_fields(peak),
        }

    # --- checkpoints and the end ------------------------------------------------------------------

    def _state(self, r: _Ready, epoch: int) -> dict[str, Any]:
        """The training state to checkpoint after `epoch` epochs; over several ranks, with every rank's RNG states."""
        p = r.phases
        state = ckpt.training_state(
            r.model, p.step.optimizer, p.schedule, r.scaler, epoch=epoch, phase=p.index, best=r.best.best
        )
        return self.ranks.with_ranks_rng(state)

    def _save_position(self, r: _Ready, pos: Position) -> None:
        """position.pt: the training state of the epochs done plus the place inside this one, with
        the RNG states of this moment (nothing has been drawn for the next batch yet). Over several
        ranks it holds the sums of all of them, and each rank's RNG states."""
        pos = self.ranks.summed(pos)
        self.checkpoints.position(pos, self._state(r, pos.epoch), r.steps)

    def _finish(self, r: _Ready) -> RunResult:
        """summary.json (engine.training.run_summary), then the end."""
        seconds = time.perf_counter() - r.started
        warn = lambda text: self.emit(LogMessage(text, "warning"))  # noqa: E731
        summary = summarise(
            self.folder, r.splits, r.model, r.augment, r.rt, seconds=seconds, warn=warn, world=self.ranks.world
        )
        return self._end(RunFinished(summary), summary)


def _zero_sums(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int, float, float]:
    """An epoch's sums before its first batch: loss, correct, seen, seconds, lr."""
    return torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long), 0, 0.0, 0.0
