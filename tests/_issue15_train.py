"""Issue 15 (training): a token model taking ``input_ids``/``attention_mask`` (an
embedding and a linear head), a data factory returning mapping batches and a user loss
``fn(output, batch)``, named by import path from the training tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, T, CLASSES = 13, 6, 3


class TokenClassifier(nn.Module):
    """Mean of the embeddings of the unmasked tokens, then a linear head: (B, C) scores."""

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, dim)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        m = attention_mask.to(self.emb.weight.dtype).unsqueeze(-1)
        pooled = (self.emb(input_ids) * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.head(pooled)


def make_net(dim: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return TokenClassifier(dim)


def _batches(n: int, seed: int, size: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n, T), generator=g)
    lengths = torch.randint(2, T + 1, (n,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    labels = ids[:, 0] % CLASSES
    return [
        {"input_ids": ids[i : i + size], "attention_mask": mask[i : i + size],
         "labels": labels[i : i + size]}
        for i in range(0, n, size)
    ]  # fmt: skip


def make_data(n: int = 36, size: int = 8, test: int = 10) -> dict:
    return {"train": _batches(n, 1, size), "test": _batches(test, 2, 5)}


def loss(output: torch.Tensor, batch: dict) -> torch.Tensor:
    return F.cross_entropy(output, batch["labels"])


def per_sample_loss(output: torch.Tensor, batch: dict) -> torch.Tensor:
    return F.cross_entropy(output, batch["labels"], reduction="none")


def wrong_type() -> object:
    return "not data"


class Regressor(nn.Module):
    """(B,) predictions from ``features``: no class scores, so no accuracy."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.lin(features).squeeze(-1)


def make_regressor() -> nn.Module:
    torch.manual_seed(0)
    return Regressor()


def make_regression(n: int = 20) -> tuple:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 3, generator=g)
    t = x @ torch.tensor([1.0, -2.0, 0.5])
    batches = [{"features": x[i : i + 5], "target": t[i : i + 5]} for i in range(0, n, 5)]
    return batches, batches[:2]


def squared_error(output: torch.Tensor, batch: dict) -> torch.Tensor:
    return ((output - batch["target"]) ** 2).mean()
