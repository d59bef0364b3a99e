"""ResNet-34 and ResNet-50 from torchvision (report 004), with the classifier named `head`.

The network is torchvision's, layer for layer, including its ImageNet stem (7x7 stride-2 conv
and a 3x3 stride-2 max-pool): report 004 trained torchvision's models on 32x32 CIFAR-100 as they
are, and the pretrained weights only fit that stem. On 32 pixels the stem leaves 8x8 maps for
layer1 and layer4 ends at 1x1. The parameter names are torchvision's, except `fc`, which is
`head` here (with Dropout(model.dropout) before it), so a torchvision state dict loads with that
one rename.

ImageNet weights (ResNet-50 only) come through torchvision's weights API as
ResNet50_Weights.IMAGENET1K_V2: report 004 "used the default pretrained weights", and V2 is
torchvision's DEFAULT for ResNet-50 (80.9 % top-1, against V1's 76.1 %). torchvision keeps the
file in torch.hub.get_dir()/checkpoints and downloads it only when it is not there.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

import torch
import torchvision.models as tvm
from torch import nn

from engine.experiment.errors import ConfigError
from engine.models.weights import WeightsUnavailable

IMAGENET_WEIGHTS = tvm.ResNet50_Weights.IMAGENET1K_V2
BUILDERS = {34: tvm.resnet34, 50: tvm.resnet50}


class ResNet(nn.Module):
    """A torchvision ResNet whose final classifier is a new `head` with num_classes outputs."""

    def __init__(self, net: tvm.ResNet, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.avgpool = net.avgpool
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(net.fc.in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(self.dropout(torch.flatten(self.avgpool(x), 1)))


def imagenet_weights_file() -> str:
    """Where torchvision keeps (and looks for) the ResNet-50 ImageNet weights."""
    name = os.path.basename(urlparse(IMAGENET_WEIGHTS.url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", name)


def _imagenet_resnet50() -> tvm.ResNet:
    try:
        return tvm.resnet50(weights=IMAGENET_WEIGHTS, progress=False)  # no progress bar: it would tear a TUI
    except Exception as err:  # offline (URLError), a broken cache file, a full disk: all the user's to fix
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        path = imagenet_weights_file()
        raise WeightsUnavailable(
            f"ResNet-50 ImageNet weights (torchvision IMAGENET1K_V2) are not available: {reason}. "
            f"torchvision looks for {os.path.basename(path)} in its cache folder {os.path.dirname(path)} "
            f"and downloads it from {IMAGENET_WEIGHTS.url} when missing. Put the file there, "
            "or set model.weights_path to a local weights file instead."
        ) from None


def resnet(depth: int, num_classes: int, in_channels: int = 3, dropout: float = 0.0, imagenet: bool = False) -> ResNet:
    if imagenet:
        if depth != 50:
            raise ConfigError([("model.pretrained", "ImageNet weights are available for resnet50 only")])
        if in_channels != 3:
            raise ConfigError(
                [("model.pretrained", f"ImageNet weights take 3-channel images, the data has {in_channels}")]
            )
        return ResNet(_imagenet_resnet50(), num_classes, dropout)
    net = BUILDERS[depth]()
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision inits it
    return ResNet(net, num_classes, dropout)
