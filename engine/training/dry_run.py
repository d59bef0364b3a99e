"""A dry run: the experiment validated, its model built and one forward pass, with no data and no
download (`cnnlab run --dry-run`, the editor's ctrl+t).

It says where the starting weights would come from instead of fetching them, so it answers
offline, in a second, for every preset.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.compute.device import select_runtime
from engine.data.splits import describe
from engine.experiment.config import Experiment
from engine.models import build_model, count_parameters, weights_note


def dry_run(exp: Experiment) -> dict[str, Any]:
    """Build the model for the experiment's data and run a dummy batch of two through it (a folder
    dataset still needs its class folders, to know the class count). Returns the parameter counts,
    the shapes in and out, the device, the class count, and `weights`: a sentence saying whether
    the starting weights are present (and where) or will be fetched when the run starts ("none" for
    a model trained from scratch)."""
    rt = select_runtime(exp.train)
    classes, channels, size = describe(exp.data)
    model = build_model(exp.model, classes, size, channels, fetch=False)
    model = model.to(rt.device, memory_format=rt.memory_format).eval()
    x = torch.zeros(2, channels, size, size, device=rt.device).contiguous(memory_format=rt.memory_format)
    with torch.no_grad(), rt.autocast():
        out = model(x)
    total, trainable = count_parameters(model)
    return {
        "params": total,
        "trainable": trainable,
        "input_shape": list(x.shape),
        "output_shape": list(out.shape),
        "device": rt.describe(),
        "classes": classes,
        "weights": weights_note(exp.model),
    }
