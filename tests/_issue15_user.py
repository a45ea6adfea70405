"""A user's own model, data and loss, named by import path in the issue-15 tests:
a model taking a dict (``features``, ``scale``), a data factory returning mapping
batches (a list for training, a DataLoader-like list for test), and ``fn(output, batch)``."""

from __future__ import annotations

import torch
from torch import nn


class DictNet(nn.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.lin = nn.Linear(4, width)
        self.out = nn.Linear(width, 2)

    def forward(self, features: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.lin(features * scale[:, None])))


def make_net(width: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return DictNet(width)


def _batches(n: int, seed: int, size: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g) * 3 + 5  # far from standardised on purpose
    s = torch.rand(n, generator=g) + 0.5
    y = (x[:, 0] > 5).long()
    return [
        {"features": x[i : i + size], "scale": s[i : i + size], "labels": y[i : i + size]}
        for i in range(0, n, size)
    ]


def make_data(n: int = 40, size: int = 16) -> dict:
    return {"train": _batches(n, 1, size), "test": _batches(8, 2, 8)}


def loss(output: torch.Tensor, batch: dict) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(output, batch["labels"])


def broken_data() -> object:
    return 42
