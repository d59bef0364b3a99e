"""The physical ceiling the bench sets the ways against: the model's FLOPs per training image (one
forward counted by torch's FlopCounterMode, a training step taken as three forwards: the backward
computes the gradients of the inputs and of the weights, each about a forward's work) against the
device's measured matmul rate in a precision (a large square matmul, timed a few times, the median).

No real training reaches it: convolutions, normalisation and the optimizer run below a matmul's
rate. The share of it a way reaches says how much room the hardware leaves, on any machine."""

from __future__ import annotations

import statistics
import time
from typing import Any

from engine.bench.measure import sync

TRAIN_FORWARDS = 3  # forward + backward (input and weight gradients): about three forwards' work
MATMUL_SIZE = {"cpu": 2048, "cuda": 8192}  # large enough to run at the device's peak, quick enough to repeat
MATMUL_REPEATS = 5
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def matmul_rate(device, precision: str, size: int | None = None, repeats: int = MATMUL_REPEATS) -> dict[str, Any]:
    """FLOP/s of a size x size matmul in `precision` on `device`: two untimed calls, then `repeats`
    timed ones (each of enough calls to last a few milliseconds on a fast GPU), the median."""
    import torch

    n = size or MATMUL_SIZE.get(device.type, 2048)
    dtype = getattr(torch, DTYPES[precision])
    gen = torch.Generator().manual_seed(0)
    a = torch.randn((n, n), generator=gen).to(device=device, dtype=dtype)
    b = torch.randn((n, n), generator=gen).to(device=device, dtype=dtype)
    calls = 10 if device.type == "cuda" else 1
    for _ in range(2):  # untimed: the library's first calls pick kernels and fault pages in
        torch.matmul(a, b)
    sync(device)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            torch.matmul(a, b)
        sync(device)
        rates.append(calls * 2 * n**3 / (time.perf_counter() - t0))
    return {
        "precision": precision,
        "size": n,
        "repeats": repeats,
        "tflops": round(statistics.median(rates) / 1e12, 4),
        "runs_tflops": [round(r / 1e12, 4) for r in rates],
    }


def ceiling(flops: dict[str, Any], rates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Images/s at the fastest measured matmul rate among the precisions measured (the ceiling of
    any safe way), and which precision that is."""
    best = max(rates.values(), key=lambda r: r["tflops"])
    ips = best["tflops"] * 1e12 / flops["train_flops"] if flops["train_flops"] else None
    return {
        **flops,
        "precision": best["precision"],
        "tflops": best["tflops"],
        "ips": round(ips, 1) if ips is not None else None,
    }
