"""Where and how a run computes: device, precision and memory layout, chosen at run time.

`auto` picks the fast path that is safe on the hardware found: CUDA with bf16 autocast (fp16 and a
gradient scaler on GPUs without bf16) and channels_last; the CPU with channels_last, and bf16
autocast only where it has native bf16 instructions; MPS in fp32 (`cnnlab bench` measures the
difference). What was chosen is recorded in the run's status and events.
"""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from engine.experiment.config import TrainConfig

if TYPE_CHECKING:  # engine.data.splits imports the dataset readers; a runtime needs none of them
    from engine.data.splits import Split


class DeviceUnavailable(Exception):
    pass


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # fp32, bf16, fp16
    channels_last: bool

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    @property
    def needs_scaler(self) -> bool:
        return self.precision == "fp16"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def hold(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """A split's images (uint8, as loaded) and labels on the device: the dataset lives there as
        one copy and augmentation happens there, per batch."""
        if self.device.type == "cuda":
            images, labels = split.images.pin_memory(), split.labels.pin_memory()
            return images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        return split.images.to(self.device), split.labels.to(self.device)

    def describe(self) -> str:
        name = str(self.device)
        if self.device.type == "cuda":
            name += f" ({torch.cuda.get_device_name(self.device)})"
        return f"{name}, {self.precision}{', channels_last' if self.channels_last else ''}"


def _cpu_has_fast_bf16() -> bool:
    # Only CPUs with native bf16 instructions (AVX512-BF16, AMX) run bf16 convolutions faster than
    # fp32; on AVX2 oneDNN emulates them and training runs several times slower (measured by
    # `cnnlab bench`), so elsewhere auto stays in fp32.
    try:
        return platform.machine().lower() in ("x86_64", "amd64") and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def select_runtime(cfg: TrainConfig) -> Runtime:
    want = cfg.device
    if want == "auto":
        if torch.cuda.is_available():
            want = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            want = "mps"
        else:
            want = "cpu"
    if want == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            "train.device: cuda was asked for but no CUDA device is available here; use auto or cpu"
        )
    if want == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceUnavailable("train.device: mps was asked for but is not available here; use auto or cpu")
    device = torch.device(want)

    precision = cfg.precision
    if precision == "auto":
        if want == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif want == "cpu" and _cpu_has_fast_bf16():
            precision = "bf16"
        else:
            precision = "fp32"
    if precision == "fp16" and want == "cpu":
        raise DeviceUnavailable("train.precision: fp16 autocast is for GPUs; on the CPU use bf16, fp32 or auto")

    if cfg.channels_last == "auto":
        # oneDNN's convolutions run faster on NHWC even in fp32: SimpleCNN +36 %, MobileNet +23 %,
        # the Backbone +16 % on a 2-core AVX2 CPU (`cnnlab bench --set train.channels_last=on`).
        channels_last = want in ("cuda", "cpu")
    else:
        channels_last = cfg.channels_last == "on"
    return Runtime(device, precision, channels_last)
