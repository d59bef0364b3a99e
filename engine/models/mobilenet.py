"""MobileNet v1 (Howard et al. 2017) for 32x32 images (report 001, CIFAR-100).

A 3x3 conv to 32 channels, then 13 depthwise separable blocks (3x3 depthwise conv → BN → ReLU →
1x1 pointwise conv → BN → ReLU), global average pooling, Dropout(model.dropout) and a Linear
head from 1024 features. The usual CIFAR adaptation: the first conv has stride 1 instead of 2,
every other stride is the paper's, so 32 pixels go

    conv 32ch s1 → 32 | 64 s1 → 32 | 128 s2 → 16, 128 | 256 s2 → 8, 256 | 512 s2 → 4, 5 x 512 |
    1024 s2 → 2, 1024 s1 → 2 | average pool → 1

(the paper's 224 pixels end at 7x7 before its pool). Width multiplier 1.
"""

from __future__ import annotations

import torch
from torch import nn

# (output channels, stride) of the 13 depthwise separable blocks
PLAN = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)) + ((512, 1),) * 5 + ((1024, 2), (1024, 1))


class DepthwiseSeparable(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class MobileNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        stem = nn.Conv2d(in_channels, 32, 3, stride=1, padding=1, bias=False)
        layers: list[nn.Module] = [nn.Sequential(stem, nn.BatchNorm2d(32), nn.ReLU(inplace=True))]
        c = 32
        for out, stride in PLAN:
            layers.append(DepthwiseSeparable(c, out, stride))
            c = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.flatten(self.pool(self.features(x)))))
