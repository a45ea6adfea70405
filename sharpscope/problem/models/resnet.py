"""``resnet20``, ``resnet32``, ``resnet56``: the CIFAR ResNets of He et al. 2016, with
``batchnorm=False`` and ``skip=False`` options as in Li et al. 2018, "Visualizing the Loss
Landscape of Neural Nets".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...errors import ModelSpecError
from .common import _image_shape

__all__ = ["BasicBlock", "CifarResNet"]


class BasicBlock(nn.Module):
    """The two-conv residual block of the CIFAR ResNets.

    Where the shape changes the shortcut is a 1x1 convolution (+ BatchNorm), as in
    the ResNets of Li et al. 2018's loss-landscape code; ``skip=False`` removes it.
    """

    def __init__(
        self, in_planes: int, planes: int, stride: int, *, batchnorm: bool, skip: bool
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=not batchnorm)
        self.bn1 = nn.BatchNorm2d(planes) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=not batchnorm)
        self.bn2 = nn.BatchNorm2d(planes) if batchnorm else nn.Identity()
        self.skip = skip
        self.shortcut: nn.Module = nn.Identity()
        if skip and (stride != 1 or in_planes != planes):
            layers: list[nn.Module] = [
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=not batchnorm)
            ]
            if batchnorm:
                layers.append(nn.BatchNorm2d(planes))
            self.shortcut = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.skip:
            out = out + self.shortcut(x)
        return torch.relu(out)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR (He et al. 2016, section 4.2): widths 16, 32, 64."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        depth: int,
        batchnorm: bool = True,
        skip: bool = True,
        width: int = 16,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ModelSpecError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 56...), got {depth}")
        n = (depth - 2) // 6
        c, _, _ = _image_shape(input_shape)
        w = int(width)
        self.conv1 = nn.Conv2d(c, w, 3, padding=1, bias=not batchnorm)
        self.bn1 = nn.BatchNorm2d(w) if batchnorm else nn.Identity()
        blocks: list[nn.Module] = []
        in_planes = w
        for stage, planes in enumerate((w, 2 * w, 4 * w)):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride, batchnorm=batchnorm, skip=skip))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        return self.fc(torch.flatten(self.pool(out), 1))
