"""Sharing a machine between sweep workers (engine/compute/cores.py): disjoint cores, GPUs per worker, and a
worker that pins itself and sizes torch's pools to its share."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.compute.cores import CPUS_ENV, Share, devices_seen, plan_workers, split, worker_env

REPO = Path(__file__).resolve().parents[2]


def test_cores_split_into_disjoint_near_equal_parts():
    assert split([0, 1, 2, 3, 4], 2) == [[0, 1, 2], [3, 4]]
    assert split([0, 1], 2) == [[0], [1]]
    assert split([0, 1], 3) == [[0], [1], [0]]  # more workers than cores: they share, one thread each
    with pytest.raises(ValueError):
        split([0], 0)
    shares = plan_workers(4, cpus=list(range(16)))
    assert [s.cpus for s in shares] == [tuple(range(i * 4, i * 4 + 4)) for i in range(4)]
    assert all(not s.gpus for s in shares)


def test_on_a_gpu_box_each_worker_gets_its_own_gpus():
    """The GPU path is planned here without a GPU: which devices each worker is told it has."""
    shares = plan_workers(4, gpus=["0", "1", "2", "3"], cpus=list(range(8)))
    assert [s.gpus for s in shares] == [("0",), ("1",), ("2",), ("3",)]
    assert [s.cpus for s in shares] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    two_each = plan_workers(2, gpus=["0", "1", "2", "3"], gpus_per_trial=2, cpus=[0, 1])
    assert [s.gpus for s in two_each] == [("0", "1"), ("2", "3")]
    env = worker_env(shares[2], base={"PATH": "/bin"})
    assert env["CUDA_VISIBLE_DEVICES"] == "2" and env[CPUS_ENV] == "4,5" and env["OMP_NUM_THREADS"] == "2"
    assert "CUDA_VISIBLE_DEVICES" not in worker_env(Share((0,)), base={})
    assert shares[0].describe() == "2 cores (0,1), GPU 0"


def test_the_form_says_how_many_gpus_train_devices_can_take(monkeypatch):
    import engine.compute.cores as cores

    nodes = ["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia2", "/dev/nvidia3"]
    monkeypatch.setattr(cores.glob, "glob", lambda pattern: nodes if pattern == "/dev/nvidia[0-9]*" else [])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert devices_seen() == "Here: 4 GPUs seen."
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    assert devices_seen() == "Here: 1 GPU seen."
    nodes.clear()
    monkeypatch.setattr(cores, "available_cpus", lambda: [0, 1])
    assert devices_seen() == "Here: no GPU seen; N devices are N processes sharing 2 cores."


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="core pinning is Linux's sched_setaffinity")
def test_a_worker_pins_itself_and_sizes_its_pools_to_its_share():
    cpu = sorted(os.sched_getaffinity(0))[-1]
    code = (
        "import os, torch; from engine.compute.cores import apply_share; "
        "print(apply_share(), sorted(os.sched_getaffinity(0)), torch.get_num_threads(), "
        "torch.get_num_interop_threads())"
    )
    env = worker_env(Share((cpu,)), base={**os.environ, "PYTHONPATH": str(REPO)})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [f"({cpu},)", f"[{cpu}]", "1", "1"]
