"""Compatibility: ``sharpscope.sanitize``, now :mod:`sharpscope.runtime.sanitize`."""

from __future__ import annotations

from .runtime.sanitize import (  # noqa: F401
    printable,
)

__all__ = [
    "printable",
]
