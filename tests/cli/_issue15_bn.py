"""A user's BatchNorm model and (x, y) data factory, named by import path in tests."""

from __future__ import annotations

import torch
from torch import nn


def make_net(bn: bool = True) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(3, 4)] + ([nn.BatchNorm1d(4)] if bn else []) + [nn.Tanh(), nn.Linear(4, 2)]
    return nn.Sequential(*layers)


def make_plain() -> nn.Module:
    return make_net(bn=False)


def make_data(n: int = 24) -> tuple:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(int(n), 3, generator=g)
    y = (x[:, 0] > 0).long()
    return (x, y), (x[:8], y[:8])
