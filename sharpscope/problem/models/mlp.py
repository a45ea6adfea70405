"""``mlp``: a fully connected network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .common import _activation, _prod

__all__ = ["MLP"]


class MLP(nn.Module):
    """Fully connected network: flatten, ``len(hidden)`` hidden layers, linear head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        hidden: Sequence[int] = (128, 64),
        activation: str = "relu",
        batchnorm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        act = _activation(activation)
        layers: list[nn.Module] = [nn.Flatten()]
        width = _prod(input_shape)
        for h in hidden:
            layers.append(nn.Linear(width, int(h)))
            if batchnorm:
                layers.append(nn.BatchNorm1d(int(h)))
            layers.append(act())
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
