"""Compatibility: 0.1's ``sharpscope.losses``, now :mod:`sharpscope.problem.losses`."""

from __future__ import annotations

from .problem.losses import (  # noqa: F401
    LOSSES,
    LossFn,
    cross_entropy,
    get_loss,
    mse,
)

__all__ = [
    "LOSSES",
    "LossFn",
    "cross_entropy",
    "mse",
    "get_loss",
]
