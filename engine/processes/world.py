"""One run over several processes: the world a rank lives in, when torchrun started it.

torchrun (one machine: `cnnlab run … --set train.devices=N`, engine.processes.torchrun; several: by hand, see the
README) starts one process per device with RANK, LOCAL_RANK, WORLD_SIZE and LOCAL_WORLD_SIZE in its
environment. `join` reads them, initialises the process group (NCCL on CUDA, gloo on a CPU) with a
timeout, pins the rank to its GPU and sizes a CPU rank's threads to its part of the cores. Outside
torchrun the world is SINGLE, whose operations do nothing, so the trainer reads the same either way.

What the ranks share, and how (torch.distributed only: no collective of cnnlab's own):

    the gradients          DistributedDataParallel (engine.training.trainer wraps the model)
    the metrics' sums      all_sum: train and validation losses and counts, summed over the ranks
    the test predictions   gather: every rank's share of the test set, in order, for the confusion matrix
    the batch order        broadcast from rank 0: one permutation, each rank its part of every batch
    what to do next        rank 0 reads the control channel and the clock; `decide` broadcasts its
                           answer before each batch, so a pause or a stop reaches every rank at once

Control travels over a gloo group of its own, so that on CUDA a per-batch decision costs no device sync.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from engine.processes.torchrun import under_torchrun
from engine.runfolder.folder import RunFolder

TIMEOUT_S = float(os.environ.get("CNNLAB_DIST_TIMEOUT_S", "600"))  # a rank waits this long for the others, at most
WAIT = "wait"  # rank 0 is paused: keep waiting for its next decision
DIVERGED = "diverged"  # rank 0 saw a loss that is not finite
_ACTIONS = (None, "stop", "checkpoint", "timed", WAIT, DIVERGED)


class RankLost(Exception):
    """Another rank of the run has gone (killed, crashed): the collective this rank was in failed."""


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    device: torch.device | None = None  # cuda:LOCAL_RANK on a GPU rank; None: the run's own choice
    _control: Any = field(default=None, repr=False)  # the gloo group decisions travel on

    @property
    def main(self) -> bool:
        """Whether this rank writes the run folder (rank 0 alone does)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    # --- shards ------------------------------------------------------------------------------------

    def usable(self, n: int) -> int:
        """Images of an epoch the ranks can share equally: the last n % size wait for the next epoch's order."""
        return n - n % self.size

    def part(self, items: torch.Tensor) -> torch.Tensor:
        """This rank's equal, contiguous part of `items` (whose length the world size divides)."""
        if self.size == 1:
            return items
        share = len(items) // self.size
        return items[self.rank * share : (self.rank + 1) * share]

    def slice_of(self, n: int) -> slice:
        """This rank's contiguous block of n items (the last blocks a little shorter), for evaluation."""
        per = -(-n // self.size)
        return slice(min(n, self.rank * per), min(n, (self.rank + 1) * per))

    # --- collectives: identities in a world of one ----------------------------------------------------

    def all_sum(self, *values: torch.Tensor | float | int) -> list[float]:
        """The sums over the ranks of these numbers (tensors or plain), as floats."""
        flat = torch.stack([torch.as_tensor(v, dtype=torch.float64).detach().cpu().reshape(()) for v in values])
        if self.size > 1:
            self._call(dist.all_reduce, flat, group=self._control)
        return flat.tolist()

    def each(self, value: float | None) -> list[float | None]:
        """Every rank's `value` in rank order, on every rank (None where a rank had none)."""
        if self.size == 1:
            return [value]
        slots = torch.zeros(self.size, dtype=torch.float64)
        slots[self.rank] = float("nan") if value is None else value
        self._call(dist.all_reduce, slots, group=self._control)
        return [None if v != v else v for v in slots.tolist()]  # NaN: that rank had no figure

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's tensor on every rank (in place; on the tensor's device)."""
        if self.size > 1:
            self._call(dist.broadcast, tensor, 0, group=None if tensor.is_cuda else self._control)
        return tensor

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's `obj` (plain data) on every rank."""
        if self.size == 1:
            return obj
        box = [obj if self.main else None]
        self._call(dist.broadcast_object_list, box, 0, group=self._control)
        return box[0]

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's rows of `tensor` (CPU, blocks of slice_of), concatenated in rank order on every rank."""
        if self.size == 1:
            return tensor
        sizes = [int(s) for s in self._sizes(len(tensor))]
        longest = max(sizes)
        padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype)
        padded[: len(tensor)] = tensor
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        self._call(dist.all_gather, parts, padded, group=self._control)
        return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)])

    def _sizes(self, n: int) -> list[float]:
        sizes = torch.zeros(self.size, dtype=torch.float64)
        sizes[self.rank] = n
        self._call(dist.all_reduce, sizes, group=self._control)
        return sizes.tolist()

    def barrier(self) -> None:
        if self.size > 1:
            self._call(dist.barrier, group=self._control)

    def decide(self, action: str | None) -> str | None:
        """Rank 0's decision before a batch on every rank (others pass anything)."""
        if self.size == 1:
            return action
        code = torch.tensor([_ACTIONS.index(action) if self.main else 0], dtype=torch.int64)
        self._call(dist.broadcast, code, 0, group=self._control)
        return _ACTIONS[int(code)]

    def _call(self, op, *args, **kwargs):
        try:
            return op(*args, **kwargs)
        except (RuntimeError, dist.DistError) as err:  # a peer's socket closed, or the timeout passed
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise RankLost(f"rank {self.rank} of {self.size} lost the others ({first})") from None

    def leave(self) -> None:
        if self.size > 1 and dist.is_initialized():
            try:
                dist.destroy_process_group()
            except (RuntimeError, ValueError):
                pass  # a group a lost rank broke: the process ends anyway


