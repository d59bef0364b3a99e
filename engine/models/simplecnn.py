"""SimpleCNN of report 004, for 32x32 images.

Four blocks Conv2d(3x3, padding 1) → MaxPool2d(2) → BatchNorm2d → ReLU with 32, 64, 128 and 256
channels take 32x32 pixels to 16, 8, 4, 2; the 256x2x2 maps flatten to 1024 values →
Linear 512 → ReLU → Dropout(model.dropout) → Linear to the classes (the head). The order
pool-before-norm is the report's.
"""

from __future__ import annotations

import torch
from torch import nn

CHANNELS = (32, 64, 128, 256)
FLAT = CHANNELS[-1] * 2 * 2  # 32 pixels halved four times


class SimpleCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        blocks, c = [], in_channels
        for out in CHANNELS:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c, out, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(out), nn.ReLU(inplace=True)
                )
            )
            c = out
        self.features = nn.Sequential(*blocks)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(FLAT, 512)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.features(x))
        return self.head(self.dropout(self.relu(self.fc(x))))
