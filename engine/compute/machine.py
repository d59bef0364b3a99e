"""This machine as cnnlab's per-machine choices see it: its name (the CPU model, the GPU), the folder
where those choices are kept, and the folder where the trainings running now claim their cores.

    cache folder   $CNNLAB_CACHE, else $XDG_CACHE_HOME/cnnlab, else ~/.cache/cnnlab (autotune.json)
    claims folder  $CNNLAB_CLAIMS, else $XDG_RUNTIME_DIR/cnnlab-cores, else <tmp>/cnnlab-cores-<uid>:
                   local to the machine (a home folder may be shared between machines; claims must not be)
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from engine.files import atomic_write_text


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_name(device) -> str:
    """The CPU model, or the GPU's name for a CUDA device: what a measured choice depends on."""
    if getattr(device, "type", device) == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({os.cpu_count()} cores)"


def cache_dir() -> Path:
    if os.environ.get("CNNLAB_CACHE"):
        return Path(os.environ["CNNLAB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnlab"


def claims_dir() -> Path:
    if os.environ.get("CNNLAB_CLAIMS"):
        return Path(os.environ["CNNLAB_CLAIMS"])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "cnnlab-cores"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"cnnlab-cores-{uid}"


def write_json_atomically(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc, indent=1))
