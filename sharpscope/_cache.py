"""Compatibility: ``sharpscope._cache``, now :mod:`sharpscope.runtime.cache`."""

from __future__ import annotations

from .runtime.cache import (  # noqa: F401
    MAX_BYTES,
    MAX_DEPTH,
    NUM,
    NUM_REQUIRED,
    Damaged,
    check_schema,
    notice,
    nums,
    read_json_checked,
    surface_problem,
)

__all__ = [
    "Damaged",
    "read_json_checked",
    "check_schema",
    "surface_problem",
    "notice",
    "NUM",
    "NUM_REQUIRED",
    "nums",
]
