"""Weight initialisation schemes (`model.init`): how conv and linear weights start.

`default` keeps what the layers were built with (PyTorch's own init, or torchvision's for the
ResNets). Every other scheme redraws the weights of each Conv2d and Linear and zeroes their
biases, as reports 000 ("Xavier initialization, biases set to zero") and 003 (Xavier uniform)
describe. Norm layers keep weight 1 and bias 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _kaiming_uniform(w: torch.Tensor) -> None:
    # He et al. for ReLU networks, scaled by fan-in so the forward signal keeps its variance.
    nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu")


def _kaiming_normal(w: torch.Tensor) -> None:
    nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")


SCHEMES: dict[str, Callable[[torch.Tensor], object] | None] = {
    "default": None,
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_uniform": _kaiming_uniform,
    "kaiming_normal": _kaiming_normal,
}


def initialise(module: nn.Module, scheme: str) -> None:
    """Redraw the weights of every Conv2d and Linear in `module` (itself included) by `scheme`,
    biases to zero; `default` leaves them untouched."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown initialisation {scheme!r}; one of {', '.join(SCHEMES)}")
    draw = SCHEMES[scheme]
    if draw is None:
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            draw(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
