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
``pkg.mod:factory``    a user's factory (``?key=value&...`` its keyword arguments),
                       imported only when the caller names it (:mod:`.factory`)
=====================  ==========================================================

Any spec takes a trailing ``?normalize=none|standard|MEAN,STD|M1,../S1,..``
(:mod:`.normalization`).

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

import os
import re
from collections.abc import Callable
from typing import Any

import torch

from ...errors import DataError
from ...runtime.batches import describe_batch
from ..imports import is_import_path
from .arrays import _num_classes
from .batched import BatchSplits
from .cifar import _load_cifar10, _load_cifar100
from .digits import _load_digits
from .factory import load_factory
from .folder import _load_folder
from .mnist import _load_mnist, read_idx
from .normalization import apply_stats, fixed_stats, normalize_mode, parse_normalize, standard_stats
from .pickle_safe import restricted_unpickle
from .spec import DataSpec
from .splits import Batch, DataSplits, iterate_batches, subsample
from .synthetic import _load_synthetic
from .tensors import _load_tensors
from .text import load_text_source, load_textfile_source

__all__ = [
    "DataSplits",
    "BatchSplits",
    "DataSpec",
    "parse_normalize",
    "resolve_spec",
    "data_path",
    "with_path",
    "split_normalize",
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


_NORMALIZE_IN_SPEC = re.compile(r"^(?P<spec>.*?)[?&]normalize=(?P<value>[^?&]*)$")
#: sources whose argument is a file or folder (made absolute in ``DataSpec.resolved``)
PATH_SOURCES = ("mnist", "cifar10", "cifar100", "tensors", "folder", "textfile")


def split_normalize(spec: str) -> tuple[str, str | None]:
    """``"tensors:x.npz?normalize=none"`` -> ``("tensors:x.npz", "none")``."""
    m = _NORMALIZE_IN_SPEC.match(str(spec))
    return (m.group("spec"), m.group("value")) if m else (str(spec), None)


def data_path(spec: str) -> str | None:
    """The file or folder a path-based spec names (``None`` for the others)."""
    name, _, arg = str(spec).partition(":")
    if name not in PATH_SOURCES or not arg:
        return None
    return arg.rpartition("?")[0] if name == "textfile" and "?" in arg else arg


def with_path(spec: str, path: str) -> str:
    """``spec`` naming ``path`` instead of its own file or folder."""
    name, _, arg = str(spec).partition(":")
    old = data_path(spec)
    return f"{name}:{path}{arg[len(old) :] if old is not None else ''}"


def resolve_spec(spec: str) -> str:
    """``spec`` with its file or folder made absolute (as found from the working directory)."""
    path = data_path(spec)
    if path is None:
        return str(spec)
    return with_path(spec, os.path.abspath(os.path.expanduser(path)))


def _is_factory(name: str, spec: str) -> bool:
    return name not in DATA_SOURCES and is_import_path(spec)


def _normalise(
    x_train: torch.Tensor, x_test: torch.Tensor, normalize: bool | str, dspec: DataSpec
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The normalised inputs and the record of what was done."""
    mode = normalize_mode(normalize)
    if mode == "none":
        return x_train, x_test, {"mode": "none"}
    if not x_train.is_floating_point():
        return x_train, x_test, {"mode": "none", "note": "token ids are never normalised"}
    if mode == "fixed":
        mean, std = fixed_stats(str(normalize))
        source = "given"
    elif dspec.mean is not None and dspec.std is not None:
        mean, std, source = list(dspec.mean), list(dspec.std), "stored in the checkpoint"
    else:
        mean, std = standard_stats(x_train)
        source = "computed from the training split"
    where = f"data {dspec.spec!r}"
    x_train = apply_stats(x_train, mean, std, where=where)
    x_test = apply_stats(x_test, mean, std, where=where)
    return x_train, x_test, {"mode": mode, "mean": mean, "std": std, "source": source}


def load_data(
    spec: str | DataSpec = "digits",
    *,
    samples: int | None = None,
    seed: int = 0,
    normalize: bool | str = True,
    allow_import: bool = True,
) -> DataSplits | BatchSplits:
    """Load a data source by spec string (see the module docstring for the specs).

    Args:
        spec: e.g. ``"digits"``, ``"cifar10:~/data/cifar"``, ``"tensors:data.npz"``,
            ``"pkg.mod:factory?key=value"`` (:mod:`.factory`); a trailing
            ``?normalize=VALUE`` (``&normalize=`` after other options) sets ``normalize``.
            A :class:`DataSpec` brings its own options, and its stored statistics.
        samples: keep a seeded random subset of this many training samples.
        seed: the seed of that subset.
        normalize: ``True``/``"standard"`` (per channel, the training split's mean and
            std), ``False``/``"none"`` (the data as stored), or fixed numbers
            ``"MEAN,STD"``/``"M1,M2,../S1,S2,.."`` (:mod:`.normalization`). Floating inputs
            only: token ids are kept. What was done is in ``.normalization``.
        allow_import: import a ``pkg.mod:factory`` spec (False for a spec read from a file).
    """
    dspec = spec if isinstance(spec, DataSpec) else None
    if dspec is not None:
        samples, seed, normalize, spec = dspec.samples, dspec.seed, dspec.normalize, dspec.spec
    spec, in_spec = split_normalize(str(spec))
    normalize = parse_normalize(in_spec if in_spec is not None else normalize, where="normalize")
    dspec = DataSpec(
        spec, samples, seed, normalize,
        mean=dspec.mean if dspec is not None and normalize is True else None,
        std=dspec.std if dspec is not None and normalize is True else None,
    )  # fmt: skip
    name, _, arg = spec.partition(":")
    if _is_factory(name, spec):
        if not allow_import:
            raise DataError(
                f"the data factory {spec!r} is named by import path in a file; sharpscope "
                f"never imports a name read from a file: pass --data {spec} if you trust it"
            )
        loaded: Any = load_factory(spec)
        if isinstance(loaded, BatchSplits):
            return _batch_splits(loaded, dspec)
        name = spec
    elif name not in DATA_SOURCES:
        raise DataError(
            f"unknown data source {name!r}: choose one of {', '.join(DATA_SOURCES)} "
            "or give 'package.module:factory'"
        )
    else:
        loaded = DATA_SOURCES[name](arg)
    x_train, y_train, x_test, y_test = loaded[:4]
    num_classes = _num_classes(
        y_train, y_test, declared=loaded[4] if len(loaded) > 4 else None, where=name
    )
    check_finite_inputs(spec=spec, x_train=x_train, x_test=x_test)
    x_train, y_train = subsample(x_train, y_train, samples, seed=seed)
    x_train, x_test, record = _normalise(x_train, x_test, normalize, dspec)
    stats = (record["mean"], record["std"]) if record["mode"] == "standard" else (None, None)
    return DataSplits(
        x_train.contiguous(),
        y_train,
        x_test.contiguous(),
        y_test,
        num_classes,
        DataSpec(
            spec,
            samples,
            seed,
            normalize,
            mean=tuple(stats[0]) if stats[0] is not None else None,
            std=tuple(stats[1]) if stats[1] is not None else None,
            resolved=resolve_spec(spec),
        ),  # fmt: skip
        record.get("mean"),
        record.get("std"),
        normalization=record,
    )


def _batch_splits(loaded: BatchSplits, dspec: DataSpec) -> BatchSplits:
    if isinstance(dspec.normalize, str):
        raise DataError(
            f"normalize {dspec.normalize!r}: data {dspec.spec!r} gives batches "
            f"({describe_batch(loaded.train[0])}), which sharpscope never normalises; "
            "normalise them in the factory"
        )
    loaded.spec = dspec
    if dspec.samples is not None:
        big = max(1, loaded.count("train"))
        loaded.train = loaded.batches("train", big, samples=dspec.samples, seed=dspec.seed)
        loaded.__post_init__()
    note = "batches from a data factory are used as given (never normalised)"
    loaded.normalization = {"mode": "none", "note": note}
    return loaded
