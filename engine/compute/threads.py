"""The cores a training computes on: its fair share of the machine's, shared with every other cnnlab
training running on it.

Two trainings whose thread pools each span every core fight over them, and in total train several
times slower than one alone; with pools sized to their share they do not (docs/benchmarks.md has
the figures). A passive OpenMP wait policy or pinning each to its own core does not help, so the
rule is only the sizes of the pools.

Every training claims its place in a folder local to the machine (engine.compute.machine.claims_dir): a
small file it holds an exclusive flock on while it trains. A claim whose lock is free belongs to a
process that is gone (however it ended) and is swept away. Each training's share is its part of the
cores: a fixed count (train.threads, or a sweep worker's pinned cores, engine.compute.cores) is taken as
asked; the cores left are split evenly between the others, the older claims taking the odd cores.
A running training looks again every REBALANCE_S between two batches, so the first one shrinks
when a second starts and grows back when it ends. torch.set_num_threads is per thread in an OpenMP
build, so `tick` runs on the training thread itself.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.compute.machine import claims_dir
from engine.files import COMMAND_FILE_MODE, lock_held, make_command_dir

REBALANCE_S = 1.0
WORKER_CPUS_ENV = "CNNLAB_WORKER_CPUS"  # engine.compute.cores: a sweep worker pinned to these cores


@dataclass(frozen=True)
class Claim:
    name: str  # the claim file's name: unique per training
    since: float
    fixed: int | None  # threads asked for; None: a fair share


def fair_shares(cores: int, claims: list[Claim]) -> dict[str, int]:
    """Threads per claim: the fixed ones as asked, the rest of the cores split evenly (the older claims
    take the odd cores); never below one."""
    fixed = sum(c.fixed for c in claims if c.fixed)
    flexible = sorted((c for c in claims if not c.fixed), key=lambda c: (c.since, c.name))
    base, extra = divmod(max(cores - fixed, 0), len(flexible)) if flexible else (0, 0)
    shares = {c.name: int(c.fixed) for c in claims if c.fixed}
    for i, c in enumerate(flexible):
        shares[c.name] = max(1, base + (1 if i < extra else 0))
    return shares


def live_claims(folder: Path) -> list[Claim]:
    """The claims of trainings running now on this machine; those of ended processes are removed."""
    claims = []
    try:
        paths = sorted(folder.glob("*.claim"))
    except OSError:
        return []
    for path in paths:
        if lock_held(path) is not True:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # a folder of that name, or one this user may not remove: not a claim, passed over
            continue
        try:
            doc = json.loads(path.read_text())
            fixed = doc.get("fixed")
            since = float(doc["since"])
            fixed = int(fixed) if fixed else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError):
            continue  # being written this instant (or damaged while its holder lives): counted at the next look
        claims.append(Claim(path.name, since, fixed if fixed is None or fixed > 0 else None))
    return claims


def worker_cores() -> int | None:
    """A sweep worker's pinned cores (engine.compute.cores hands them over), as a fixed count."""
    text = os.environ.get(WORKER_CPUS_ENV, "")
    cpus = [c for c in text.split(",") if c.strip()]
    return len(cpus) or None


class CoreShare:
    """A training's claim: `start()` before the first batch, `tick()` between batches, `close()` at
    the end. `on_change(threads, trainings)` hears every resize (the first included)."""

    def __init__(
        self,
        fixed: int | None = None,
        *,
        folder: Path | None = None,
        on_change: Callable[[int, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fixed = fixed or worker_cores()
        self.folder = folder or claims_dir()
        self.on_change = on_change or (lambda threads, trainings: None)
        self.clock = clock
        self.threads = 0
        self.trainings = 1
        self.resizes = 0  # on_change calls so far
        self.cores = 1
        self._fd: int | None = None
        self._path: Path | None = None
        self._looked = float("-inf")
        self._before: int | None = None

    def start(self) -> int:
        import torch

        self._before = torch.get_num_threads()
        # What this process may use: torch's own count (one per core, or OMP_NUM_THREADS), at most the
        # cores it may run on (a container's or taskset's limit).
        self.cores = max(1, min(self._before, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
        try:
            make_command_dir(self.folder)
            name = f"{socket.gethostname()}-{os.getpid()}-{time.monotonic_ns()}.claim"
            path = self.folder / name
            fd = os.open(path, os.O_RDWR | os.O_CREAT, COMMAND_FILE_MODE)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, json.dumps({"pid": os.getpid(), "since": time.time(), "fixed": self.fixed}).encode())
            self._fd, self._path = fd, path
        except OSError:
            self._fd = self._path = None  # no claims folder: this training sizes itself alone
        self.tick(force=True)
        return self.threads

    def tick(self, force: bool = False) -> int:
        """Resize the pool to this training's share now (at most every REBALANCE_S unless forced)."""
        now = self.clock()
        if not force and now - self._looked < REBALANCE_S:
            return self.threads
        self._looked = now
        if self._path is None:
            claims = [Claim("self", 0.0, self.fixed)]
            mine = "self"
        else:
            claims = live_claims(self.folder)
            mine = self._path.name
            if mine not in {c.name for c in claims}:
                claims.append(Claim(mine, time.time(), self.fixed))
        threads = fair_shares(self.cores, claims)[mine] if self.fixed is None else self.fixed
        if threads != self.threads or len(claims) != self.trainings:
            import torch

            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
            self.threads, self.trainings = threads, len(claims)
            self.resizes += 1
            self.on_change(threads, len(claims))
        return self.threads

    def close(self) -> None:
        if self._fd is not None:
            try:
                self._path.unlink(missing_ok=True)
            except OSError:
                pass
            os.close(self._fd)  # drops the lock
            self._fd = self._path = None
        if self._before is not None:
            import torch

            torch.set_num_threads(self._before)  # the process's next training starts from torch's count again
            self._before = None


def words(threads: int, trainings: int, cores: int, fixed: bool) -> str:
    """The line a run logs when its share is set or changes."""
    pool = f"{threads} thread{'s' if threads != 1 else ''}"
    if fixed:
        return f"cores: {pool}, as asked (train.threads or the sweep worker's cores)"
    if trainings <= 1:
        return f"cores: {pool}, the {cores} core{'s' if cores != 1 else ''} this run may use"
    return f"cores: {pool}, this run's share of {cores} with {trainings - 1} other cnnlab training(s) on this machine"
