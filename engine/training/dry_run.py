"""A dry run: the experiment validated, its model built and one forward pass, with no data and no
download (`cnnlab run --dry-run`, the editor's ctrl+t), its parameters and FLOPs per image counted.

It says where the starting weights would come from instead of fetching them, so it answers
offline, in a second, for every preset. `check_model` is its model half, which a run's start
calls before it makes the folder, so that a model that cannot be built starts nothing.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.compute.device import select_runtime
from engine.data.datasets import folder
from engine.data.splits import DatasetMissing, DatasetUnusable, describe
from engine.experiment.config import Experiment, arch_kind
from engine.models import build_model, count_parameters, weights_note
from engine.models.flops import forward_flops


def dry_run(exp: Experiment) -> dict[str, Any]:
    """Build the model for the experiment's data and run a dummy batch of two through it (a folder
    dataset still needs its class folders, to know the class count). Returns the parameter counts,
    the shapes in and out, the device, the class count, and `weights`: a sentence saying whether
    the starting weights are present (and where) or will be fetched when the run starts ("none" for
    a model trained from scratch), and `flops`: one image's forward pass in FLOPs (a multiply-add two)."""
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
        "flops": forward_flops(model.float().to(memory_format=torch.contiguous_format), (channels, size, size)),
        "input_shape": list(x.shape),
        "output_shape": list(out.shape),
        "device": rt.describe(),
        "classes": classes,
        "weights": weights_note(exp.model),
    }


def check_model(exp: Experiment) -> None:
    """Build a model from elsewhere (a library's, the user's own file) for the experiment's data, on the
    CPU and without fetching weights: ConfigError naming the fault when it cannot be built or its output
    is not (batch, classes). Nothing for the built-ins, which the config's validation has judged; nothing
    when the data cannot be described yet (the run itself says why)."""
    if arch_kind(exp.model.arch) == "builtin":
        return
    try:
        # A folder's class count without opening every image: the run checks those itself.
        d = exp.data
        classes, channels, size = folder.describe(d) if d.dataset == "folder" else describe(d)
    except (DatasetMissing, DatasetUnusable):
        return
    build_model(exp.model, classes, size, channels, fetch=False)
