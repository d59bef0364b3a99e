"""The "Backbone" network of report 003 (CIFAR-10), as PRESETS.md transcribes it.

N backbones in sequence, then a classifier: spatial average pool → Dropout(model.dropout) →
Linear to the classes (the head). A backbone holds K conv blocks in parallel over the same input
X and mixes them with one weight per block and per image:

    a = sigmoid(SAP(X) W)                      W: Linear(input channels → K)
    O = BatchNorm2d(a_1 Conv_1(X) + … + a_K Conv_K(X))

A conv block is M layers, each Conv2d(3x3, padding 1) → BatchNorm2d → ReLU → MaxPool2d(2) →
Dropout(model.conv_dropout), with the channels of model.backbone_channels (input first; M is one
less than its length). The report's [[3, 128, 256], [256, 512, 1028]] with K = [3, 3] takes
32 pixels through 16, 8 (backbone 1) and 4, 2 (backbone 2) to 1028 maps of 2x2.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_layer(in_channels: int, out_channels: int, conv_dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Dropout(conv_dropout),
    )


def conv_block(channels: list[int], conv_dropout: float) -> nn.Sequential:
    return nn.Sequential(*(conv_layer(a, b, conv_dropout) for a, b in zip(channels, channels[1:], strict=False)))


class Backbone(nn.Module):
    """K parallel conv blocks over the same input, weighted per image by sigmoid(SAP(X) W), then BatchNorm."""

    def __init__(self, channels: list[int], k: int, conv_dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(conv_block(channels, conv_dropout) for _ in range(k))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.gate = nn.Linear(channels[0], k)
        self.norm = nn.BatchNorm2d(channels[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(self.gate(self.pool(x).flatten(1)))  # (B, K)
        mixed = sum(a[:, i, None, None, None] * block(x) for i, block in enumerate(self.blocks))
        return self.norm(mixed)


class BackboneNet(nn.Module):
    def __init__(
        self,
        num_classes: int,
        channels: list[list[int]],
        ks: list[int],
        conv_dropout: float = 0.2,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.backbones = nn.Sequential(*(Backbone(c, k, conv_dropout) for c, k in zip(channels, ks, strict=True)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels[-1][-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.flatten(self.pool(self.backbones(x)))))
