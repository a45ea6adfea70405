"""The named steps of :func:`~sharpscope.sharpness.plane.xsam_plane`, and the plane's basis.

Each step takes the validated :class:`~sharpscope.sharpness.plane_settings.PlaneSettings`
and the previous steps' outputs (small dataclasses), so the probe reads as the list
ascend -> search the arc -> plane coordinates -> worst point -> grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import SharpscopeError
from ..landscape.grid import Surface, evaluate_grid, evaluate_point
from ..optim.geometry import SIN_EPS, angle, global_dot, global_norm, slerp, slerp_coefficients
from ..optim.xsam import alpha_search, xsam_ascent
from ..runtime.batches import batch_weight, loss_on_batch
from .objective import Batch
from .plane_settings import PlaneSettings
from .worst import worst_case_sharpness

__all__ = ["plane_basis"]

Tensors = list[torch.Tensor]


def _coords(
    v: Sequence[torch.Tensor], e1: Sequence[torch.Tensor], e2: Sequence[torch.Tensor]
) -> np.ndarray:
    return np.array([float(global_dot(v, e1)), float(global_dot(v, e2))])


def plane_basis(
    v0: Sequence[torch.Tensor],
    v1: Sequence[torch.Tensor],
    *,
    seed: int = 0,
    sin_eps: float | None = None,
) -> tuple[Tensors, Tensors, bool]:
    """The orthonormal basis ``e1 = v0``, ``e2 = (v1 - cos psi v0) / sin psi`` of XSAM's plane.

    When ``v0`` and ``v1`` are (anti-)parallel (``sin psi < sin_eps``; default
    ``max(1e-6, 100 eps(dtype))``) ``e2`` is a seeded random unit vector orthogonal to
    ``v0`` and the third return value (``degenerate``) is True. Never NaN.

    Returns:
        ``(e1, e2, degenerate)``.
    """
    n0 = float(global_norm(v0))
    if not math.isfinite(n0) or n0 < 1e-30:
        raise SharpscopeError("v0 vanishes: the ascent did not move (zero gradient at theta_0?)")
    e1 = torch._foreach_div(list(v0), n0)
    if sin_eps is None:
        sin_eps = max(SIN_EPS, 100 * torch.finfo(e1[0].dtype).eps)

    def orthonormal(w: Tensors) -> tuple[Tensors, float]:
        for _ in range(2):  # Gram-Schmidt twice: stable in float32
            torch._foreach_add_(w, e1, alpha=-float(global_dot(w, e1)))
        return w, float(global_norm(w))

    n1 = float(global_norm(v1))
    degenerate = True
    if math.isfinite(n1) and n1 > 1e-30:
        w, s = orthonormal(torch._foreach_div(list(v1), n1))
        if s >= sin_eps:
            return e1, torch._foreach_div(w, s), False
    gen = torch.Generator().manual_seed(int(seed))
    r = [
        torch.randn(t.shape, generator=gen, dtype=torch.float64).to(device=t.device, dtype=t.dtype)
        for t in e1
    ]
    w, s = orthonormal(r)
    return e1, torch._foreach_div(w, s), degenerate


@dataclass
class _Start:
    """Step 1's output: the loss at ``theta_0``, XSAM's ascent, the parameters and ``theta_0``."""

    loss0: float
    res: Any
    plist: list[torch.Tensor]
    theta0: Tensors


@dataclass
class _Arc:
    """Step 2's output: the arc's alphas and losses, ``alpha*``, the losses at 0, 1, ``alpha*``."""

    alpha_star: float
    alphas: list[float]
    losses: list[float]
    loss_alpha0: float
    loss_sam: float
    loss_xsam: float


@dataclass
class _Plane:
    """The plane's basis and the arc, ``v1`` and the ascent path in its coordinates."""

    e1: Tensors
    e2: Tensors
    degenerate: bool
    v1_coords: np.ndarray
    arc_coords: np.ndarray
    path_coords: np.ndarray
    path_off_plane: np.ndarray


def _ascend(
    model: nn.Module, loss_fn: Callable, data: list[Batch], names: list[str], s: PlaneSettings
) -> _Start:
    """Step 1: XSAM's k-step ascent from ``theta_0``; the parameters are put back after it."""
    weights = [batch_weight(b, loss_fn) for b in data]  # samples, or loss_fn.weight(b)
    total = sum(weights)
    own = dict(model.named_parameters())
    plist = [own[n] for n in names]
    theta0 = [p.detach().clone() for p in plist]

    def grad_fn() -> list[torch.Tensor]:
        grads = [torch.zeros_like(p) for p in plist]
        for b, w in zip(data, weights, strict=True):
            loss = loss_on_batch(model, loss_fn, b) * (w / total)
            g = torch.autograd.grad(loss, plist, allow_unused=True)
            torch._foreach_add_(
                grads,
                [
                    gi if gi is not None else torch.zeros_like(p)
                    for gi, p in zip(g, plist, strict=True)
                ],
            )
        return grads

    with torch.no_grad():
        loss0 = evaluate_point(model, loss_fn, data)[0]
    for p in plist:
        p.requires_grad_(True)
    res = xsam_ascent(plist, grad_fn, rho=s.rho, steps=s.steps, record_path=True, theta0=theta0)
    with torch.no_grad():
        torch._foreach_copy_(plist, theta0)
    if float(global_norm(res.path[-1])) < 1e-30:  # type: ignore[index]
        raise SharpscopeError(
            "the gradient at theta_0 is zero on this data: XSAM's ascent does not "
            "move, so the plane is undefined (use other samples)"
        )
    return _Start(loss0=loss0, res=res, plist=plist, theta0=theta0)


