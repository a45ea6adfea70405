"""Compatibility: 0.1's ``sharpscope.data``, now :mod:`sharpscope.problem.data`."""

from __future__ import annotations

from .problem.data import (  # noqa: F401
    DATA_SOURCES,
    Batch,
    DataSpec,
    DataSplits,
    check_finite_inputs,
    iterate_batches,
    load_data,
    read_idx,
    restricted_unpickle,
    subsample,
)

__all__ = [
    "DataSplits",
    "DataSpec",
    "DATA_SOURCES",
    "load_data",
    "check_finite_inputs",
    "iterate_batches",
    "subsample",
    "restricted_unpickle",
]