SINGLE = World()


def is_lost(err: BaseException) -> bool:
    """Whether an error is a collective's that failed because a rank has gone (DDP's own all-reduce)."""
    if isinstance(err, (RankLost, dist.DistError)):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(k in text for k in ("gloo", "nccl", "connection closed", "timed out"))


def lost_words(err: BaseException, world: World) -> str:
    if isinstance(err, RankLost):
        return str(err)
    first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    return f"rank {world.rank} of {world.size} lost the others ({first})"


def join(device_kind: str) -> World:
    """The world torchrun started this process into (SINGLE outside torchrun or with one process).
    `device_kind`: "cuda" pins the rank to cuda:LOCAL_RANK and talks NCCL; anything else, gloo."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if not under_torchrun() or size < 2:
        return SINGLE
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(size)))
    timeout = datetime.timedelta(seconds=TIMEOUT_S)
    device = None
    if device_kind == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    control = dist.new_group(backend="gloo", timeout=timeout) if device_kind == "cuda" else dist.group.WORLD
    return World(rank, size, local, local_size, device, control)


def rank_threads(local_size: int, asked: int | None) -> int:
    """A CPU rank's compute threads: train.threads if set, else its equal part of the cores it may use."""
    if asked:
        return asked
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, local_size))


def own_stream(world: World, seed: int) -> None:
    """Each rank its own augmentation and dropout draws; rank 0 keeps the stream a one-device run has."""
    if world.rank:
        torch.manual_seed((seed + 0x9E3779B97F4A7C15 * world.rank) % 2**63)


def gather_rng(world: World, state: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Every rank's RNG states on rank 0 (for a checkpoint), None elsewhere and in a world of one."""
    if world.size == 1:
        return None
    boxes: list[Any] = [None] * world.size if world.main else None
    world._call(dist.gather_object, state, boxes, 0, group=world._control)
    return boxes


class ReadOnlyFolder(RunFolder):
    """A run folder as a rank other than 0 sees it: read like any other, written by rank 0 alone."""

    def write_config(self, *args: Any, **kwargs: Any) -> None:
        pass

    def append_metrics(self, row: dict[str, Any]) -> None:
        pass

    def truncate_metrics(self, epochs_kept: int) -> None:
        pass

    def write_status(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        pass

    def write_summary(self, summary: dict[str, Any]) -> None:
        pass
