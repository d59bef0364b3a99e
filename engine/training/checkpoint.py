"""Checkpoints on disk: written so that a kill never leaves half a file, read without running code.

A checkpoint is a pickle, so it is loaded with torch.load(weights_only=True) only, and holds
nothing but tensors, numbers, strings, lists and dicts: the RNG states are converted to those
here, so loading needs no allow-list of classes (DESIGN.md, "Trust").
"""

from __future__ import annotations

import os
import pickle
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.files import os_error_cause


class CheckpointError(Exception):
    """A checkpoint that is missing, truncated, corrupt or holds something other than plain data."""


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's (legacy global), torch's CPU and every accelerator generator, as plain data."""
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what rng_state() took. Tensors may arrive on the training device (the checkpoint is
    loaded there): generators take CPU byte tensors, so everything goes through .cpu() first."""
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].cpu().tolist()), py["gauss_next"]))
    npy = state["numpy"]
    keys = npy["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, int(npy["pos"]), int(npy["has_gauss"]), float(npy["cached_gaussian"])))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        # A machine with fewer GPUs than the one that saved restores the devices it has.
        for device, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), device)
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"].cpu())


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary file beside `path`, flushed to disk, then renamed over it: a kill at any
    moment leaves either the old file or the new one. The temporary name is fixed per target, so a
    kill mid-write leaves one stray file that the next save overwrites, not a growing pile."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        # torch's writer turns a failed write (a full disk) into "[enforce fail ...] unexpected pos":
        # the OSError beneath it is the fact a user can act on.
        cause = os_error_cause(err)
        if cause is not None and (cause is not err or cause.filename is None):
            raise OSError(cause.errno, cause.strerror, str(tmp)) from None
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # The rename itself is durable only once the folder's entry is on disk (POSIX; Windows has no dir fsync).
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict:
    """The checkpoint's dict, loaded with weights_only=True; anything wrong is a CheckpointError."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning: the refusal below says it all
            warnings.filterwarnings("ignore", module="torch._weights_only_unpickler")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refused a class: name it, leave out torch's long advice.
        lines = [ln.strip() for ln in str(err).splitlines() if "Unsupported global" in ln]
        what = lines[0].split(". ")[0] if lines else _first_line(err)
        raise CheckpointError(f"{path} holds something other than tensors and plain data, refused ({what})") from None
    except Exception as err:  # damaged bytes surface as any of a dozen types, from zip reader to unpickler
        raise CheckpointError(f"{path} is truncated or corrupt and cannot be read ({_first_line(err)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a cnnlab checkpoint (it holds a {type(state).__name__}, not a dict)")
    return state


def load_training_state(path: Path, map_location: Any = "cpu") -> dict:
    """A run's checkpoint (training_state's dict) loaded and its shape checked before any of it is
    used: a foreign or damaged dict is a CheckpointError naming the file, not a KeyError later."""
    state = load_checkpoint(path, map_location)
    problem = training_state_problem(state)
    if problem:
        raise CheckpointError(f"{path} is not a cnnlab training checkpoint: {problem}")
    return state


def training_state_problem(state: dict) -> str | None:
    """What is wrong with the shape of a training_state dict (None: nothing)."""
    for key in ("model", "optimizer", "scheduler", "rng"):
        if not isinstance(state.get(key), dict):
            return f"its {key} is missing" if key not in state else f"its {key} is not a table of states"
    epoch, phase, best = state.get("epoch"), state.get("phase", 0), state.get("best")
    if type(epoch) is not int or epoch < 0:
        return f"its epoch count is {epoch!r}"
    if type(phase) is not int:
        return f"its phase is {phase!r}"
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))):
        return f"its best score is {best!r}"
    return None


def training_state(model, optimizer, schedule, scaler, *, epoch: int, phase: int, best: float | None) -> dict:
    """What a run's checkpoint holds after `epoch` epochs: the model, optimizer, schedule and scaler
    states, the phase it was in, the best score so far and every RNG state."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": schedule.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": epoch,
        "phase": phase,
        "best": best,
        "rng": rng_state(),
    }


@dataclass
class Restored:
    """What a resume continues from; the optimizer and schedule are rebuilt per phase, so their states
    wait here for the phase they were saved in."""

    epoch: int  # epochs done
    best: float | None
    phase: int
    optimizer: dict
    scheduler: dict


def _first_line(err: BaseException) -> str:
    # torch's zip-reader messages run on with advice: the first sentence is the fact.
    text = str(err).strip()
    first = text.splitlines()[0].split(". ")[0][:200] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
