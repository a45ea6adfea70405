"""``cnn``: a small convolutional network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .common import _activation, _image_shape

__all__ = ["SmallCNN"]


class SmallCNN(nn.Module):
    """Small conv net: ``len(channels)`` conv(3x3)-[BN]-act-maxpool blocks, global average pool, linear head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        channels: Sequence[int] = (16, 32),
        activation: str = "relu",
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        c, h, w = _image_shape(input_shape)
        act = _activation(activation)
        layers: list[nn.Module] = []
        for ch in channels:
            layers.append(nn.Conv2d(c, int(ch), 3, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(int(ch)))
            layers.append(act())
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = int(ch)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, num_classes)
        self._in_shape = (c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return self.head(torch.flatten(self.pool(self.features(x)), 1))
