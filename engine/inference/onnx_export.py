"""The model as ONNX: torch's exporter (torch.onnx.export with dynamo=True, the torch.export-based
exporter torch recommends and uses by default; the TorchScript-based one is deprecated), with the
batch axis dynamic so that any number of images goes through at once, weights inside the one file.
Then the file is run with onnxruntime, when it is installed, to check it answers as torch does.

Exporting needs onnx and onnxscript, checking needs onnxruntime: the `cnnlab[onnx]` extra.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.inference.errors import InferenceError

INPUT, OUTPUT = "images", "logits"
EXTRA = "pip install 'cnnlab[onnx]'"


def exporter_missing() -> list[str]:
    """The packages torch's ONNX exporter needs that are not installed here."""
    return [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]


def runtime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def write_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Export `model` (eval mode, on the CPU) for float inputs shaped like `example`, any batch size."""
    missing = exporter_missing()
    if missing:
        raise InferenceError(f"the ONNX export needs {' and '.join(missing)}: {EXTRA}")
    batch = torch.export.Dim("batch", min=1)
    # The exporter reports each of its steps on stdout and warns about its own internals: neither is
    # the user's to act on, and a failure still raises with its reason.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=({0: batch},),
            )
        except Exception as err:  # torch.export's many kinds: code it cannot trace, an op ONNX lacks
            raise InferenceError(f"torch's ONNX exporter could not export this model: {_first(err)}") from None
    program.save(str(path), external_data=False)


def onnx_logits(path: Path, x: torch.Tensor) -> np.ndarray:
    """The ONNX file run with onnxruntime on the CPU: logits (N, classes)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT], {INPUT: x.numpy()})[0]


def _first(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__
