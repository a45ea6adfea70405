"""Compatibility: ``sharpscope.cache``, now :mod:`sharpscope.runtime.cache`."""

from __future__ import annotations

from .runtime.cache import (  # noqa: F401
    MAX_CACHE_BYTES,
    cache_notice,
    is_int,
    is_number,
    load_cache_json,
    read_cache_json,
)

__all__ = [
    "load_cache_json",
    "read_cache_json",
    "cache_notice",
    "is_number",
    "is_int",
    "MAX_CACHE_BYTES",
]
