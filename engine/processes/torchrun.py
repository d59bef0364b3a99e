"""A run on several devices of this machine: cnnlab starts itself again under torchrun.

    python -m torch.distributed.run --standalone --nproc-per-node N -m engine resume RUN_DIR

(torchrun's own module, through this Python, so no `torchrun` script need be on PATH). The run folder
is made first, so every rank trains the same one: rank 0 takes it as a detached process takes a
created run. Each CPU rank is given its part of the cores in OMP_NUM_THREADS before its pools start
(torchrun would give each one thread). On several machines the user runs torchrun by hand (README):
the engine reads whatever world torchrun made (engine.processes.world).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from engine.compute.cores import THREAD_VARS, available_cpus


def under_torchrun() -> bool:
    """Whether this process is a rank torchrun started (no torch import: the CLI asks it first)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def torchrun_argv(run_dir: Path, devices: int, epochs: int | None = None) -> list[str]:
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={devices}"]
    argv += ["-m", "engine", "resume", str(Path(run_dir).resolve())]
    return argv + (["--epochs", str(epochs)] if epochs is not None else [])


def torchrun_env(devices: int, threads: int | None = None) -> dict[str, str]:
    """The environment of the ranks: the engine package wherever this one is, and each rank's threads."""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    each = str(threads or max(1, len(available_cpus()) // devices))
    env.update({var: env.get(var) or each for var in THREAD_VARS})
    return env


def train_under_torchrun(
    run_dir: Path, devices: int, epochs: int | None = None, threads: int | None = None, quiet: bool = False
) -> int:
    """Train the run on `devices` ranks in the foreground; torchrun's exit status. Ctrl+C reaches the
    ranks from the terminal (each stops at the same batch, rank 0 saving the position): this process
    only waits for them. `quiet`: rank 0's progress display goes nowhere (a bench's runs)."""
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(torchrun_argv(run_dir, devices, epochs), env=torchrun_env(devices, threads), stdout=out)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGHUP)}
    term = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.signal(signal.SIGTERM, term)