def _search_arc(
    model: nn.Module,
    loss_fn: Callable,
    data: list[Batch],
    names: list[str],
    start: _Start,
    s: PlaneSettings,
) -> _Arc:
    """Step 2: the loss along the slerp arc at ``rho_max`` and its argmax ``alpha*`` (XSAM)."""
    res, theta0 = start.res, start.theta0
    alpha_star, alphas, arc = alpha_search(
        start.plist,
        theta0,
        res.v0,
        res.v1,
        res.psi,
        lambda: evaluate_point(model, loss_fn, data)[0],
        rho_max=s.rho_max,
        alpha_max=s.alpha_max,
        step=s.alpha_step,
    )

    def loss_at_alpha(alpha: float) -> float:
        hits = [i for i, a in enumerate(alphas) if abs(a - alpha) < 1e-9]
        if hits:
            return arc[hits[0]]
        d = slerp(res.v0, res.v1, alpha, res.psi)
        point = {n: t + s.rho_max * di for n, t, di in zip(names, theta0, d, strict=True)}
        return evaluate_point(model, loss_fn, data, point)[0]

    return _Arc(
        alpha_star=float(alpha_star),
        alphas=alphas,
        losses=arc,
        loss_alpha0=loss_at_alpha(0.0),
        loss_sam=loss_at_alpha(1.0),
        loss_xsam=loss_at_alpha(alpha_star),
    )


def _plane_coordinates(start: _Start, arc: _Arc, s: PlaneSettings) -> _Plane:
    """The basis ``e1``, ``e2`` and the arc, ``v1`` and the ascent points in plane coordinates."""
    res = start.res
    e1, e2, degenerate = plane_basis(res.v0, res.v1, seed=s.seed)
    v1c = _coords(res.v1, e1, e2)
    arc_coords = np.array(
        [
            s.rho_max * (np.array([c0, 0.0]) + c1 * v1c)
            for c0, c1 in (slerp_coefficients(res.psi, a) for a in arc.alphas)
        ]
    )
    path = res.path or []
    path_coords = np.array([_coords(d, e1, e2) for d in path]).reshape(-1, 2)
    path_off = np.array(
        [
            math.sqrt(max(float(global_norm(d)) ** 2 - float(np.sum(c**2)), 0.0))
            for d, c in zip(path, path_coords, strict=True)
        ]
    )
    return _Plane(e1, e2, degenerate, v1c, arc_coords, path_coords, path_off)


def _worst_point(
    model: nn.Module,
    loss_fn: Callable,
    data: list[Batch],
    names: list[str],
    start: _Start,
    arc: _Arc,
    plane: _Plane,
    s: PlaneSettings,
    quiet: bool,
) -> dict[str, Any]:
    """Step 3: the worst point of the ``rho_max`` ball, started from SAM's and XSAM's points."""
    res, loss0 = start.res, start.loss0
    d_sam = torch._foreach_mul(res.v1, s.rho_max)
    d_xsam = torch._foreach_mul(slerp(res.v0, res.v1, arc.alpha_star, res.psi), s.rho_max)
    d_v0 = torch._foreach_mul(res.v0, s.rho_max)
    wc = worst_case_sharpness(
        model,
        loss_fn,
        data,
        rho=s.rho_max,
        norm="l2",
        mode=s.mode,
        steps=s.worst_steps,
        restarts=s.restarts,
        seed=s.seed,
        params=names,
        starts=[d_sam, d_xsam, d_v0],
        quiet=quiet,
    )
    delta = [wc.delta[n] for n in names]  # type: ignore[index]
    wcoords = _coords(delta, plane.e1, plane.e2)
    dn = float(global_norm(delta))
    in_plane = float(np.linalg.norm(wcoords))
    off_plane = math.sqrt(max(dn**2 - in_plane**2, 0.0))
    rise = wc.perturbed_loss - loss0  # type: ignore[operator]
    return {
        "loss": wc.perturbed_loss,
        "sharpness": rise,
        "norm": dn,
        "coords": wcoords.tolist(),
        "angle_to_plane_deg": math.degrees(math.atan2(off_plane, in_plane)),
        "cos_v0": angle(delta, res.v0)[0],
        "cos_sam": angle(delta, res.v1)[0],
        "cos_xsam": angle(delta, d_xsam)[0],
        "capture_sam": (arc.loss_sam - loss0) / rise if rise > 0 else None,
        "capture_xsam": (arc.loss_xsam - loss0) / rise if rise > 0 else None,
        "iterations": wc.iterations,
        "steps": s.worst_steps,
        "restarts": s.restarts,
        "on_boundary": wc.extra["on_boundary"],
        "boundary_note": (
            f"worst point of the ball: {wc.boundary_note}" if wc.boundary_note else None
        ),
    }


def _plane_grid(
    model: nn.Module,
    loss_fn: Callable,
    data: list[Batch],
    names: list[str],
    start: _Start,
    arc: _Arc,
    plane: _Plane,
    s: PlaneSettings,
    *,
    out_dir: str | Path | None,
    quiet: bool,
) -> Surface:
    """Step 4: the loss on ``theta_0 + a e1 + b e2`` (resumable in ``out_dir``)."""
    return evaluate_grid(
        model,
        loss_fn,
        data,
        [dict(zip(names, plane.e1, strict=True)), dict(zip(names, plane.e2, strict=True))],
        s.plane_axes,
        center=dict(zip(names, start.theta0, strict=True)),
        mode=s.mode,
        method=s.method,
        out_dir=out_dir,
        quiet=quiet,
        metadata=s.grid_metadata(
            psi=start.res.psi, alpha_star=arc.alpha_star, degenerate=plane.degenerate
        ),
    )
