"""Train and test tensors of one data source (:class:`DataSplits`), seeded subsets and batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from ...errors import DataError
from .spec import DataSpec

__all__ = ["Batch", "DataSplits", "subsample", "iterate_batches"]


Batch = tuple[torch.Tensor, torch.Tensor]


def subsample(
    x: torch.Tensor, y: torch.Tensor, n: int | None, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of ``n`` samples (all of them when ``n`` is None or too large).

    The same ``(n, seed)`` always picks the same samples, so several checkpoints are
    probed on identical data.
    """
    if n is None or n >= len(y):
        return x, y
    if n < 1:
        raise DataError(f"--samples must be at least 1, got {n}")
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(y), generator=g)[: int(n)].sort().values
    return x[idx], y[idx]


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    device: torch.device | str | None = None,
) -> Iterator[Batch]:
    """Yield ``(x, y)`` mini-batches; the last one may be smaller unless ``drop_last``."""
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    n = len(y)
    order = torch.randperm(n, generator=generator) if shuffle else None
    stop = n - (n % batch_size) if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            xb, yb = x[idx], y[idx]
        if device is not None:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        yield xb, yb


@dataclass
class DataSplits:
    """Train and test tensors of one data source.

    ``x_*`` are float32 tensors of shape ``(N, *input_shape)``, ``y_*`` int64 class labels;
    the token sources (``text``, ``textfile``) give int64 token ids ``(N, context)`` for
    both, ``y`` being ``x`` shifted by one token.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    spec: DataSpec = field(default_factory=DataSpec)
    mean: list[float] | None = None
    std: list[float] | None = None
    #: what was done to the inputs: ``{"mode": "none" | "standard" | "fixed", "mean",
    #: "std", "source"}`` (:func:`~sharpscope.problem.data.load_data` fills it in)
    normalization: dict[str, Any] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``("train" | "test")`` -> ``(x, y)``."""
        if name == "train":
            return self.x_train, self.y_train
        if name == "test":
            return self.x_test, self.y_test
        raise DataError(f"unknown split {name!r}: use train or test")

    def subset(
        self, split: str = "train", samples: int | None = None, *, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A seeded subset of a split (see :func:`subsample`)."""
        x, y = self.split(split)
        return subsample(x, y, samples, seed=seed)

    def batches(
        self,
        split: str = "train",
        batch_size: int = 256,
        *,
        samples: int | None = None,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> list[Batch]:
        """The (optionally subsampled) split cut into batches, as a list that can be iterated many times."""
        x, y = self.subset(split, samples, seed=seed)
        return list(iterate_batches(x, y, batch_size, device=device))

    def loader(
        self, split: str = "train", batch_size: int = 128, *, shuffle: bool = False, seed: int = 0
    ) -> torch.utils.data.DataLoader:
        """A :class:`torch.utils.data.DataLoader` over a split."""
        x, y = self.split(split)
        g = torch.Generator().manual_seed(int(seed))
        return torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x, y),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=g,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "train": len(self.y_train),
            "test": len(self.y_test),
            "normalization": self.normalization_record(),
        }

    def normalization_record(self) -> dict[str, Any]:
        """What was done to the inputs (built from ``mean``/``std`` when not recorded)."""
        if self.normalization is not None:
            return dict(self.normalization)
        if self.mean is None:
            return {"mode": "none"}
        return {"mode": "standard", "mean": self.mean, "std": self.std, "source": "given"}

    def count(self, split: str = "train") -> int:
        return len(self.split(split)[1])
