"""``vgg11``: VGG-11 for CIFAR."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .common import _image_shape

__all__ = ["VGG"]


_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    """VGG-11 for CIFAR (conv stack of Simonyan & Zisserman, one linear classifier).

    Max-pooling layers are dropped once the feature map is 1x1, so small inputs (8x8 digits) work.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        batchnorm: bool = True,
        width_multiplier: float = 1.0,
    ) -> None:
        super().__init__()
        c, h, w = _image_shape(input_shape)
        layers: list[nn.Module] = []
        for v in _VGG11:
            if v == "M":
                if min(h, w) >= 2:
                    layers.append(nn.MaxPool2d(2))
                    h, w = h // 2, w // 2
                continue
            out = max(1, int(round(int(v) * width_multiplier)))
            layers.append(nn.Conv2d(c, out, 3, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            c = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
