"""Data a user's factory gave as batches (mapping batches, ``(mapping, y)`` pairs):
:class:`BatchSplits`, with the same :meth:`batches` as :class:`DataSplits`.

The batches of a split are joined into one column per tensor when their shapes allow
it (then ``samples`` draws a seeded subset and ``batch_size`` re-cuts them, exactly as
for tensors); otherwise they are kept as given and used whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ...errors import DataError
from ...runtime.batches import batch_head, describe_batch, move_batch
from .spec import DataSpec

__all__ = ["BatchSplits", "join_columns", "rows"]


def rows(batch: Any) -> int:
    """How many samples (rows) a batch or joined column holds."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, Mapping):
        return rows(next(iter(batch.values())))
    return rows(batch[0])


def _cat(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, torch.Tensor):
        if any(not isinstance(p, torch.Tensor) or p.shape[1:] != first.shape[1:] for p in parts):
            raise ValueError("shapes differ")
        return torch.cat(parts)
    if isinstance(first, Mapping):
        if any(not isinstance(p, Mapping) or set(p) != set(first) for p in parts):
            raise ValueError("keys differ")
        return {k: _cat([p[k] for p in parts]) for k in first}
    if isinstance(first, (tuple, list)):
        if any(not isinstance(p, (tuple, list)) or len(p) != len(first) for p in parts):
            raise ValueError("structures differ")
        return tuple(_cat([p[i] for p in parts]) for i in range(len(first)))
    raise ValueError(f"a {type(first).__name__} cannot be joined")


def join_columns(batches: list[Any]) -> Any | None:
    """The batches joined along their first dimension, or None when they cannot be."""
    try:
        return _cat(batches)
    except (ValueError, RuntimeError, IndexError):
        return None


def _take(col: Any, idx: torch.Tensor) -> Any:
    if isinstance(col, torch.Tensor):
        return col[idx]
    if isinstance(col, Mapping):
        return {k: _take(v, idx) for k, v in col.items()}
    return tuple(_take(v, idx) for v in col)


def _rows_slice(col: Any, start: int, stop: int) -> Any:
    if isinstance(col, torch.Tensor):
        return col[start:stop]
    if isinstance(col, Mapping):
        return {k: _rows_slice(v, start, stop) for k, v in col.items()}
    return tuple(_rows_slice(v, start, stop) for v in col)


@dataclass
class BatchSplits:
    """Train and test batches of a user's data factory (any batch structure)."""

    train: list[Any]
    test: list[Any]
    num_classes: int = 0
    spec: DataSpec = field(default_factory=DataSpec)
    normalization: dict[str, Any] = field(
        default_factory=lambda: {"mode": "none", "note": "mapping batches are used as given"}
    )
    mean = None
    std = None

    def __post_init__(self) -> None:
        self._columns = {"train": join_columns(self.train), "test": join_columns(self.test)}

    @property
    def input_shape(self) -> tuple[int, ...]:
        first = self.train[0]
        x = first[0] if isinstance(first, (tuple, list)) else first
        if isinstance(x, Mapping):
            x = next(iter(x.values()))
        return tuple(int(s) for s in x.shape[1:])

    def count(self, split: str = "train") -> int:
        return sum(rows(b) for b in self._split(split))

    def _split(self, name: str) -> list[Any]:
        if name not in ("train", "test"):
            raise DataError(f"unknown split {name!r}: use train or test")
        return self.train if name == "train" else self.test

    def batches(
        self,
        split: str = "train",
        batch_size: int = 256,
        *,
        samples: int | None = None,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> list[Any]:
        """A seeded subset of ``samples`` rows of a split, cut into ``batch_size`` rows."""
        if batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {batch_size}")
        given = self._split(split)
        if not given:
            raise DataError(f"the data factory gave no {split} batches")
        col = self._columns[split]
        n = self.count(split)
        if col is None:
            if samples is not None and samples < n:
                raise DataError(
                    f"--samples {samples}: the {split} batches have different shapes "
                    f"({describe_batch(given[0])}, ...) and cannot be subsampled; use all "
                    f"{n} (--samples 0)"
                )
            return [move_batch(b, device) for b in given]
        if samples is not None and samples < n:
            if samples < 1:
                raise DataError(f"--samples must be at least 1, got {samples}")
            g = torch.Generator().manual_seed(int(seed))
            idx = torch.randperm(n, generator=g)[: int(samples)].sort().values
            col, n = _take(col, idx), int(samples)
        return [
            move_batch(_rows_slice(col, s, s + batch_size), device) for s in range(0, n, batch_size)
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "batch": describe_batch(batch_head(self.train[0], 1)),
            "train": self.count("train"),
            "test": self.count("test"),
            "normalization": self.normalization,
        }
