"""Compatibility: 0.1's ``sharpscope.losses``, now :mod:`sharpscope.problem.losses`."""

from __future__ import annotations

from .problem.losses import (  # noqa: F401
    LOSSES,
    LossFn,
    cross_entropy,
    get_loss,
    mse,
    perplexity,
    sequence_cross_entropy,
)

__all__ = [
    "LOSSES",
    "LossFn",
    "cross_entropy",
    "mse",
    "sequence_cross_entropy",
    "perplexity",
    "get_loss",
]
