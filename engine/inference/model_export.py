"""A run's trained model exported to a file another program runs, written whole or not at all.

    FILE        the model (ONNX, or TorchScript), taking float32 images (N, C, H, W) already
                preprocessed and giving logits (N, classes)
    FILE.json   what "preprocessed" means for it: size, channels, mean and std, the class names

Both are written to temporary names in FILE's folder, the model is checked against torch
(engine.inference.agreement) from its temporary file, and only then are both renamed into place;
any failure on the way (a read-only folder, a full disk, a model the exporter cannot follow) removes
what was written and leaves the folder as it was.
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.files import os_error_cause, remove_quietly
from engine.inference import onnx_export, torchscript_export
from engine.inference.agreement import Agreement, check_inputs, compare
from engine.inference.errors import InferenceError
from engine.inference.trained import TrainedModel, load_trained

FORMATS = ("onnx", "torchscript")


@dataclass(frozen=True)
class ModelExport:
    path: Path
    sidecar: Path  # FILE.json
    fmt: str
    run_id: str
    checkpoint: str
    epoch: int | None
    seconds: float  # the export itself, without the check
    agreement: Agreement | None  # None: the check could not run here
    note: str  # why the check did not run ("" when it did)


def sidecar_path(out: Path) -> Path:
    return out.with_name(out.name + ".json")


def preprocessing_doc(trained: TrainedModel, fmt: str, out: Path) -> dict[str, Any]:
    """FILE.json: how another program turns an image file into the model's input and its output into a class."""
    p = trained.prep
    return {
        "format": fmt,
        "model": out.name,
        "input": {
            "name": onnx_export.INPUT if fmt == "onnx" else "input",
            "dtype": "float32",
            "shape": ["batch", p.channels, p.size, p.size],
        },
        "output": {"name": onnx_export.OUTPUT if fmt == "onnx" else "output", "shape": ["batch", len(p.class_names)]},
        "preprocessing": {
            "color": "L" if p.channels == 1 else "RGB",
            "size": p.size,
            "channels": p.channels,
            "resize": "bilinear, to size x size",
            "mean": list(p.mean),
            "std": list(p.std),
            "formula": "input = (pixel / 255 - mean) / std, per channel, in channel-first (C, H, W) order",
        },
        "class_names": list(p.class_names),
        "softmax": "the output is logits: softmax over them gives the class probabilities",
        "run": trained.folder.id,
        "checkpoint": trained.checkpoint.name,
        "epoch": trained.epoch,
    }


def export_model(run_dir: Path, fmt: str, out: Path, which: str = "best") -> ModelExport:
    """Write the run's model (checkpoints/<which>.pt) to `out` as `fmt`, with `out`.json beside it."""
    if fmt not in FORMATS:
        raise InferenceError(f"unknown model format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out).expanduser()
    target_problem(out)
    trained = load_trained(Path(run_dir), which, cpu=True)
    x, source = check_inputs(trained)
    with torch.no_grad():
        reference = trained.model(x).float()
    tmp, tmp_json = _temporary(out), _temporary(sidecar_path(out))
    try:
        for t in (tmp, tmp_json):  # a read-only or missing folder fails here, as a plain OSError
            t.touch()
        started = time.perf_counter()
        _write(fmt, trained, x[:2], tmp, out)
        seconds = time.perf_counter() - started
        agreement, note = _check(fmt, tmp, x, reference, source)
        doc = preprocessing_doc(trained, fmt, out)
        with open(tmp_json, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync(tmp)
        os.replace(tmp_json, sidecar_path(out))
        os.replace(tmp, out)
    except OSError as err:
        remove_quietly(tmp)
        remove_quietly(tmp_json)
        raise OSError(err.errno, err.strerror, str(out)) from None  # named for the file asked for
    except BaseException:
        remove_quietly(tmp)
        remove_quietly(tmp_json)
        raise
    return ModelExport(
        out, sidecar_path(out), fmt, trained.folder.id, trained.checkpoint.name, trained.epoch, seconds, agreement, note
    )


def target_problem(out: Path) -> None:
    """Refuse, before any work, a target that is a folder or lies in a folder that does not exist."""
    if out.is_dir():
        raise InferenceError(f"--out {out} is a folder: name the file to write, e.g. {out / 'model.onnx'}")
    if not out.parent.is_dir():
        what = "is a file, not a folder" if out.parent.exists() else "does not exist"
        raise InferenceError(f"--out {out}: the folder {out.parent} {what} (create it first)")


def _write(fmt: str, trained: TrainedModel, example: torch.Tensor, tmp: Path, out: Path) -> None:
    try:
        if fmt == "onnx":
            onnx_export.write_onnx(trained.model, example, tmp)
        else:
            torchscript_export.write_torchscript(trained.model, example, tmp)
    except (InferenceError, OSError):
        raise
    except Exception as err:  # torch's and onnx's writers wrap a failed write (a full disk) in their own errors
        cause = os_error_cause(err)
        if cause is not None:
            raise OSError(cause.errno or errno.EIO, cause.strerror or str(cause), str(out)) from None
        raise


def _check(fmt: str, tmp: Path, x: torch.Tensor, reference: torch.Tensor, source: str) -> tuple[Agreement | None, str]:
    if fmt == "onnx":
        if not onnx_export.runtime_available():
            return None, f"onnxruntime is not installed, so the export was not run to check it: {onnx_export.EXTRA}"
        return compare(reference, torch.from_numpy(onnx_export.onnx_logits(tmp, x)), source), ""
    return compare(reference, torchscript_export.torchscript_logits(tmp, x), source), ""


def _fsync(path: Path) -> None:
    """The exporter's bytes on disk before the rename makes them the file (a crash leaves no empty model)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")
