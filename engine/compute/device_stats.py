"""What the device a run trains on is doing: its name; on CUDA the memory torch holds (in use, peak,
total) and, where NVIDIA's management library is installed (the cnnlab[gpu] extra, nvidia-ml-py),
utilisation, temperature and power; on the CPU the training process's share of the cores and its
memory. The console's device panel samples it every few seconds; each metrics.jsonl line carries
the epoch's peak device memory (`peak_memory_mb`).

The CPU figures come from /proc (Linux) or the standard library, never psutil. Torch is imported
only for a CUDA device, which the process that trains on it has imported already. Nothing here
raises: what cannot be read is None, with a one-line note.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
NVML_MISSING = "utilisation, temperature, power: pip install 'cnnlab[gpu]' (nvidia-ml-py)"


@dataclass(frozen=True)
class DeviceSample:
    name: str  # "cpu (2 cores)", "cuda:0 NVIDIA H200"
    kind: str  # cpu, cuda, mps
    mem_used_mb: float | None = None  # CUDA: torch's allocated memory; CPU: the process's resident set
    mem_peak_mb: float | None = None
    mem_total_mb: float | None = None
    cpu_pct: float | None = None  # the process's share of all cores, 0..100
    util_pct: float | None = None  # the GPU's, from NVML
    temp_c: float | None = None
    power_w: float | None = None
    note: str = ""


def device_kind(device: str) -> str:
    """ "cuda:0 (NVIDIA H200), bf16" / "cuda:0 · bf16" / "cpu" → "cuda" / "cpu"."""
    head = device.strip().split()[0] if device.strip() else "cpu"
    return head.split(":")[0].rstrip(",·")


def cuda_index(device: str) -> int:
    head = device.strip().split()[0].rstrip(",·") if device.strip() else ""
    _, _, idx = head.partition(":")
    return int(idx) if idx.isdigit() else 0


def _torch_cuda():
    """torch, when this process has imported it and CUDA is up; None otherwise (never imports it)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch


def peak_memory_mb(device: str, reset: bool = True) -> float | None:
    """The peak memory since the last call (CUDA: torch's allocator, reset after reading), or the
    process's peak resident memory on the CPU (the kernel's high-water mark, which only grows)."""
    if device_kind(device) == "cuda":
        torch = _torch_cuda()
        if torch is None:
            return None
        idx = cuda_index(device)
        peak = torch.cuda.max_memory_allocated(idx) / MB
        if reset:
            torch.cuda.reset_peak_memory_stats(idx)
        return round(peak, 1)
    return round(_max_rss_kb() / 1024, 1)


def _max_rss_kb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform == "darwin" else rss  # bytes on macOS, KiB elsewhere


def _proc_cpu_seconds(pid: int) -> float | None:
    if pid == os.getpid():
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _proc_rss_mb(pid: int) -> tuple[float | None, float | None]:
    """(resident now, peak resident) of a process in MB, from /proc; the stdlib's peak for this one."""
    try:
        now = peak = None
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
        return now, peak
    except (OSError, ValueError):
        if pid == os.getpid():
            return None, _max_rss_kb() / 1024
        return None, None


class DeviceMonitor:
    """Samples one device and one training process (this one by default); call `sample()` every
    few seconds: the CPU share is measured between two calls."""

    def __init__(self, device: str, pid: int | None = None) -> None:
        self.device = device or "cpu"
        self.kind = device_kind(self.device)
        self.pid = pid or os.getpid()
        self.cores = os.cpu_count() or 1
        self._last: tuple[float, float] | None = None
        self._nvml = None
        self._nvml_note = ""
        if self.kind == "cuda":
            self._nvml, self._nvml_note = _nvml_handle(cuda_index(self.device))

    def sample(self) -> DeviceSample:
        if self.kind == "cuda":
            return self._cuda()
        used, peak = _proc_rss_mb(self.pid)
        name = f"{self.kind} ({self.cores} core{'s' if self.cores != 1 else ''})" if self.kind == "cpu" else self.kind
        return DeviceSample(name, self.kind, mem_used_mb=used, mem_peak_mb=peak, cpu_pct=self._cpu_share())

    def _cpu_share(self) -> float | None:
        cpu, now = _proc_cpu_seconds(self.pid), time.monotonic()
        if cpu is None:
            return None
        last, self._last = self._last, (cpu, now)
        if last is None or now <= last[1]:
            return None
        return max(0.0, min(100.0, 100 * (cpu - last[0]) / ((now - last[1]) * self.cores)))

    def _cuda(self) -> DeviceSample:
        idx = cuda_index(self.device)
        name, used, peak, total = f"cuda:{idx}", None, None, None
        torch = _torch_cuda() if self.pid == os.getpid() else None
        if torch is not None:
            name += f" {torch.cuda.get_device_name(idx)}"
            used = torch.cuda.memory_allocated(idx) / MB
            peak = torch.cuda.max_memory_allocated(idx) / MB
            total = torch.cuda.get_device_properties(idx).total_memory / MB
        util = temp = power = None
        note = self._nvml_note
        if self._nvml is not None:
            try:
                import pynvml

                h = self._nvml
                util = float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)
                temp = float(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))
                power = pynvml.nvmlDeviceGetPowerUsage(h) / 1000
                if torch is None:  # another process's run: the device's memory as the driver sees it
                    info = pynvml.nvmlDeviceGetMemoryInfo(h)
                    used, total = info.used / MB, info.total / MB
                    name += f" {pynvml.nvmlDeviceGetName(h)}"
            except Exception as err:  # a driver that does not answer: the panel says so, the run goes on
                note = f"NVML: {type(err).__name__}"
        return DeviceSample(name, "cuda", used, peak, total, None, util, temp, power, note)


def _nvml_handle(index: int):
    """(NVML's handle of the GPU, "") or (None, a note why not)."""
    try:
        import pynvml
    except ImportError:
        return None, NVML_MISSING
    try:
        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(index), ""
    except Exception as err:  # no driver, no such GPU
        return None, f"NVML unavailable: {type(err).__name__}"


def panel_text(s: DeviceSample) -> str:
    """One line: `cpu (2 cores) · cpu 93% · mem 812 MB (peak 930 MB)` or
    `cuda:0 NVIDIA H200 · mem 3.1/5.2/139.8 GB (use/peak/total) · util 87% · 61°C · 310 W`."""
    parts = [s.name]
    if s.cpu_pct is not None:
        parts.append(f"cpu {s.cpu_pct:.0f}%")
    if s.kind == "cuda" and (s.mem_used_mb is not None or s.mem_total_mb is not None):
        vals = [v for v in (s.mem_used_mb, s.mem_peak_mb, s.mem_total_mb)]
        names = [n for n, v in zip(("use", "peak", "total"), vals, strict=True) if v is not None]
        parts.append(f"mem {'/'.join(f'{v / 1024:.1f}' for v in vals if v is not None)} GB ({'/'.join(names)})")
    elif s.mem_used_mb is not None or s.mem_peak_mb is not None:
        now = f"{s.mem_used_mb:.0f} MB" if s.mem_used_mb is not None else ""
        peak = f"peak {s.mem_peak_mb:.0f} MB" if s.mem_peak_mb is not None else ""
        parts.append("mem " + (f"{now} ({peak})" if now and peak else now or peak))
    if s.util_pct is not None:
        parts.append(f"util {s.util_pct:.0f}%")
    if s.temp_c is not None:
        parts.append(f"{s.temp_c:.0f}°C")
    if s.power_w is not None:
        parts.append(f"{s.power_w:.0f} W")
    return " · ".join(parts)
