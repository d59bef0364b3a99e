"""What `train.device = auto` and friends resolve to here, and the refusals that name the field."""

from __future__ import annotations

import pytest
import torch

from engine.compute import device as dev
from engine.experiment.config import TrainConfig


def runtime(**fields):
    return dev.select_runtime(TrainConfig(**fields))


def test_auto_on_the_cpu_is_channels_last_and_bf16_only_with_native_instructions(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_cpu_has_fast_bf16", lambda: False)
    rt = runtime()
    assert (rt.device.type, rt.precision, rt.channels_last, rt.needs_scaler) == ("cpu", "fp32", True, False)
    assert rt.memory_format == torch.channels_last and "channels_last" in rt.describe()
    monkeypatch.setattr(dev, "_cpu_has_fast_bf16", lambda: True)
    rt = runtime()
    assert (rt.precision, rt.autocast_dtype, rt.channels_last) == ("bf16", torch.bfloat16, True)


def test_explicit_choices_win_over_auto():
    rt = runtime(device="cpu", precision="fp32", channels_last="off")
    assert (rt.precision, rt.channels_last, rt.memory_format) == ("fp32", False, torch.contiguous_format)


def test_unavailable_devices_and_fp16_on_the_cpu_are_refused_naming_the_field(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(dev.DeviceUnavailable, match="train.device: cuda"):
        runtime(device="cuda")
    with pytest.raises(dev.DeviceUnavailable, match="train.precision: fp16"):
        runtime(device="cpu", precision="fp16")
