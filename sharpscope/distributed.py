"""Compatibility: 0.1's ``sharpscope.distributed``, now :mod:`sharpscope.runtime.distributed`."""

from __future__ import annotations

from .runtime.distributed import (  # noqa: F401
    ENV_VARS,
    DistContext,
    _check_versions,
    current,
    destroy,
    init_distributed,
    is_main,
    shard,
    world_size_from_env,
)

__all__ = [
    "DistContext",
    "init_distributed",
    "current",
    "is_main",
    "destroy",
    "shard",
    "world_size_from_env",
    "ENV_VARS",
]
