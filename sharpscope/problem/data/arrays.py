"""Checks and conversions shared by the loaders: arrays to tensors, seeded splits, class counts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import DataError


def _split_arrays(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def _as_tensors(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any, where: str
) -> tuple[torch.Tensor, ...]:
    out = []
    for name, arr in (
        ("x_train", x_train),
        ("y_train", y_train),
        ("x_test", x_test),
        ("y_test", y_test),
    ):
        try:
            t = torch.as_tensor(np.asarray(arr)) if not isinstance(arr, torch.Tensor) else arr
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DataError(
                f"{where}: {name} is not a numeric array (found a {type(arr).__name__})"
            ) from exc
        if t.is_complex() or t.dtype == torch.bool and name.startswith("x"):
            raise DataError(f"{where}: {name} must hold real numbers, found {t.dtype}")
        if name.startswith("x"):
            if t.ndim < 2:
                raise DataError(
                    f"{where}: {name} must have shape (N, ...) with one sample per row, found {list(t.shape)}"
                )
            t = t.to(torch.float32)
        else:
            if t.is_floating_point() and not torch.equal(t, t.round()):
                raise DataError(f"{where}: {name} must hold integer class labels")
            t = t.to(torch.int64).reshape(-1)
        out.append(t)
    xtr, ytr, xte, yte = out
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise DataError(
            f"{where}: x and y lengths differ (train {len(xtr)} vs {len(ytr)}, test {len(xte)} vs {len(yte)})"
        )
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(
            f"{where}: train and test samples have different shapes {list(xtr.shape[1:])} and {list(xte.shape[1:])}"
        )
    if len(ytr) == 0:
        raise DataError(f"{where}: the training split is empty")
    return xtr, ytr, xte, yte


def _num_classes(*ys: torch.Tensor, declared: int | None = None, where: str = "data") -> int:
    """The number of classes: the source's own count when it has one, else the largest label + 1."""
    lo = min(int(y.min()) for y in ys if len(y))
    if lo < 0:
        raise DataError(f"{where}: class labels must be >= 0, found {lo}")
    hi = max(int(y.max()) for y in ys if len(y))
    if declared is None:
        return hi + 1
    if hi >= declared:
        raise DataError(f"{where}: label {hi} is out of range for {declared} classes")
    return int(declared)


def _dir(arg: str, name: str) -> Path:
    if not arg:
        raise DataError(f"data spec '{name}' needs a folder: '{name}:DIR'")
    path = Path(os.path.expanduser(arg))
    if not path.is_dir():
        raise DataError(f"{name}: no such folder: {arg}")
    return path
