"""The machine a bench ran on, as both benches (`cnnlab bench` and `cnnlab bench --ui`) report it."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from engine.compute.machine import cpu_name

__all__ = ["cpu_name", "machine"]

# The instructions that decide whether bf16 pays on a CPU (two machines' benches compare by them).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in CPU_FLAGS if f in have]
    except OSError:
        pass
    return []


def machine() -> dict[str, Any]:
    import torch

    from engine.compute.device import _cpu_has_fast_bf16

    return {
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "bf16_native": _cpu_has_fast_bf16(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }
