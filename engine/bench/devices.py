"""`cnnlab bench --devices N`: the same run on one device and on N (torchrun, DistributedDataParallel),
taking turns, and how far N devices scale it.

Each turn is a real run in a process of its own (`python -m engine resume`, or torchrun's N ranks
through engine.processes.torchrun), so both pay the same start-up and the machine's cores or GPUs are split as a
real run splits them. A run trains `epochs` epochs; the figure is the images/s of its last one (the
first warms up: allocations, oneDNN's or cuDNN's choices), as metrics.jsonl records it. The scaling is
N devices' median over one device's: N is perfect, 1 is no gain. On a CPU the N ranks share its
cores, so the ratio there says what the gradient all-reduce and the smaller per-rank batches cost.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.bench import BenchError
from engine.bench.machine import machine
from engine.bench.runner import spread
from engine.experiment.config import Experiment
from engine.experiment.overrides import apply_overrides
from engine.runfolder.folder import RunFolder


def timed_run(exp: Experiment, devices: int, runs_dir: Path) -> float:
    """Images/s of the last epoch of one run of `exp` on `devices` devices, in processes of its own."""
    from engine.processes.torchrun import torchrun_env, train_under_torchrun

    exp = apply_overrides(exp, {"train.devices": devices})
    folder = RunFolder.create(runs_dir, exp, None, f"bench-{devices}")
    if devices > 1:
        train_under_torchrun(folder.path, devices, threads=exp.train.threads, quiet=True)
    else:
        argv = [sys.executable, "-m", "engine", "resume", str(folder.path)]
        subprocess.run(argv, env=torchrun_env(1, exp.train.threads), stdout=subprocess.DEVNULL, check=False)
    rows, st = folder.metrics(), folder.status()
    if st.get("state") != "finished" or not rows:
        raise BenchError(f"the run on {devices} device(s) ended {st.get('state')}: {st.get('message') or 'no message'}")
    return float(rows[-1]["images_per_sec"])


def bench_devices(
    exp: Experiment, devices: int, *, label: str, epochs: int = 2, repeats: int = 2, say=lambda text: None
) -> dict[str, Any]:
    if devices < 2:
        raise BenchError("--devices compares one device with N: give N of 2 or more")
    if exp.train.batch_size % devices:
        raise BenchError(f"train.batch_size {exp.train.batch_size} does not split over {devices} devices")
    exp = apply_overrides(exp, {"train.epochs": epochs, "train.checkpoint_minutes": 0, "train.phases": []})
    started = time.perf_counter()
    runs: dict[int, list[float]] = {1: [], devices: []}
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-devices-") as tmp:
        for r in range(repeats):
            order = [1, devices] if r % 2 == 0 else [devices, 1]  # taking turns: a slow patch falls on both
            for n in order:
                runs[n].append(timed_run(exp, n, Path(tmp)))
                say(f"{label}: repeat {r + 1}/{repeats}: {n} device(s) {runs[n][-1]:,.0f} img/s")
    one, many = spread(runs[1]), spread(runs[devices])
    return {
        "machine": machine(),
        "model": label,
        "batch": exp.train.batch_size,
        "devices": devices,
        "epochs": epochs,
        "repeats": repeats,
        "one_device": one,
        "n_devices": many,
        "scaling": round(many["median"] / one["median"], 3) if one["median"] else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def render_devices(result: dict[str, Any]) -> str:
    m, n = result["machine"], result["devices"]
    where = m["cuda"] or f"{m['cpu']}, {m['cores']} cores"
    return (
        f"cnnlab bench --devices {n}: {result['model']}, global batch {result['batch']}, images/s of the last of "
        f"{result['epochs']} epochs, median of {result['repeats']} ({where}, torch {m['torch']})\n"
        f"  1 device:  {result['one_device']['median']:,.0f} img/s\n"
        f"  {n} devices: {result['n_devices']['median']:,.0f} img/s\n"
        f"  scaling:   {result['scaling']:.2f}x of an ideal {n}x"
    )
