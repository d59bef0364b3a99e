"""The machine a bench ran on, as both benches (`cnnlab bench` and `cnnlab bench --ui`) report it."""

from __future__ import annotations

import os
import platform
from typing import Any

from engine.machine import cpu_name

__all__ = ["cpu_name", "machine"]


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }
