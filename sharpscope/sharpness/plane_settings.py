"""The validated settings of XSAM's plane probe: :class:`PlaneSettings`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SharpscopeError
from ..landscape.grid import grid_axis

__all__ = ["PlaneSettings"]


def _check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        kind = "a non-negative" if allow_zero else "a positive"
        raise SharpscopeError(f"{name} must be {kind} number, got {value!r}")
    return float(value)


def _plane_axes(
    grid: tuple[float, float, int] | None, axes: Sequence[Any] | None
) -> list[np.ndarray]:
    if axes is not None:
        out = [np.asarray(a, dtype=np.float64).reshape(-1) for a in axes]
        if len(out) != 2 or any(a.size < 2 or not np.isfinite(a).all() for a in out):
            raise SharpscopeError("axes must be two arrays of at least 2 finite coordinates each")
        return out
    try:
        start, stop, num = grid  # type: ignore[misc]
        start, stop = float(start), float(stop)
    except (TypeError, ValueError) as exc:
        raise SharpscopeError(f"grid must be (start, stop, num), got {grid!r}") from exc
    if not (math.isfinite(start) and math.isfinite(stop)) or not start < stop:
        raise SharpscopeError(f"grid {grid!r}: start must be below stop (both finite)")
    if not isinstance(num, (int, np.integer)) or num < 2:
        raise SharpscopeError(f"grid {grid!r}: num must be a whole number of at least 2")
    a = grid_axis(start, stop, int(num))
    return [a, a.copy()]


@dataclass(frozen=True)
class PlaneSettings:
    """Every setting of :func:`~sharpscope.sharpness.plane.xsam_plane`, checked on creation.

    Attributes:
        rho: XSAM's ascent radius (> 0).
        rho_max: radius of the arc and of the worst-case ball (``None``: ``2 rho``;
            resolved on creation).
        steps: ascent steps ``k`` (a whole number >= 1).
        alpha_max, alpha_step: the arc's alphas ``0, step, ..., alpha_max``.
        grid: ``(start, stop, num)`` for both plane axes (absolute distances).
        axes: two coordinate arrays instead of ``grid``; on creation both become the
            plane's coordinates as tuples of floats (see :attr:`plane_axes`).
        mode: ``eval`` or ``train``.
        worst_steps, restarts: projected gradient ascent for the worst point of the ball.
        seed: seeds the random starts and the degenerate-plane fallback.
        method: grid evaluation method.

    The error messages are those :func:`xsam_plane` always gave, in the same order.
    """

    rho: float
    rho_max: float | None = None
    steps: int = 1
    alpha_max: float = 2.0
    alpha_step: float = 0.1
    grid: tuple[float, float, int] | None = (-0.5, 0.5, 41)
    axes: Sequence[Any] | None = None
    mode: str = "eval"
    worst_steps: int = 30
    restarts: int = 2
    seed: int = 0
    method: str = "auto"

    def __post_init__(self) -> None:
        rho = _check_positive("rho", self.rho)
        rho_max = 2.0 * rho if self.rho_max is None else _check_positive("rho_max", self.rho_max)
        steps = self.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise SharpscopeError(f"steps must be a whole number of at least 1, got {steps!r}")
        alpha_max = _check_positive("alpha_max", self.alpha_max, allow_zero=True)
        alpha_step = _check_positive("alpha_step", self.alpha_step)
        if not isinstance(self.worst_steps, int) or self.worst_steps < 1:
            raise SharpscopeError(f"worst_steps must be at least 1, got {self.worst_steps!r}")
        if not isinstance(self.restarts, int) or self.restarts < 0:
            raise SharpscopeError(f"restarts must be 0 or more, got {self.restarts!r}")
        axes = _plane_axes(self.grid, self.axes)
        if self.mode not in ("eval", "train"):
            raise SharpscopeError(f"mode must be 'eval' or 'train', got {self.mode!r}")
        for name, value in (
            ("rho", rho),
            ("rho_max", rho_max),
            ("alpha_max", alpha_max),
            ("alpha_step", alpha_step),
            ("axes", tuple(tuple(float(v) for v in a) for a in axes)),
        ):
            object.__setattr__(self, name, value)

    @property
    def plane_axes(self) -> list[np.ndarray]:
        """The coordinates of both plane axes, as float64 arrays."""
        return [np.asarray(a, dtype=np.float64) for a in self.axes]  # type: ignore[union-attr]

    def to_dict(self) -> dict[str, Any]:
        """The settings part of the plane's ``meta.json`` ``metadata``, exactly as written."""
        return {"probe": "xsam_plane", "rho": self.rho, "rho_max": self.rho_max, "k": self.steps}

    def grid_metadata(self, *, psi: float, alpha_star: float, degenerate: bool) -> dict[str, Any]:
        """``meta.json``'s ``metadata``: :meth:`to_dict` plus the measured ``psi``, ``alpha*``."""
        return {**self.to_dict(), "psi": psi, "alpha_star": alpha_star, "degenerate": degenerate}

    def record(self, *, data_samples: int, batches: int, parameters: int) -> dict[str, Any]:
        """:attr:`PlaneResult.settings` (``plane.json``'s ``settings``), exactly as written."""
        return {
            "mode": self.mode,
            "seed": self.seed,
            "data_samples": data_samples,
            "batches": batches,
            "parameters": parameters,
            "alpha_max": self.alpha_max,
            "alpha_step": self.alpha_step,
            "grid": [[float(a[0]), float(a[-1]), len(a)] for a in self.plane_axes],
        }
