"""The settings of one grid evaluation, validated once: :class:`GridSettings`.

:func:`~sharpscope.landscape.grid.evaluate_grid` builds a :class:`GridSettings` from
its keywords, so a bad value is refused (with the same sentence as ever) before any
data is touched. :meth:`GridSettings.to_dict` is the settings part of the signature
stored in ``meta.json`` (``axes``, ``mode``, ``recompute_bn``, exactly as written by
earlier versions), which a resumed run compares with the folder's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SharpscopeError

__all__ = ["GridSettings", "METHODS", "MODES"]

METHODS = ("auto", "vmap", "loop")
MODES = ("eval", "train")
# result arrays per point: loss, accuracy (float64), done (bool), chunk id (int64), plus
# the float64 coordinates of the flattened grid
_BYTES_PER_POINT = 8 + 8 + 1 + 8


@dataclass(frozen=True, eq=False)
class GridSettings:
    """How a grid is evaluated (see :func:`~sharpscope.landscape.grid.evaluate_grid`).

    Attributes:
        axes: the coordinates along each direction (1 or 2 axes of finite floats;
            stored as read-only float64 arrays).
        mode: ``eval`` (default) or ``train`` (batch statistics, running stats frozen).
        method: ``vmap``, ``loop`` or ``auto`` (vmap on CUDA, the loop elsewhere).
        chunk_size: points per chunk, or ``None`` to choose from memory / grid size.
        recompute_bn: re-estimate BatchNorm running statistics at every point (eval
            mode and the loop only).
        force: discard results in the output folder computed with other settings.
        quiet: no progress bar.
    """

    axes: tuple[np.ndarray, ...]
    mode: str = "eval"
    method: str = "auto"
    chunk_size: int | None = None
    recompute_bn: bool = False
    force: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SharpscopeError(f"unknown method {self.method!r}: choose auto, vmap or loop")
        if self.mode not in MODES:
            raise SharpscopeError(f"mode must be 'eval' or 'train', got {self.mode!r}")
        if self.recompute_bn and self.mode != "eval":
            raise SharpscopeError(
                "recompute_bn re-estimates running statistics for eval mode; use mode='eval'"
            )
        size = self.chunk_size
        if size is not None and (isinstance(size, bool) or size < 1):
            raise SharpscopeError(f"chunk size must be at least 1, got {size}")
        if self.recompute_bn and self.method == "vmap":
            raise SharpscopeError(
                "recompute_bn needs method='loop' (running statistics are re-estimated per point)"
            )
        object.__setattr__(self, "axes", _checked_axes(self.axes))

    @property
    def dims(self) -> int:
        return len(self.axes)

    def method_for(self, device_type: str) -> str:
        """The method used on a device: ``auto`` is vmap on CUDA (unless recompute_bn), else loop."""
        if self.method != "auto":
            return self.method
        return "vmap" if device_type == "cuda" and not self.recompute_bn else "loop"

    def to_dict(self) -> dict[str, Any]:
        """The settings entries of ``meta.json``'s signature, as earlier versions wrote them."""
        return {
            "axes": [a.tolist() for a in self.axes],
            "mode": self.mode,
            "recompute_bn": bool(self.recompute_bn),
        }


def _checked_axes(axes: Sequence[Any]) -> tuple[np.ndarray, ...]:
    out = []
    for a in axes:
        arr = np.array(a, dtype=np.float64).reshape(-1)
        arr.setflags(write=False)
        out.append(arr)
    if len(out) not in (1, 2):
        raise SharpscopeError(f"a grid has 1 or 2 axes, got {len(out)}")
    for i, a in enumerate(out):
        if a.size == 0 or not np.isfinite(a).all():
            raise SharpscopeError(f"axis {i} must hold at least one finite coordinate")
    _check_size(out)
    return tuple(out)


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_size(axes: Sequence[np.ndarray]) -> None:
    """Refuse, before allocating anything, a grid whose result arrays cannot fit in memory."""
    points = math.prod(len(a) for a in axes)
    need = points * (_BYTES_PER_POINT + 8 * len(axes))
    total = _memory_bytes()
    if total is not None and need > total // 2:
        raise SharpscopeError(
            f"a grid of {points:,} points needs about {need / 2**30:.1f} GiB for its result "
            f"arrays, more than half of this machine's {total / 2**30:.1f} GiB; use fewer points"
        )
