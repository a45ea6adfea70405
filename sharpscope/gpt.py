"""Compatibility: ``sharpscope.gpt``, now :mod:`sharpscope.problem.models.gpt`."""

from __future__ import annotations

from .problem.models.gpt import (  # noqa: F401
    GPT,
    Block,
    CausalSelfAttention,
    gpt,
    perplexity,
    sequence_cross_entropy,
)

__all__ = [
    "GPT",
    "Block",
    "CausalSelfAttention",
    "gpt",
    "sequence_cross_entropy",
    "perplexity",
]
