"""Geometry of the perturbation ball: projection, steepest-ascent step, boundary point.

The ball is ``||u||_2 <= rho`` (``norm="l2"``) or ``||u||_inf <= rho`` (``norm="linf"``).
"""

from __future__ import annotations

import math

import torch

from ..optim.geometry import global_norm

__all__: list[str] = []


def _project(u: list[torch.Tensor], rho: float, norm: str) -> list[torch.Tensor]:
    """Project ``u`` onto the ``norm`` ball of radius ``rho`` (in place)."""
    if norm == "l2":
        n = float(global_norm(u))
        if n > rho:
            torch._foreach_mul_(u, rho / n)
    else:
        torch._foreach_clamp_min_(u, -rho)
        torch._foreach_clamp_max_(u, rho)
    return u


def _ascent_direction(g: list[torch.Tensor], norm: str) -> list[torch.Tensor] | None:
    """The steepest-ascent unit step for the ball's norm (``None`` when ``g`` vanishes)."""
    n = float(global_norm(g))
    if not math.isfinite(n) or n < 1e-30:
        return None
    if norm == "l2":
        return torch._foreach_div(g, n)
    return [gi.sign() for gi in g]


def _surface_point(direction: list[torch.Tensor], rho: float, norm: str) -> list[torch.Tensor]:
    """The point of the ball's boundary that ``direction`` points to."""
    if norm == "l2":
        n = float(global_norm(direction))
        return torch._foreach_mul(direction, rho / max(n, 1e-300))
    return [rho * d.sign() for d in direction]
