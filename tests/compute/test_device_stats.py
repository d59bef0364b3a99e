"""The device panel's numbers: on a CPU the training process's share of the cores and its memory
(this process, or another one read from /proc), on CUDA torch's memory and NVML's figures; without
NVIDIA's library a one-line note, never an error."""

from __future__ import annotations

import builtins
import subprocess
import sys

import pytest

from engine.compute import device_stats
from engine.compute.device_stats import DeviceMonitor, DeviceSample, device_kind, panel_text, peak_memory_mb


def test_device_names_read_from_every_form_the_run_gives():
    assert device_kind("cpu") == "cpu"
    assert device_kind("cuda:1 (NVIDIA H200), bf16, channels_last") == "cuda"
    assert device_kind("cuda:0 · bf16") == "cuda" and device_stats.cuda_index("cuda:1 (NVIDIA H200), bf16") == 1
    assert device_kind("") == "cpu"


def test_cpu_sample_of_this_process_has_its_share_and_memory():
    monitor = DeviceMonitor("cpu")
    first = monitor.sample()
    assert first.kind == "cpu" and first.name.startswith("cpu (") and first.cpu_pct is None  # no interval yet
    sum(i * i for i in range(2_000_000))  # some work between the two samples
    second = monitor.sample()
    assert second.cpu_pct is not None and 0 < second.cpu_pct <= 100
    assert second.mem_used_mb > 10 and second.mem_peak_mb >= second.mem_used_mb
    line = panel_text(second)
    assert line.startswith("cpu (") and "cpu " in line and " MB (peak " in line
    assert peak_memory_mb("cpu") >= second.mem_used_mb * 0.5


def test_another_process_is_read_from_proc():
    code = "import sys; print('ready', flush=True); sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"  # python is up in the child
        sample = DeviceMonitor("cpu", pid=child.pid).sample()
        assert sample.mem_used_mb is not None and sample.mem_used_mb > 1
    finally:
        child.communicate(b"")


def test_without_nvidia_ml_py_cuda_says_so_in_one_line(monkeypatch):
    real_import = builtins.__import__

    def no_pynvml(name, *args, **kwargs):
        if name == "pynvml":
            raise ImportError("no pynvml")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    sample = DeviceMonitor("cuda:0").sample()  # no GPU here either: nothing raises
    assert sample.kind == "cuda" and sample.note == device_stats.NVML_MISSING
    assert "pip install 'cnnlab[gpu]'" in sample.note


def test_a_cuda_sample_reads_in_one_line():
    s = DeviceSample("cuda:0 NVIDIA H200", "cuda", 3174.4, 5324.8, 143155.2, None, 87.0, 61.0, 310.2)
    assert panel_text(s) == "cuda:0 NVIDIA H200 · mem 3.1/5.2/139.8 GB (use/peak/total) · util 87% · 61°C · 310 W"


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_cuda_memory_is_torch_s():
    import torch

    x = torch.ones(1024, 1024, device="cuda")
    s = DeviceMonitor("cuda:0").sample()
    assert s.mem_used_mb >= 4 and s.mem_total_mb > s.mem_used_mb
    assert peak_memory_mb("cuda:0") >= 4
    del x
