"""AlexNet (Krizhevsky et al. 2012) for small images: 32x32 (report 000, CIFAR-100) and 64x64
(report 002, Tiny ImageNet).

Both keep the original's widths (96, 256, 384, 384, 256 conv channels; 4096, 4096 hidden units),
ReLU after every conv and hidden FC layer, overlapping max-pooling (3x3, stride 2) after conv1,
conv2 and conv5, dropout (model.dropout; the reports use it) before FC1 and FC2, and no
normalisation layers. Only the first conv changes with the input size, so that both variants end
on the same 256x3x3 maps (the original's 224 pixels end on 256x6x6):

    32x32: conv1 5x5 stride 1 pad 2 → 32, pool → 15, conv2 5x5 pad 2 → 15, pool → 7,
           conv3-5 3x3 pad 1 → 7, pool → 3
    64x64: conv1 7x7 stride 2 pad 3 → 32, then as above → 3

The reports name the architecture but not these sizes; the original's 11x11 stride-4 conv1 would
leave 64 pixels at 1x1 after the last pool.
"""

from __future__ import annotations

import torch
from torch import nn

# input size → conv1 (kernel, stride, padding)
CONV1 = {32: (5, 1, 2), 64: (7, 2, 3)}
FEATURES = 256 * 3 * 3


class AlexNet(nn.Module):
    def __init__(self, num_classes: int, image_size: int, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        if image_size not in CONV1:
            raise ValueError(f"AlexNet is planned for {sorted(CONV1)} pixel inputs, not {image_size}")
        k, s, p = CONV1[image_size]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, k, stride=s, padding=p),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(96, 256, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(256, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(FEATURES, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(4096, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.classifier(self.flatten(self.features(x))))
