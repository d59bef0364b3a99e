"""Sharing a machine between sweep workers: each its own cores, or its own GPUs.

Two trainings whose thread pools each span every core spin against each other and together train
several times slower than one alone (docs/benchmarks.md). So each worker process gets a disjoint set of cores: it is
pinned to them (sched_setaffinity), its intra-op pool is sized to them (torch.set_num_threads, and
OMP/MKL/OpenBLAS told the same before they start), its inter-op pool is one thread. On a box with
GPUs each worker sees its own GPUs through CUDA_VISIBLE_DEVICES, and the CPU cores are split too
(they feed the GPUs and run the Python).

The parent computes each worker's share (`plan_workers`) and hands it over in the environment
(`worker_env`); the worker applies it first thing (`apply_share`), before torch starts its pools.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass

CPUS_ENV = "CNNLAB_WORKER_CPUS"  # "0,1": the cores a worker is pinned to
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Share:
    cpus: tuple[int, ...]
    gpus: tuple[str, ...] = ()  # CUDA device indices; empty on a CPU box

    def describe(self) -> str:
        cores = f"{len(self.cpus)} core{'s' if len(self.cpus) != 1 else ''} ({','.join(map(str, self.cpus))})"
        return cores + (f", GPU {','.join(self.gpus)}" if self.gpus else "")


def available_cpus() -> list[int]:
    """The cores this process may run on (a container's or taskset's limit included)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def split(items: list, n: int) -> list[list]:
    """`items` in n contiguous, near-equal parts; with fewer items than parts, parts share round-robin."""
    if n < 1:
        raise ValueError("at least one part")
    if len(items) < n:
        return [[items[i % len(items)]] for i in range(n)] if items else [[] for _ in range(n)]
    size, extra = divmod(len(items), n)
    parts, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        parts.append(items[start:end])
        start = end
    return parts


def plan_workers(
    n: int, gpus: list[str] | None = None, gpus_per_trial: int = 1, cpus: list[int] | None = None
) -> list[Share]:
    """Each of n workers' cores and GPUs. With GPUs, worker i gets GPUs [i*g, (i+1)*g) (round-robin
    when there are fewer than n*g: workers then share a GPU, as the caller is told)."""
    cpus = available_cpus() if cpus is None else cpus
    gpus = list(gpus or [])
    cpu_parts = split(cpus, n)
    if not gpus:
        return [Share(tuple(c)) for c in cpu_parts]
    g = max(1, gpus_per_trial)
    return [Share(tuple(cpu_parts[i]), tuple(gpus[(i * g + k) % len(gpus)] for k in range(g))) for i in range(n)]


def visible_gpus() -> list[str]:
    """The CUDA devices a worker may be given, as indices CUDA_VISIBLE_DEVICES takes."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None and not glob.glob("/dev/nvidia[0-9]*") and sys.platform == "linux":
        return []  # no NVIDIA device node: no need to import torch (seconds of a core the workers want)
    try:
        import torch

        count = torch.cuda.device_count()  # NVML: no CUDA context in this process
    except Exception:
        return []
    if visible:
        return [v.strip() for v in visible.split(",") if v.strip()][:count]
    return [str(i) for i in range(count)]


def devices_seen() -> str:
    """What train.devices can take here, said without importing torch (the console's form shows it):
    the NVIDIA device nodes, as CUDA_VISIBLE_DEVICES narrows them."""
    nodes = len(glob.glob("/dev/nvidia[0-9]*"))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        nodes = min(nodes, len([v for v in visible.split(",") if v.strip()]))
    if nodes:
        return f"Here: {nodes} GPU{'s' if nodes != 1 else ''} seen."
    cores = len(available_cpus())
    return f"Here: no GPU seen; N devices are N processes sharing {cores} core{'s' if cores != 1 else ''}."


def worker_env(share: Share, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    threads = str(max(1, len(share.cpus)))
    env.update({var: threads for var in THREAD_VARS})
    env[CPUS_ENV] = ",".join(map(str, share.cpus))
    if share.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(share.gpus)
    return env


def apply_share() -> tuple[int, ...] | None:
    """In a worker: pin to the cores its parent gave it and size torch's pools to them. None when it
    was given none (a worker started by hand: `cnnlab sweep --join` uses what it finds)."""
    text = os.environ.get(CPUS_ENV, "")
    try:
        cpus = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        return None
    if not cpus:
        return None
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:
            pass  # a core taken away since: the thread counts below still keep the pools apart
    import torch

    torch.set_num_threads(len(cpus))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already started (torch allows setting it once, before any inter-op work)
    return cpus
