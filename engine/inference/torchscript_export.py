"""The model as TorchScript: traced with torch.jit.trace on a batch of the run's inputs, saved, and
loaded back to check it answers as the model does. A traced model takes any batch size (the
architectures here have no batch-dependent control flow) and runs without Python, in libtorch.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
from torch import nn

from engine.inference.errors import InferenceError

# torch now points users of torch.jit to torch.export; TorchScript is the format asked for here.
DEPRECATED = r"`torch\.jit\.\w+` is deprecated"


def write_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Trace `model` (eval mode, on the CPU) on `example` and save it to `path`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEPRECATED)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            with torch.no_grad():
                traced = torch.jit.trace(model, example, check_trace=False)
        except Exception as err:  # code the tracer cannot follow
            text = str(err).strip().splitlines()
            raise InferenceError(
                f"torch.jit.trace could not trace this model: {type(err).__name__}: {text[0][:300] if text else ''}"
            ) from None
    # Saved to memory, then written by Python: torch's own writer turns a full disk into a RuntimeError
    # with no OSError beneath it, where a plain write says ENOSPC.
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEPRECATED)
        torch.jit.save(traced, buffer)
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())


@torch.no_grad()
def torchscript_logits(path: Path, x: torch.Tensor) -> torch.Tensor:
    """The saved TorchScript file loaded back on the CPU and run: logits (N, classes)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEPRECATED)
        loaded = torch.jit.load(str(path), map_location="cpu")
    loaded.eval()
    return loaded(x).float()
