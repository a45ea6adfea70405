"""Cells and arrays: how a number is printed, how JSON lists become arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SharpscopeError

__all__ = ["COLOR_SCALES", "FIGURES", "FLATTEST", "FigureOptions", "format_value"]

FIGURES = {
    "measures": "measures.png",
    "slices_1d": "slices_1d.png",
    "slices_2d": "slices_2d.png",
    "density": "density.png",
    "interpolation": "interpolation.png",
    "planes": "planes.png",
    "over_training": "lambda_max_over_training.png",
    "group_strips": "groups.png",
    "gap_scatter": "gap_correlation.png",
}
FLATTEST = "(flattest)"


def format_value(value: Any, stderr: Any = None) -> str:
    """A table cell: 4 significant digits, ``n/a`` for missing, ``± se`` when known."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    text = f"{float(value):.4g}"
    if stderr is not None and isinstance(stderr, (int, float)) and math.isfinite(stderr):
        text += f" ± {float(stderr):.2g}"
    return text


def _arr(values: Any) -> np.ndarray:
    """A float array from JSON lists (``None`` -> NaN) or an array."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float64)
    values = list(values or [])
    if values and isinstance(values[0], list):
        return np.array(
            [[np.nan if v is None else v for v in row] for row in values], dtype=np.float64
        )
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _clean(values: Any) -> list:
    return [None if v is None or not np.isfinite(v) else float(v) for v in np.ravel(_arr(values))]


COLOR_SCALES = ("rise", "panel", "shared")
"""How the 2D panels (slices, planes) of several models are coloured:

* ``rise`` (default): one log scale of the loss *rise above each model's own minimum*,
  shared by every panel, so a wide basin and a narrow one look different even when
  their minima differ;
* ``panel``: each panel its own log scale of its rise (shapes, not levels, compare);
* ``shared``: one linear scale of the absolute loss (0.1 behaviour; a single high
  corner can make every panel look alike).
"""


@dataclass(frozen=True)
class FigureOptions:
    """How the report's figures are written.

    Attributes:
        formats: file formats of every figure; PNG is always written (the page and
            ``summary.md`` show it) and comes first. Default: PNG and PDF.
        color_scale: one of :data:`COLOR_SCALES`.
    """

    formats: tuple[str, ...] = ("png", "pdf")
    color_scale: str = "rise"

    def __post_init__(self) -> None:
        from ..runtime.figstyle import parse_formats

        fmts = parse_formats(self.formats)
        object.__setattr__(self, "formats", ("png", *(f for f in fmts if f != "png")))
        if self.color_scale not in COLOR_SCALES:
            raise SharpscopeError(
                f"unknown colour scale {self.color_scale!r}: choose from {', '.join(COLOR_SCALES)}"
            )
