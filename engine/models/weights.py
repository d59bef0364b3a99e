"""Starting weights from a file the user names (`model.weights_path`), and the error every
weights problem becomes.

A file is read only with `torch.load(weights_only=True)` (DESIGN.md, Trust). It may hold a
model's state dict, a cnnlab checkpoint (the state dict under "model") or a torchvision state
dict, whose classifier is called `fc` where cnnlab's models call it `head` (a library's or the
user's network keeps its own names, under `net.`, and its own classifier's name). A head of another
class count (ImageNet's 1000, or a run on another dataset), or none at all, is not loaded: the
model keeps its freshly initialised head. Everything else must fit exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class WeightsUnavailable(Exception):
    """Weights that cannot be had or do not fit; str(e) is a short message for the user."""


def _names(keys: list[str], show: int = 3) -> str:
    more = f", … {len(keys) - show} more" if len(keys) > show else ""
    return ", ".join(keys[:show]) + more


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsUnavailable(f"model.weights_path: there is no file at {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file is the user's to fix, not a crash
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsUnavailable(
            f"model.weights_path: {p} does not read as a weights file with torch.load(weights_only=True): {first}"
        ) from None
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):  # a cnnlab (or Lightning) checkpoint
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    tensors = isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    if not tensors or not obj:
        raise WeightsUnavailable(f"model.weights_path: {p} holds no state dict (a mapping of layer names to tensors)")
    # Saved from a torch.compile'd or DataParallel model: the same layers under a prefix.
    for prefix in ("_orig_mod.", "module."):
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def load_weights(model: nn.Module, path: str | Path, arch: str) -> None:
    """Load `path` into `model` in place; raise WeightsUnavailable naming what does not fit."""
    state = read_state_dict(path)
    own = model.state_dict()
    head_name = getattr(model, "head_name", None)
    if head_name is not None:  # a library's or the user's network (engine.models.wrapped), its names under net.
        if not all(k.startswith("net.") for k in state):
            state = {"net." + k: v for k, v in state.items()}
        prefix = f"net.{head_name}."
    else:
        if not any(k.startswith("head.") for k in state) and not any(k.startswith("fc.") for k in own):
            state = {("head." + k[3:] if k.startswith("fc.") else k): v for k, v in state.items()}
        prefix = "head."
    head = [k for k in own if k.startswith(prefix)]
    if any(k in state and state[k].shape != own[k].shape for k in head):
        state = {k: v for k, v in state.items() if not k.startswith(prefix)}
    keep_own = set(head) - set(state)  # a replaced head stays as initialised

    # BatchNorm's batch counters are absent from older files and harmless to miss.
    missing = [k for k in own if k not in state and k not in keep_own and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {list(state[k].shape)} vs {list(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_names(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_names(unexpected)})")
        if wrong:
            parts.append(f"{len(wrong)} of another shape (file vs model: {_names(wrong)})")
        raise WeightsUnavailable(
            f"model.weights_path: {Path(path).expanduser()} does not fit {arch}: "
            + "; ".join(parts)
            + ". It needs a state dict of the same architecture (a torchvision one may differ in its classifier only)."
        )
    model.load_state_dict(state, strict=False)
