"""``cifar10:DIR`` and ``cifar100:DIR``: the CIFAR python batches, read with
:func:`~sharpscope.problem.data.pickle_safe.restricted_unpickle`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import DataError
from .arrays import _as_tensors, _dir
from .pickle_safe import restricted_unpickle


def _unpickle_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    obj = restricted_unpickle(path.read_bytes(), where=str(path))
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, found {type(obj).__name__}")
    obj = {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}
    key = label_key.decode()
    if "data" not in obj or key not in obj:
        raise DataError(f"{path}: missing 'data' or '{key}' entries")
    try:
        x = np.asarray(obj["data"], dtype=np.uint8)
        y = np.asarray(obj[key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(
            f"{path}: 'data' must be uint8 pixels and '{key}' integers ({exc})"
        ) from exc
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise DataError(
            f"{path}: expected data of shape (N, 3072) and N labels, found {list(x.shape)} and {len(y)}"
        )
    return x.reshape(-1, 3, 32, 32), y


def _cifar(
    arg: str,
    name: str,
    train_files: list[str],
    test_files: list[str],
    sub: str,
    label: bytes,
    classes: int,
) -> tuple[Any, ...]:
    folder = _dir(arg, name)
    if not (folder / test_files[0]).is_file() and (folder / sub).is_dir():
        folder = folder / sub
    for f in train_files + test_files:
        if not (folder / f).is_file():
            raise DataError(f"{name}: missing {f} in {folder}")
    tr = [_unpickle_batch(folder / f, label) for f in train_files]
    te = [_unpickle_batch(folder / f, label) for f in test_files]
    x_train = np.concatenate([a for a, _ in tr]).astype(np.float32) / 255.0
    x_test = np.concatenate([a for a, _ in te]).astype(np.float32) / 255.0
    return (
        *_as_tensors(
            x_train,
            np.concatenate([b for _, b in tr]),
            x_test,
            np.concatenate([b for _, b in te]),
            name,
        ),
        classes,
    )


def _load_cifar10(arg: str) -> tuple[torch.Tensor, ...]:
    return _cifar(
        arg,
        "cifar10",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "cifar-10-batches-py",
        b"labels",
        10,
    )


def _load_cifar100(arg: str) -> tuple[torch.Tensor, ...]:
    return _cifar(arg, "cifar100", ["train"], ["test"], "cifar-100-python", b"fine_labels", 100)
