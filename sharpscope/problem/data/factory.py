"""``pkg.module:factory[?key=value&...]``: data from a factory the user names.

The factory is imported only when the caller names it (a command-line option, a library
argument), never when a checkpoint does. It is called as ``factory(**options)`` (the
``key=value`` pairs after ``?``; values are read as JSON when they parse, else kept as
strings) and returns the training and test data as ``(train, test)`` or
``{"train": ..., "test": ...}`` (``test`` may be ``None``). Each is

* an ``(x, y)`` pair of tensors (or NumPy arrays), one sample per row;
* a ``torch.utils.data.Dataset`` whose items are ``(x, y)`` pairs or mappings
  (collated 256 at a time with PyTorch's ``default_collate``);
* a ``DataLoader`` or any iterable of batches: ``(x, y)``, ``(mapping, y)`` or mappings
  (Hugging Face style, e.g. ``input_ids``, ``attention_mask``, ``labels``).

Floating ``(x, y)`` data with integer class labels become :class:`DataSplits` (seeded
subsets, normalisation, training: exactly like ``tensors:FILE``); anything else is kept
as batches (:class:`~sharpscope.problem.data.batched.BatchSplits`, never normalised).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from ...errors import DataError
from ...runtime.batches import describe_batch, is_batch
from ..imports import import_object
from .batched import BatchSplits, join_columns

__all__ = ["load_factory", "factory_options"]


def factory_options(query: str, *, where: str) -> dict[str, Any]:
    """``key=value&key2=value2`` -> keyword arguments (JSON values when they parse)."""
    out: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise DataError(f"{where}: option {item!r} must look like key=value")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _as_batches(part: Any, split: str, where: str) -> list[Any]:
    if isinstance(part, (tuple, list)) and len(part) == 2 and not is_batch(part):
        part = tuple(
            torch.as_tensor(np.asarray(v)) if isinstance(v, np.ndarray) else v for v in part
        )
    if is_batch(part) and not isinstance(part, Mapping):
        return [part]
    if isinstance(part, Mapping):
        raise DataError(
            f"{where}: the {split} data is one mapping; return a list or DataLoader of batches"
        )
    if isinstance(part, torch.utils.data.Dataset) and not isinstance(
        part, torch.utils.data.IterableDataset
    ):
        part = torch.utils.data.DataLoader(part, batch_size=256, shuffle=False)
    if not isinstance(part, Iterable) or isinstance(part, (str, bytes, torch.Tensor)):
        raise DataError(
            f"{where}: the {split} data is a {type(part).__name__}; expected an (x, y) pair "
            "of tensors, a Dataset, a DataLoader or a list of batches"
        )
    try:
        batches = list(part)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's dataset failed; say where
        raise DataError(
            f"{where}: reading the {split} data failed: {type(exc).__name__}: {exc}"
        ) from exc
    for b in batches:
        if not is_batch(b):
            raise DataError(
                f"{where}: a {split} batch is {describe_batch(b)}; expected (x, y), "
                "(mapping, y) or a mapping"
            )
    return batches


def _train_test(result: Any, where: str) -> tuple[Any, Any]:
    if isinstance(result, Mapping) and "train" in result:
        return result["train"], result.get("test")
    if isinstance(result, (tuple, list)) and len(result) == 2:
        if all(isinstance(v, (torch.Tensor, np.ndarray)) for v in result):
            raise DataError(
                f"{where} returned one (x, y) pair; return (train, test), e.g. "
                "((x_train, y_train), (x_test, y_test)), or {'train': ..., 'test': ...}"
            )
        return result[0], result[1]
    raise DataError(
        f"{where} returned a {type(result).__name__}; expected (train, test) or "
        "{'train': ..., 'test': ...}"
    )


def _plain_pair(batches: list[Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
    col = join_columns(batches)
    if (
        isinstance(col, tuple)
        and len(col) == 2
        and all(isinstance(t, torch.Tensor) for t in col)
        and col[0].is_floating_point()
        and col[0].ndim >= 2
        and col[1].ndim == 1
        and not (col[1].is_floating_point() or col[1].is_complex())
    ):
        return col[0], col[1].to(torch.int64)
    return None


def load_factory(spec: str) -> tuple[Any, ...] | BatchSplits:
    """The data ``pkg.mod:factory[?options]`` gives: ``(x_train, y_train, x_test, y_test)``
    when it is plain floating data with class labels, else :class:`BatchSplits`."""
    path, _, query = spec.partition("?")
    where = f"data factory {path!r}"
    factory = import_object(path, what="data", error=DataError)
    options = factory_options(query, where=where)
    try:
        result = factory(**options)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's factory failed; one line
        raise DataError(f"{where} failed with {options}: {type(exc).__name__}: {exc}") from exc
    train, test = _train_test(result, where)
    train_b = _as_batches(train, "train", where)
    test_b = [] if test is None else _as_batches(test, "test", where)
    if not train_b:
        raise DataError(f"{where} gave no training data")
    tr, te = _plain_pair(train_b), _plain_pair(test_b) if test_b else None
    if tr is not None and (te is not None or not test_b):
        if te is None:
            te = (tr[0][:0], tr[1][:0])
        return (*tr, *te)
    return BatchSplits(train_b, test_b)
