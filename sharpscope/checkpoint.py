"""Compatibility: 0.1's ``sharpscope.checkpoint``, now :mod:`sharpscope.problem.checkpoint`."""

from __future__ import annotations

from .problem.checkpoint import (  # noqa: F401
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    load_checkpoint,
    load_state_dict_strict,
    safe_torch_load,
    save_checkpoint,
    state_dict_mismatch,
    to_plain_data,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "load_state_dict_strict",
    "state_dict_mismatch",
    "safe_torch_load",
    "to_plain_data",
]
