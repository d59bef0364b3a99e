"""The training loop: one experiment into one run folder, reporting through events.

It reads top to bottom: set up (the data once, uint8 on the device; the model; a resume's
checkpoint), then for each epoch enter its phase (optimizer and schedule), train it (shuffle,
augment each batch on the device, step) and end it (validate, append a metrics line, checkpoint,
tell the listeners). One process trains a run at a time: it holds the run's lock (engine.runfolder.lock)
from start to end. Between two batches engine.training.steering says whether to go on, pause, checkpoint or
stop (the handle, the control channel, the clock); a stop saves the exact position inside the epoch
(engine.training.position) and a resume continues at the next batch, from a point engine.training.resume_point has
checked. User errors (a missing dataset, weights that cannot be had, a NaN loss, out of memory) end
the run with a state and a message, never an exception.

Under torchrun the same loop runs on every rank (engine.processes.world): the model in DistributedDataParallel,
each rank its equal part of every batch of one permutation, the sums all-reduced, rank 0's decision
before each batch on every rank, and rank 0 alone writing the folder (the others wait at a barrier
after each checkpoint). A rank that is lost ends the run as failed, resumable.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
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
from engine.data.splits import DatasetMissing, DatasetUnusable, load_splits
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
from engine.experiment.config import ConfigError, Experiment
from engine.export.tensorboard_events import with_live_tensorboard
from engine.files import os_error_text
from engine.models import WeightsUnavailable, build_model, count_parameters
from engine.processes import world as distributed
from engine.processes.world import SINGLE, RankLost, World
from engine.runfolder.folder import RunFolder
from engine.runfolder.lock import RunLock
from engine.training import autotune
from engine.training import checkpoint as ckpt
from engine.training.live_status import LiveStatus
from engine.training.optim import LRSchedule, build_optimizer, freeze_batchnorm_outside_head, phase_at, set_trainable
from engine.training.position import POSITION_FILE, Position
from engine.training.predict import predict
from engine.training.resume_point import restore, resume_point
from engine.training.run_summary import summarise
from engine.training.steering import STOP, Steering
from engine.training.step import TrainStep

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
    world = _join(exp)
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
    """A stop was asked for: the run ends at this batch, its exact position saved."""


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
        self.folder, self.exp, self.resume, self.extend_to = folder, exp, resume, extend_to
        self.world = world
        if not world.main:  # rank 0 alone writes the folder and tells the listeners
            folder = self.folder = distributed.ReadOnlyFolder(folder.path)
            listener = _ignore
        self.listener = with_live_tensorboard(exp, listener or _ignore)  # train.tensorboard: events as it trains
        self.handle = handle or RunHandle()
        self.status = LiveStatus(folder)
        self.steer = Steering(folder, self.handle, self.status, self.emit, exp.train.checkpoint_minutes)
        self.position: Position | None = None  # where a resume continues inside an epoch
        self.stopped_at = (0, 0)  # (epoch, batch) of a stop
        self.diverged = ""  # over several ranks: rank 0 saw this, and every rank ends at the next batch

    def emit(self, event: Event) -> None:
        if not self.world.main:
            return
        self.status(event)
        try:
            self.listener(event)
        except Exception:  # a broken view must not kill the run
            traceback.print_exc()

    # --- the whole run, with its ways to end ----------------------------------------------------

    def run(self) -> RunResult:
        w = self.world
        lock = RunLock(self.folder.path)
        try:
            self.world.barrier()  # every rank has read the config before rank 0 writes anything
            if w.main:
                lock.acquire()  # RunLocked while another process trains it: nothing written
        except BaseException:
            w.leave()
            raise
        threads = self.exp.train.threads
        if w.distributed and w.device is None:  # CPU ranks: each its part of the cores
            threads = distributed.rank_threads(w.local_size, threads)
        self.cores = CoreShare(threads, on_change=self._cores_changed)
        try:
            self.fresh = self.folder.status().get("state") == "created"  # made for a detached process to start
            if w.main:
                self.status.write("running", "starting", **self._world_fields())
                self.status.start_heartbeat()
                self.steer.begin(time.time_ns())
            self.cores.start()  # this thread's pool: its share of the cores, resized between batches
            return self._run()
        finally:
            self.cores.close()
            self.status.stop_heartbeat()
            lock.release()
            w.leave()

    def _world_fields(self) -> dict[str, Any]:
        w = self.world
        if not w.distributed:
            return {"world_size": 1}
        return {"world_size": w.size, "launcher_pid": os.getppid()}  # torchrun's agent: what a detacher started

    def _cores_changed(self, threads: int, trainings: int) -> None:
        if not self.world.main:
            return
        with self.status.lock:
            self.status.write(self.status.state, threads=threads, trainings_sharing=trainings)
        if trainings > 1 or self.cores.fixed or self.cores.resizes > 1:  # alone at its start: nothing to say
            self.emit(LogMessage(cores_words(threads, trainings, self.cores.cores, bool(self.cores.fixed))))

    def _run(self) -> RunResult:
        self.epoch = 0  # where a stop or a divergence ends the run
        try:
            if self.extend_to is not None:
                self._extend(self.extend_to)
            return self._train()
        except _StopRequested:
            return self._end(RunStopped(self.epoch, self._stopped_message()))
        except RankLost as err:
            return self._lost(err)
        except _LossNotFinite as err:
            e = self.epoch
            self._remove_position()  # a place inside the epoch that diverged is no place to go on from
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
            if self.world.distributed and distributed.is_lost(err):  # DDP's own all-reduce found a rank gone
                return self._lost(err)
            log = self.folder.path / ("error.log" if self.world.main else f"error-rank{self.world.rank}.log")
            try:
                log.write_text(traceback.format_exc())
                where = f" (details in {log})"
            except OSError:
                where = ""
            return self._end(RunFailed(f"{type(err).__name__}: {err}{where}"))

    def _lost(self, err: Exception) -> RunResult:
        kept = f"the checkpoint of epoch {self.epoch} is kept" if self.epoch else "no epoch had finished"
        return self._end(RunFailed(f"{distributed.lost_words(err, self.world)}; {kept}; cnnlab resume continues it"))

    def _end(self, event: EndEvent, summary: dict[str, Any] | None = None, bad_input: bool = False) -> RunResult:
        """Every way a run ends: status.json says how, then the listeners hear it (even when the status
        cannot be written: the disk that failed the run may not take it)."""
        state, message = end_state(event), getattr(event, "message", "")
        if state == "finished":
            self._remove_position()
        try:
            self.status.write(state, message)
        except OSError:
            pass
        self.emit(event)
        return RunResult(self.folder, state, summary or {}, message, bad_input)

    def _stopped_message(self) -> str:
        epoch, batch = self.stopped_at
        by = self.steer.stop_by or "a stop request"
        if batch == 0:
            return f"stopped by {by} at the start of epoch {epoch + 1}; resume starts it (the exact position is saved)"
        return (
            f"stopped by {by} at epoch {epoch + 1}, batch {batch} of {self.steps}; "
            f"resume continues at batch {batch + 1} (the exact position is saved)"
        )

    def _extend(self, epochs: int) -> None:
        from engine.training import extend

        old, summary = self.exp.train.epochs, self.folder.summary()
        ext = extend.extension(self.exp, epochs, self.folder.epochs_kept())
        self.world.barrier()  # every rank has read the folder before rank 0 records the extension
        if self.world.main:
            extend.record(self.folder, ext, old, summary)
            (self.folder.path / "summary.json").unlink(missing_ok=True)  # its figures are of a finish now passed
        self.exp = ext.experiment
        self.emit(LogMessage(f"extended from {old} to {epochs} epochs: {ext.words}"))

    def _train(self) -> RunResult:
        self._set_up()
        with frozen_heap() as freeze:
            for epoch in range(self.start_epoch, self.exp.train.epochs):
                self.epoch = epoch
                self._enter_phase(epoch)
                freeze()  # and what the phase built (engine/compute/frozen_heap.py)
                trained = self._train_epoch(epoch)
                if self._end_epoch(epoch, trained):
                    break
        return self._finish()

    # --- setting up -------------------------------------------------------------------------------

    def _set_up(self) -> None:
        """Data on the device, the model, a resume's checkpoint; then RunStarted."""
        exp, t, w = self.exp, self.exp.train, self.world
        seed_everything(t.seed)
        self.rt = rt = self._runtime(select_runtime(t))
        self.splits = splits = load_splits(exp.data)
        if splits.train.labels.numel() == 0:
            raise DatasetUnusable(
                "the training split is empty: check data.train_subset, data.val_split and data.test_split"
            )
        images = splits.train.images
        self.model = build_model(exp.model, splits.num_classes, images.shape[-1], images.shape[1])
        # auto precision or layout: measured on copies of this model (engine.training.autotune), or as kept.
        self.rt = rt = self._settle(rt, tuple(images.shape[1:]), splits.num_classes)
        self.model = self._sync_bn(self.model.to(rt.device, memory_format=rt.memory_format))
        distributed.own_stream(w, t.seed)  # the same weights everywhere, each rank its own draws
        self.augment = BatchAugment(exp.augment, splits.mean, splits.std)
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.needs_scaler)
        if t.batch_size % w.size:
            problem = f"{t.batch_size} does not split evenly over the {w.size} ranks; take a multiple of {w.size}"
            raise ConfigError([("train.batch_size", problem)])
        self.steps = batches_per_epoch(w.usable(len(splits.train.labels)) // w.size, t.batch_size // w.size)
        # A resume continues from the exact position of a stop, else last.pt; killed before the first
        # epoch ended and without a position, it starts over in place. Rank 0 first: it tidies the folder.
        self.saved = self._restore() if self.resume and w.main else None
        w.barrier()
        if self.resume and not w.main:
            self.saved = self._restore()
        self.start_epoch, self.best = (self.saved.epoch, self.saved.best) if self.saved else (0, None)
        self.folder.truncate_metrics(self.start_epoch)  # each epoch's line once: the checkpoint's epochs
        w.barrier()
        history = self.folder.metrics()
        self.bad_epochs = _epochs_since_best(history, self.best)
        self.compiled = None
        if t.compile and not w.distributed:  # several ranks compile their DDP wrapper (_forward)
            t0 = time.perf_counter()
            self.compiled = torch.compile(self.model)
            took = time.perf_counter() - t0
            self.emit(LogMessage(f"torch.compile set up in {took:.1f} s (the first batches compile)"))
        self.train_x, self.train_y = rt.hold(splits.train)
        self.val = rt.hold(splits.val) if splits.val is not None else None
        self.phase_index, self.phase, self.phase_start, self.schedule = -1, None, 0, None
        self.run_t0 = time.perf_counter()
        self._started(history)

    def _runtime(self, rt: Runtime) -> Runtime:
        w = self.world
        if w.device is not None:  # a CUDA rank: its own GPU
            rt = dataclasses.replace(rt, device=w.device)
        if w.distributed:
            text = f"training on {w.size} ranks (torchrun, DistributedDataParallel); rank 0 on {rt.device}"
            self.emit(LogMessage(text))
        elif self.exp.train.devices > 1:  # a thread of the console, a sweep worker: not launched by torchrun
            text = (
                f"train.devices is {self.exp.train.devices} but this process was not started by torchrun, so it "
                "trains on one device (cnnlab run and a detached start launch torchrun)"
            )
            self.emit(LogMessage(text, "warning"))
        return rt

    def _settle(self, rule, shape: tuple[int, ...], classes: int):
        """Rank 0 measures (or recalls) auto's choice; every rank trains with it."""
        rt, self.tuning = (rule, None)
        if self.world.main:
            rt, self.tuning = autotune.settle(self.exp, rule, self.model, shape, classes)
        if self.world.distributed:
            chosen = self.world.broadcast_object((rt.precision, rt.channels_last))
            rt = dataclasses.replace(rule, precision=chosen[0], channels_last=chosen[1])
        if self.tuning is not None:
            self.emit(LogMessage(autotune.words(self.tuning)))
        return rt

    def _sync_bn(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.exp.train.sync_bn or not self.world.distributed:
            return model
        if self.rt.device.type != "cuda":
            text = "train.sync_bn: SyncBatchNorm is not available on a CPU; each rank normalises over its own part"
            self.emit(LogMessage(text, "warning"))
            return model
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def _restore(self) -> ckpt.Restored | None:
        """What resume_point chose, loaded into the model, the scaler and the RNGs (engine.training.resume_point)."""
        n = len(self.splits.train.labels)
        point = resume_point(self.folder.checkpoints, self.folder.metrics(), self.rt.device, n, self.steps)
        for note in point.notes:
            self.emit(LogMessage(note, "warning"))
        saved = restore(point, self.model, self.scaler, self.folder.checkpoints)
        w = self.world
        if w.rank and point.state is not None:  # rank 0's draws were restored: each rank its own
            ranks = point.state.get("rank_rng")
            if isinstance(ranks, list) and len(ranks) == w.size:
                ckpt.set_rng_state(ranks[w.rank])
            else:  # saved by another world size: a fresh stream of this rank's
                distributed.own_stream(w, self.exp.train.seed + int(point.state.get("epoch", 0)))
        self.position = point.position
        return saved

    def _started(self, history: list[dict[str, Any]]) -> None:
        rt, splits = self.rt, self.splits
        params, _ = count_parameters(self.model)
        self.folder.write_status(
            "running",
            message="",
            device=rt.describe(),
            precision=rt.precision,
            channels_last=rt.channels_last,
            params=params,
            autotune=self.tuning,
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
                start_epoch=self.start_epoch,
                batches_per_epoch=self.steps,
                history=history,
                start_batch=self.position.batch if self.position is not None else 0,
            )
        )
        if self.resume and not self.fresh:
            start, pos = self.start_epoch, self.position
            if pos is not None and pos.batch:
                text = f"resumed at epoch {start + 1}, batch {pos.batch + 1} of {self.steps}: the exact position saved"
            else:
                text = f"resumed after epoch {start}" if start else "no checkpoint yet: starting from epoch 1"
            self.emit(LogMessage(text))

    def _enter_phase(self, epoch: int) -> None:
        """The epoch's phase: a new one gets an optimizer over the parameters it trains and restarts
        the schedule at its own lr (without phases, one phase of every epoch at optim.lr)."""
        exp, t = self.exp, self.exp.train
        idx, phase, self.phase_start = phase_at(t, epoch)
        if idx == self.phase_index and self.schedule is not None:
            return
        self.phase_index, self.phase = idx, phase
        if phase is not None:
            set_trainable(self.model, phase.train)
            text = f"phase {idx + 1}: {phase.train} layers train, lr {phase.lr:g}, {phase.epochs} epochs"
            self.emit(LogMessage(text))
        base_lr = phase.lr if phase is not None else exp.optim.lr
        span = phase.epochs if phase is not None else t.epochs
        optimizer = build_optimizer(exp.optim, [p for p in self.model.parameters() if p.requires_grad], lr=base_lr)
        self.schedule = LRSchedule(exp.schedule, base_lr, span, self.steps)
        if self.saved is not None and self.saved.phase == idx:
            # Resuming inside the phase the checkpoint was taken in: continue its state.
            optimizer.load_state_dict(self.saved.optimizer)
            self.schedule.load_state_dict(self.saved.scheduler)
        self.saved = None
        self.step = TrainStep(
            self.model,
            optimizer,
            self.scaler,
            self.rt,
            label_smoothing=exp.augment.label_smoothing,
            grad_clip=exp.optim.grad_clip,
            forward=self._forward(),
        )

    def _forward(self) -> torch.nn.Module | None:
        """What a step runs in the model's place: its torch.compile, or over several ranks its
        DistributedDataParallel (made again per phase: it keeps the parameters that train at its making)."""
        if not self.world.distributed:
            return self.compiled
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.rt.device.index] if self.rt.device.type == "cuda" else None
        ddp = DistributedDataParallel(self.model, device_ids=ids)
        return torch.compile(ddp) if self.exp.train.compile else ddp

    # --- one epoch --------------------------------------------------------------------------------

    def _train_epoch(self, epoch: int) -> _EpochTrained:
        """Every batch of the epoch, in a fresh random order (or, resumed inside it, from the saved
        place on); sums stay on the device (no host sync per batch) and are read a few times a second
        for the progress event. Between two batches the steering may pause, checkpoint or stop."""
        steps, bs, rt, local = self.steps, self.exp.train.batch_size, self.rt, epoch - self.phase_start
        alpha = self.exp.augment.mixup_alpha
        self.model.train()
        if self.phase is not None and self.phase.train == "head":
            freeze_batchnorm_outside_head(self.model)
        pos, self.position = self.position, None
        if pos is None:  # one order for every rank: rank 0's
            perm = self.world.broadcast(torch.randperm(len(self.train_y), device=rt.device))
            pos = Position(epoch, 0, perm, *self._zero_sums())
            pos.lr = self.schedule.lr(local, 0)
        elif not self.world.main:  # a resumed epoch's sums so far are rank 0's to carry
            pos.loss_sum, pos.correct, pos.seen = *self._zero_sums()[:2], 0
        perm, loss_sum, correct, seen, lr = pos.perm, pos.loss_sum, pos.correct, pos.seen, pos.lr
        t0, before, paused0, last_emit = time.perf_counter(), pos.seconds, self.steer.paused_s, 0.0

        def elapsed() -> float:
            return before + time.perf_counter() - t0 - (self.steer.paused_s - paused0)

        usable = self.world.usable(len(perm))
        for step in range(pos.batch, steps):
            while (action := self._between_batches(epoch, step, steps)) is not None:
                self._save_position(Position(epoch, step, perm, loss_sum, correct, seen, elapsed(), lr))
                if action == STOP:
                    self.stopped_at = (epoch, step)
                    raise _StopRequested
            self.cores.tick()
            lr = self.schedule.lr(local, step)
            for group in self.step.optimizer.param_groups:
                group["lr"] = lr
            batch = perm[step * bs : (step + 1) * bs] if step < steps - 1 else perm[step * bs : usable]
            batch = self.world.part(batch)  # this rank's equal part of the batch
            x = self.augment.train(self.train_x[batch]).contiguous(memory_format=rt.memory_format)
            y = target = self.train_y[batch]
            if alpha > 0:
                x, target = mixup(x, y, alpha, self.splits.num_classes)
            logits, loss = self.step(x, target)
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            now = time.perf_counter()
            if now - last_emit >= PROGRESS_EVERY_S or step == steps - 1:
                last_emit = now
                self._progress(epoch, step, loss_sum.item() / seen, lr, seen, elapsed())
        trained = elapsed()
        loss_sum, correct, seen = self.world.all_sum(loss_sum, correct, seen)
        if not math.isfinite(loss_sum):  # the same sums on every rank: they all end here
            raise _LossNotFinite(self.diverged or f"the training loss became {loss_sum / seen} in epoch {epoch + 1}")
        ips = seen / trained if trained > 0 else 0.0
        return _EpochTrained(loss_sum / seen, correct / seen, lr, ips, time.perf_counter() - trained)

    def _between_batches(self, epoch: int, step: int, steps: int) -> str | None:
        """The steering's word (engine.training.steering) before a batch; over several ranks, rank 0's, on all of
        them at once (while rank 0 is paused, it tells the others to wait every so often)."""
        w = self.world
        if not w.distributed:
            return self.steer.between_batches(epoch, step, steps)
        if not w.main:
            while (action := w.decide(None)) == distributed.WAIT:
                pass
        else:
            action = (
                distributed.DIVERGED
                if self.diverged
                else self.steer.between_batches(epoch, step, steps, waiting=lambda: w.decide(distributed.WAIT))
            )
            w.decide(action)
        if action == distributed.DIVERGED:
            raise _LossNotFinite(self.diverged or "the training loss on rank 0 is not finite")
        return action

    def _zero_sums(self) -> tuple[torch.Tensor, torch.Tensor, int, float, float]:
        device = self.rt.device
        return torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long), 0, 0.0, 0.0

    def _save_position(self, pos: Position) -> None:
        """position.pt: the training state of the epochs done plus the place inside this one, with
        the RNG states of this moment (nothing has been drawn for the next batch yet). Over several
        ranks it holds the sums of all of them, and each rank's RNG states."""
        w = self.world
        if w.distributed:
            loss_sum, correct, seen = w.all_sum(pos.loss_sum, pos.correct, pos.seen)
            sums = torch.tensor(loss_sum, dtype=pos.loss_sum.dtype), torch.tensor(int(correct), dtype=torch.long)
            pos = dataclasses.replace(pos, loss_sum=sums[0], correct=sums[1], seen=int(seen))
        state = self._state(pos.epoch)
        state["position"] = pos.state()
        self._save(POSITION_FILE, state)
        written = time.strftime("%Y-%m-%dT%H:%M:%S")
        place = {"epoch": pos.epoch + 1, "batch": pos.batch, "batches": self.steps, "written": written}
        self.status.write(self.status.state, position=place)
        self.steer.saved(pos.epoch, pos.batch, self.steps)

    def _state(self, epoch: int) -> dict[str, Any]:
        """The training state to checkpoint after `epoch` epochs; over several ranks, with every rank's RNG states."""
        parts = self.model, self.step.optimizer, self.schedule, self.scaler
        state = ckpt.training_state(*parts, epoch=epoch, phase=self.phase_index, best=self.best)
        ranks = distributed.gather_rng(self.world, state["rng"])
        if ranks is not None:
            state["rank_rng"] = ranks
        return state

    def _save(self, name: str, state: dict[str, Any]) -> None:
        """checkpoints/NAME, written by rank 0 while the others wait."""
        if self.world.main:
            ckpt.save_checkpoint(self.folder.checkpoints / name, state)
        self.world.barrier()

    def _remove_position(self) -> None:
        if not self.world.main:
            return
        try:
            (self.folder.checkpoints / POSITION_FILE).unlink(missing_ok=True)
            with self.status.lock:
                self.status.write(self.status.state, position=None)
        except OSError:
            pass

    def _progress(self, epoch: int, step: int, mean_loss: float, lr: float, seen: int, elapsed: float) -> None:
        if not math.isfinite(mean_loss):
            text = f"the training loss became {mean_loss} at epoch {epoch + 1}, batch {step + 1}"
            if not self.world.distributed:
                raise _LossNotFinite(text)
            self.diverged = self.diverged or text  # told to every rank before the next batch
            return
        seen *= self.world.size  # the images of all ranks: equal parts
        steps, per_step = self.steps, elapsed / (step + 1)
        left = (steps - step - 1) * per_step + (self.exp.train.epochs - epoch - 1) * steps * per_step
        ips = seen / elapsed if elapsed > 0 else 0.0
        self.emit(BatchProgress(epoch + 1, step + 1, steps, mean_loss, lr, ips, left))

    def _end_epoch(self, epoch: int, trained: _EpochTrained) -> bool:
        """Validate, write the metrics line, then the checkpoints, then tell the listeners. True: stop
        early (no better validation accuracy for train.early_stop epochs)."""
        val_loss = val_acc = None
        if self.val is not None:
            val_loss, val_acc, _ = predict(self.model, self.val, self.augment, self.rt, self.world)
            if not math.isfinite(val_loss):
                raise _LossNotFinite(f"the validation loss became {val_loss} at epoch {epoch + 1}")
        self.schedule.end_epoch(val_loss)
        row = {
            "epoch": epoch + 1,
            "train_loss": trained.loss,
            "train_acc": trained.acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": trained.lr,
            "seconds": round(time.perf_counter() - trained.started, 3),
            "images_per_sec": round(trained.images_per_sec, 1),
            "phase": self.phase_index + 1 if self.phase is not None else None,
            "peak_memory_mb": peak_memory_mb(str(self.rt.device)),  # the epoch's peak (CUDA), the process's (CPU)
        }
        if self.world.distributed:  # every device's, so the run screen shows each rank's memory
            row["peak_memory_mb_ranks"] = self.world.each(row["peak_memory_mb"])
        # Metrics first, then the checkpoint: a kill in between leaves a line the resume drops
        # (it truncates to the checkpoint's epoch), never an epoch without its line.
        self.folder.append_metrics(row)
        score = val_acc if val_acc is not None else trained.acc
        improved = self.best is None or score > self.best
        self.best, self.bad_epochs = (score, 0) if improved else (self.best, self.bad_epochs + 1)
        state = self._state(epoch + 1)
        self._save("last.pt", state)
        with self.status.lock:  # status.json: one writer at a time (the heartbeat is another thread)
            self.folder.record_checkpoint(epoch + 1, "last")  # `cnnlab runs` counts the epochs a resume keeps
        if improved:
            self._save("best.pt", state)
            with self.status.lock:
                self.folder.record_checkpoint(epoch + 1, "best")
        self._remove_position()  # the place inside this epoch is passed: last.pt holds its end
        self.steer.saved(epoch + 1, 0, self.steps)
        self.emit(EpochFinished(row))  # LiveStatus writes the epoch's place into status.json
        patience = self.exp.train.early_stop
        if patience is not None and self.bad_epochs >= patience:
            self.emit(LogMessage(f"early stop: no better validation accuracy for {self.bad_epochs} epochs"))
            return True
        return False

    def _finish(self) -> RunResult:
        """summary.json (engine.training.run_summary), then the end."""
        seconds = time.perf_counter() - self.run_t0
        parts = self.folder, self.splits, self.model, self.augment, self.rt
        warn = lambda text: self.emit(LogMessage(text, "warning"))  # noqa: E731
        summary = summarise(*parts, seconds=seconds, warn=warn, world=self.world)
        return self._end(RunFinished(summary), summary)


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
