"""``digits``: scikit-learn's bundled 8x8 digits, fixed 80/20 split."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from .arrays import _as_tensors, _split_arrays


def _load_digits(arg: str) -> tuple[torch.Tensor, ...]:
    if arg:
        raise DataError(f"data spec 'digits' takes no argument, got 'digits:{arg}'")
    images, target = _digits_arrays()
    x = (images.astype(np.float32) / 16.0)[:, None, :, :]
    return (
        *_as_tensors(*_split_arrays(x, target.astype(np.int64), 0.2, seed=0), where="digits"),
        10,
    )


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as ``(images (1797, 8, 8), target)``, read once per process.

    The CSV that ``sklearn.datasets.load_digits`` reads is parsed directly when it can
    be found, which skips importing ``sklearn.datasets`` (seconds on a small machine).
    """
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        csv = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            table = np.loadtxt(csv, delimiter=",")
            images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
            break
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        images, target = d.images, d.target
    images.setflags(write=False)
    target.setflags(write=False)
    return images, target
