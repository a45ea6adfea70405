"""Data sources by spec string, always local (sharpscope never touches the network).

=====================  ==========================================================
spec                   what it loads
=====================  ==========================================================
``digits``             scikit-learn's bundled 8x8 digits (the default), fixed 80/20 split
``synthetic[:k=v,..]`` procedural Gaussian class clusters (keys: ``train``, ``test``,
                       ``classes``, ``shape`` like ``1x8x8``, ``seed``, ``noise``)
``mnist:DIR``          the four MNIST idx files, gzipped or not
``cifar10:DIR``        the CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``)
``cifar100:DIR``       the CIFAR-100 python files (``train``, ``test``; fine labels)
``tensors:FILE``       ``.npz`` or ``.pt`` holding ``x_train, y_train, x_test, y_test``
``folder:DIR``         one sub-folder per class of images; ``DIR/train`` and
                       ``DIR/test`` if present, else a seeded 80/20 split
``text[:k=v,..]``      byte-level next-token windows of the bundled corpus (keys:
                       ``context``, ``windows``, ``test_windows``, ``seed``)
``textfile:PATH[?..]`` the same windows of a user's UTF-8 text file
=====================  ==========================================================

Token sources give int64 inputs ``(N, context)`` and targets ``(N, context)`` (256 token
ids); only floating inputs are standardised, token ids never are.

CIFAR batches are pickles: they are read with a restricted unpickler that only
builds numpy arrays, lists, dicts, strings and numbers, so a hostile file cannot
run code. ``.pt`` tensor files are read with ``torch.load(weights_only=True)``.

Example:
    >>> data = load_data("digits")
    >>> data.input_shape, data.num_classes, len(data.y_train), len(data.y_test)
    ((1, 8, 8), 10, 1438, 359)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ...errors import DataError
from .arrays import _num_classes
from .cifar import _load_cifar10, _load_cifar100
from .digits import _load_digits
from .folder import _load_folder
from .mnist import _load_mnist, read_idx
from .pickle_safe import restricted_unpickle
from .spec import DataSpec
from .splits import Batch, DataSplits, iterate_batches, subsample
from .synthetic import _load_synthetic
from .tensors import _load_tensors
from .text import load_text_source, load_textfile_source

__all__ = [
    "DataSplits",
    "DataSpec",
    "DATA_SOURCES",
    "load_data",
    "check_finite_inputs",
    "iterate_batches",
    "subsample",
    "restricted_unpickle",
    "read_idx",
    "Batch",
]


# Each loader takes the text after "name:" and returns (x_train, y_train, x_test, y_test)
# and, when the source knows it, the number of classes as a fifth item.
DATA_SOURCES: dict[str, Callable[[str], tuple[Any, ...]]] = {
    "digits": _load_digits,
    "synthetic": _load_synthetic,
    "mnist": _load_mnist,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "tensors": _load_tensors,
    "folder": _load_folder,
    "text": load_text_source,
    "textfile": load_textfile_source,
}


def check_finite_inputs(
    splits: DataSplits | None = None, *, spec: str | None = None, **xs: Any
) -> None:
    """Refuse inputs holding NaN or Inf: the error names the data, not the learning rate.

    Pass loaded :class:`DataSplits`, or ``spec=`` and the arrays as ``x_train=..., x_test=...``.
    """
    if splits is not None:
        spec = splits.spec.spec
        xs = {"x_train": splits.x_train, "x_test": splits.x_test}
    for key, label in (("x_train", "training"), ("x_test", "test")):
        x = xs.get(key)
        if x is None or not x.is_floating_point():
            continue
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise DataError(f"data {spec!r} has {bad} non-finite values in the {label} inputs")


def load_data(
    spec: str | DataSpec = "digits",
    *,
    samples: int | None = None,
    seed: int = 0,
    normalize: bool = True,
) -> DataSplits:
    """Load a data source by spec string (see the module docstring for the specs).

    Args:
        spec: e.g. ``"digits"``, ``"cifar10:~/data/cifar"``, ``"tensors:data.npz"``.
        samples: keep a seeded random subset of this many training samples.
        seed: the seed of that subset.
        normalize: standardise each input channel with the training split's mean and std
            (floating inputs only; the token ids of ``text``/``textfile`` are kept).
    """
    if isinstance(spec, DataSpec):
        samples, seed, normalize, spec = spec.samples, spec.seed, spec.normalize, spec.spec
    name, _, arg = str(spec).partition(":")
    if name not in DATA_SOURCES:
        raise DataError(f"unknown data source {name!r}: choose one of {', '.join(DATA_SOURCES)}")
    loaded = DATA_SOURCES[name](arg)
    x_train, y_train, x_test, y_test = loaded[:4]
    num_classes = _num_classes(
        y_train, y_test, declared=loaded[4] if len(loaded) > 4 else None, where=name
    )
    check_finite_inputs(spec=str(spec), x_train=x_train, x_test=x_test)
    x_train, y_train = subsample(x_train, y_train, samples, seed=seed)
    mean = std = None
    if normalize and x_train.is_floating_point():  # token ids are never standardised
        dims = [0] + list(range(2, x_train.ndim))
        m = x_train.mean(dim=dims, keepdim=True)
        s = (
            x_train.std(dim=dims, keepdim=True).clamp_min(1e-6)
            if len(x_train) > 1
            else torch.ones_like(m)
        )
        x_train, x_test = (x_train - m) / s, (x_test - m) / s
        mean, std = m.flatten().tolist(), s.flatten().tolist()
    return DataSplits(
        x_train.contiguous(),
        y_train,
        x_test.contiguous(),
        y_test,
        num_classes,
        DataSpec(str(spec), samples, seed, normalize),
        mean,
        std,
    )
