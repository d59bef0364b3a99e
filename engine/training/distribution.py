"""How a run is spread over processes, as one object the trainer asks: `distribution(world)`.

The training loop is the same on one process and on every rank torchrun started (engine.processes.world);
what differs is asked of this object and answered here alone. `Distribution` is a run in one process:
it writes the folder, its collectives are identities, its model runs as itself (or its torch.compile).
`DataParallel` is one rank of several: rank 0 alone writes the folder and tells the listeners (the
others see a read-only folder and wait at a barrier after each checkpoint), the model runs in
DistributedDataParallel, each rank trains its equal part of every batch of rank 0's permutation, the
sums are all-reduced, rank 0's word before each batch holds on every rank, a checkpoint carries every
rank's RNG states, and a loss that is not finite on rank 0 ends every rank at the next batch.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.compute.device import Runtime
from engine.events import Event, LogMessage
from engine.experiment.config import Experiment
from engine.experiment.errors import ConfigError
from engine.processes import world as distributed
from engine.processes.world import SINGLE, World
from engine.runfolder.folder import RunFolder
from engine.training import autotune
from engine.training import checkpoint as ckpt
from engine.training.position import Position
from engine.training.steering import Steering

Emit = Callable[[Event], None]
DIVERGED = distributed.DIVERGED  # between_batches' word when rank 0 saw a loss that is not finite


class Distribution:
    """A run in this one process: it writes the folder, and every collective is the identity."""

    def __init__(self, world: World = SINGLE) -> None:
        self.world = world
        self.diverged = ""  # over several ranks: what rank 0 saw, told to every rank before the next batch

    # --- who writes -------------------------------------------------------------------------------

    @property
    def writes(self) -> bool:
        """Whether this process writes the run folder and tells the listeners (rank 0 alone does)."""
        return self.world.main

    @property
    def size(self) -> int:
        return self.world.size

    def folder(self, folder: RunFolder) -> RunFolder:
        """The run folder as this process writes it."""
        return folder

    def error_log(self, folder: RunFolder) -> Path:
        return folder.path / "error.log"

    def status_fields(self) -> dict[str, Any]:
        return {"world_size": 1}

    def threads(self, asked: int | None) -> int | None:
        """The compute threads this process asks of its share of the cores (train.threads, or all it may have)."""
        return asked

    # --- collectives ------------------------------------------------------------------------------

    def barrier(self) -> None:
        self.world.barrier()

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.world.broadcast(tensor)

    def all_sum(self, *values: torch.Tensor | float | int) -> list[float]:
        return self.world.all_sum(*values)

    def usable(self, n: int) -> int:
        """Images of an epoch the ranks can share equally."""
        return self.world.usable(n)

    def part(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's equal part of a batch."""
        return self.world.part(batch)

    def writer_first(self, work: Callable[[], Any]) -> Any:
        """`work()` on rank 0, then on the others once it is done (rank 0 tidies the folder as it reads)."""
        done = work()
        self.barrier()
        return done

    def is_lost(self, err: BaseException) -> bool:
        """Whether an engine error is a collective's whose rank has gone (DDP's own all-reduce)."""
        return False

    # --- setting up -------------------------------------------------------------------------------

    def runtime(self, rt: Runtime, exp: Experiment, emit: Emit) -> Runtime:
        if exp.train.devices > 1:  # a thread of the console, a sweep worker: not launched by torchrun
            text = (
                f"train.devices is {exp.train.devices} but this process was not started by torchrun, so it "
                "trains on one device (cnnlab run and a detached start launch torchrun)"
            )
            emit(LogMessage(text, "warning"))
        return rt

    def settle(self, exp: Experiment, rule: Runtime, model: torch.nn.Module, shape: tuple[int, ...], classes: int):
        """auto's precision and layout (engine.training.autotune): (runtime, its record or None)."""
        return autotune.settle(exp, rule, model, shape, classes)

    def prepare(self, model: torch.nn.Module, exp: Experiment, rt: Runtime, emit: Emit) -> torch.nn.Module:
        """The model on its device and layout, ready for the ranks' draws (each rank its own)."""
        return model.to(rt.device, memory_format=rt.memory_format)

    def batches(self, n: int, batch_size: int, per_epoch: Callable[[int, int], int]) -> int:
        """Batches of an epoch of n images at this batch size (`per_epoch(images, batch)`), per rank."""
        return per_epoch(n, batch_size)

    def compile(self, model: torch.nn.Module, exp: Experiment, emit: Emit) -> torch.nn.Module | None:
        """The model's torch.compile, made once (train.compile), or None."""
        if not exp.train.compile:
            return None
        t0 = time.perf_counter()
        compiled = torch.compile(model)
        emit(LogMessage(f"torch.compile set up in {time.perf_counter() - t0:.1f} s (the first batches compile)"))
        return compiled

    def forward(self, model: torch.nn.Module, compiled: torch.nn.Module | None, rt: Runtime, exp: Experiment):
        """What a phase's step runs in the model's place (None: the model itself)."""
        return compiled

    def restore_rng(self, state: dict[str, Any] | None, seed: int) -> None:
        """After a resume restored rank 0's draws: each other rank its own."""

    # --- training ---------------------------------------------------------------------------------

    def resumed(self, pos: Position, device: torch.device) -> Position:
        """A resumed epoch's position as this rank carries it."""
        return pos

    def between_batches(self, steer: Steering, epoch: int, step: int, steps: int) -> str | None:
        """The steering's word before a batch (engine.training.steering)."""
        return steer.between_batches(epoch, step, steps)

    def defers_divergence(self, text: str) -> bool:
        """A loss that is not finite at a progress read: False ends the run at once; True, it ends at
        the next batch on every rank (between_batches says DIVERGED)."""
        return False

    def summed(self, pos: Position) -> Position:
        """The position with the sums of every rank, for position.pt."""
        return pos

    def with_ranks_rng(self, state: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint's training state with every rank's RNG states."""
        return state

    def save(self, path: Path, state: dict[str, Any]) -> None:
        """A checkpoint, written by rank 0 while the others wait."""
        if self.writes:
            ckpt.save_checkpoint(path, state)
        self.barrier()

    def memory_fields(self, peak_mb: float | None) -> dict[str, Any]:
        """Extra fields of the metrics line about every device's memory."""
        return {}


class DataParallel(Distribution):
    """One of several ranks: DistributedDataParallel, rank 0 writing (see the module's docstring)."""

    def folder(self, folder: RunFolder) -> RunFolder:
        return folder if self.writes else distributed.ReadOnlyFolder(folder.path)

    def error_log(self, folder: RunFolder) -> Path:
        return folder.path / ("error.log" if self.writes else f"error-rank{self.world.rank}.log")

    def status_fields(self) -> dict[str, Any]:
        return {"world_size": self.size, "launcher_pid": os.getppid()}  # torchrun's agent: what a detacher started

    def threads(self, asked: int | None) -> int | None:
        if self.world.device is None:  # CPU ranks: each its part of the cores
            return distributed.rank_threads(self.world.local_size, asked)
        return asked

    def writer_first(self, work: Callable[[], Any]) -> Any:
        done = work() if self.writes else None
        self.barrier()
        return done if self.writes else work()

    def is_lost(self, err: BaseException) -> bool:
        return distributed.is_lost(err)

    def runtime(self, rt: Runtime, exp: Experiment, emit: Emit) -> Runtime:
        if self.world.device is not None:  # a CUDA rank: its own GPU
            rt = dataclasses.replace(rt, device=self.world.device)
        emit(LogMessage(f"training on {self.size} ranks (torchrun, DistributedDataParallel); rank 0 on {rt.device}"))
        return rt

    def settle(self, exp: Experiment, rule: Runtime, model: torch.nn.Module, shape: tuple[int, ...], classes: int):
        """Rank 0 measures (or recalls) auto's choice; every rank trains with it."""
        rt, tuning = autotune.settle(exp, rule, model, shape, classes) if self.writes else (rule, None)
        precision, channels_last = self.world.broadcast_object((rt.precision, rt.channels_last))
        return dataclasses.replace(rule, precision=precision, channels_last=channels_last), tuning

    def prepare(self, model: torch.nn.Module, exp: Experiment, rt: Runtime, emit: Emit) -> torch.nn.Module:
        model = model.to(rt.device, memory_format=rt.memory_format)
        if exp.train.sync_bn:
            if rt.device.type != "cuda":
                text = "train.sync_bn: SyncBatchNorm is not available on a CPU; each rank normalises over its own part"
                emit(LogMessage(text, "warning"))
            else:
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        distributed.own_stream(self.world, exp.train.seed)  # the same weights everywhere, each rank its own draws
        return model

    def batches(self, n: int, batch_size: int, per_epoch: Callable[[int, int], int]) -> int:
        if batch_size % self.size:
            problem = f"{batch_size} does not split evenly over the {self.size} ranks; take a multiple of {self.size}"
            raise ConfigError([("train.batch_size", problem)])
        return per_epoch(self.usable(n) // self.size, batch_size // self.size)

    def compile(self, model: torch.nn.Module, exp: Experiment, emit: Emit) -> torch.nn.Module | None:
        return None  # each phase compiles its DDP wrapper (forward)

    def forward(self, model: torch.nn.Module, compiled: torch.nn.Module | None, rt: Runtime, exp: Experiment):
        """Made again per phase: DistributedDataParallel keeps the parameters that train at its making."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [rt.device.index] if rt.device.type == "cuda" else None
        ddp = DistributedDataParallel(model, device_ids=ids)
        return torch.compile(ddp) if exp.train.compile else ddp

    def restore_rng(self, state: dict[str, Any] | None, seed: int) -> None:
        w = self.world
        if not w.rank or state is None:
            return
        ranks = state.get("rank_rng")
        if isinstance(ranks, list) and len(ranks) == w.size:
            ckpt.set_rng_state(ranks[w.rank])
        else:  # saved by another world size: a fresh stream of this rank's
            distributed.own_stream(w, seed + int(state.get("epoch", 0)))

    def resumed(self, pos: Position, device: torch.device) -> Position:
        if not self.writes:  # a resumed epoch's sums so far are rank 0's to carry
            pos.loss_sum = torch.zeros((), device=device)
            pos.correct = torch.zeros((), device=device, dtype=torch.long)
            pos.seen = 0
        return pos

    def between_batches(self, steer: Steering, epoch: int, step: int, steps: int) -> str | None:
        """Rank 0's word on all ranks at once (while rank 0 is paused, it tells the others to wait every so often)."""
        w = self.world
        if not w.main:
            while (action := w.decide(None)) == distributed.WAIT:
                pass
            return action
        if self.diverged:
            action = DIVERGED
        else:
            action = steer.between_batches(epoch, step, steps, waiting=lambda: w.decide(distributed.WAIT))
        w.decide(action)
        return action

    def defers_divergence(self, text: str) -> bool:
        self.diverged = self.diverged or text
        return True

    def summed(self, pos: Position) -> Position:
        loss_sum, correct, seen = self.all_sum(pos.loss_sum, pos.correct, pos.seen)
        sums = torch.tensor(loss_sum, dtype=pos.loss_sum.dtype), torch.tensor(int(correct), dtype=torch.long)
        return dataclasses.replace(pos, loss_sum=sums[0], correct=sums[1], seen=int(seen))

    def with_ranks_rng(self, state: dict[str, Any]) -> dict[str, Any]:
        ranks = distributed.gather_rng(self.world, state["rng"])
        if ranks is not None:
            state["rank_rng"] = ranks
        return state

    def memory_fields(self, peak_mb: float | None) -> dict[str, Any]:
        return {"peak_memory_mb_ranks": self.world.each(peak_mb)}  # the run screen shows each rank's memory


def distribution(world: World) -> Distribution:
    return DataParallel(world) if world.distributed else Distribution(world)
