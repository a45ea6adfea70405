"""XSAM's plane: where does the worst loss of the rho-ball lie, relative to SAM's direction?

Chen & Zhou (ICLR 2026), "Revisiting Sharpness-Aware Minimization: A More Faithful and
Effective Implementation", argue that SAM's update points the wrong way: the loss
increases most in a direction between ``v0`` (from ``theta_0`` to the ascent point
``theta_k``) and ``v1`` (the gradient at ``theta_k``, SAM's direction), and XSAM finds
it by searching the slerp arc between them. :func:`xsam_plane` makes this visible on
any checkpoint, in four named steps:

1. :func:`_ascend`: XSAM's k-step ascent from ``theta_0`` (the optimizer's own
   :func:`sharpscope.optim.xsam.xsam_ascent`) gives ``v0``, ``v1`` and their angle ``psi``;
2. :func:`_search_arc`: the loss along the arc ``theta_0 + rho_max slerp(v0, v1; alpha)``
   (the optimizer's :func:`sharpscope.optim.xsam.alpha_search`) gives XSAM's ``alpha*``;
3. :func:`_worst_point`: the true worst point of the ``rho_max`` ball (projected
   gradient ascent, as for the worst-case sharpness) shows how much of the worst case
   SAM (``alpha = 1``) and XSAM (``alpha*``) capture, and how far it lies from the plane;
4. :func:`_plane_grid`: the loss on the plane ``theta_0 + a e1 + b e2`` spanned by ``v0``
   and ``v1`` (the grid engine :func:`sharpscope.landscape.grid.evaluate_grid`, resumable).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..landscape.grid import Surface, locks_output
from ..runtime.batches import sample_count
from ..runtime.files import atomic_write_json, to_jsonable
from ..runtime.functional import preserved, probe_mode
from .objective import Batch, _as_batches, _names
from .plane_settings import PlaneSettings
from .plane_steps import (
    _Arc,
    _ascend,
    _Plane,
    _plane_coordinates,
    _plane_grid,
    _search_arc,
    _Start,
    _worst_point,
    plane_basis,
)
from .result import _html_table

__all__ = ["PlaneResult", "PlaneSettings", "xsam_plane", "plane_basis"]


@dataclass(repr=False)
class PlaneResult:
    """Everything :func:`xsam_plane` measured (plane coordinates are in the orthonormal
    basis ``e1 = v0``, ``e2`` = the part of ``v1`` orthogonal to ``v0``).

    Attributes:
        rho, rho_max, steps: the ascent radius, the arc/ball radius and ``k``.
        psi, cos_psi: the angle between ``v0`` and ``v1``.
        grad_norm: ``||g(theta_k)||``.
        loss_theta0: the loss at ``theta_0``.
        alphas, arc_losses: the loss along ``theta_0 + rho_max slerp(v0, v1; alpha)``.
        alpha_star: the arc's argmax (XSAM's alpha).
        loss_alpha0, loss_sam, loss_xsam: the arc at ``alpha = 0`` (``v0``), ``1`` (``v1``,
            SAM) and ``alpha*``.
        arc_coords: ``(len(alphas), 2)`` plane coordinates of the arc.
        v1_coords: plane coordinates of the unit vector ``v1``.
        path_coords: ``(k, 2)`` plane coordinates of ``theta_i - theta_0``, ``i = 1..k``.
        path_off_plane: distance of each ascent point from the plane (0 for ``k = 1``).
        worst: the worst point of the ``rho_max`` ball: ``loss``, ``sharpness``, ``coords``
            (of its projection), ``angle_to_plane_deg``, ``cos_v0``, ``cos_sam``,
            ``cos_xsam``, ``capture_sam``/``capture_xsam`` (share of the worst loss
            increase reached by SAM's/XSAM's point), ``iterations``.
        degenerate: ``v0`` and ``v1`` are (anti-)parallel, so ``e2`` is a seeded random
            unit vector orthogonal to ``v0`` instead of coming from ``v1``.
        surface: the loss on the plane grid (``surface.axes`` are ``a`` and ``b``).
        basis: ``(e1, e2)`` as ``{name: tensor}`` dicts.
        settings: mode, seed, data size, grid, search settings.
        alpha_at_limit: ``alpha*`` is the largest alpha searched (``alpha_max``): the
            arc's maximum may lie beyond the search range.
        boundary_note: a one-line warning when a search ended on its limit (``alpha*``
            at ``alpha_max``; every start of the worst-point ascent still rising at its
            step limit), else ``None``.
    """

    rho: float
    rho_max: float
    steps: int
    psi: float
    cos_psi: float
    grad_norm: float
    loss_theta0: float
    alphas: np.ndarray
    arc_losses: np.ndarray
    alpha_star: float
    loss_alpha0: float
    loss_sam: float
    loss_xsam: float
    arc_coords: np.ndarray
    v1_coords: np.ndarray
    path_coords: np.ndarray
    path_off_plane: np.ndarray
    worst: dict[str, Any]
    degenerate: bool
    surface: Surface | None
    basis: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] = field(repr=False, default=None)  # type: ignore[assignment]
    settings: dict[str, Any] = field(default_factory=dict)
    alpha_at_limit: bool = False
    boundary_note: str | None = None

    def to_dict(self, *, arrays: bool = True) -> dict[str, Any]:
        """JSON-ready numbers (``arrays=False`` leaves out the arc and path arrays); NaN becomes None."""
        out: dict[str, Any] = {
            "psi": self.psi,
            "psi_deg": math.degrees(self.psi),
            "cos_psi": self.cos_psi,
            "alpha_star": self.alpha_star,
            "loss_theta0": self.loss_theta0,
            "loss_alpha0": self.loss_alpha0,
            "loss_sam": self.loss_sam,
            "loss_xsam": self.loss_xsam,
            "worst_loss": self.worst["loss"],
            "worst_sharpness": self.worst["sharpness"],
            "cos_worst_sam": self.worst["cos_sam"],
            "cos_worst_xsam": self.worst["cos_xsam"],
            "cos_worst_v0": self.worst["cos_v0"],
            "capture_sam": self.worst["capture_sam"],
            "capture_xsam": self.worst["capture_xsam"],
            "worst_angle_to_plane_deg": self.worst["angle_to_plane_deg"],
            "rho": self.rho,
            "rho_max": self.rho_max,
            "k": self.steps,
            "grad_norm": self.grad_norm,
            "degenerate": self.degenerate,
            "worst": dict(self.worst),
            "settings": dict(self.settings),
            "alpha_star_at_limit": self.alpha_at_limit,
            "boundary_note": self.boundary_note,
        }
        if self.surface is not None:
            out["grid"] = self.surface.summary()
        if arrays:
            out["arc"] = {
                "alphas": [float(a) for a in self.alphas],
                "losses": [float(v) for v in self.arc_losses],
                "coords": self.arc_coords.tolist(),
            }
            out["path"] = {
                "coords": self.path_coords.tolist(),
                "off_plane": self.path_off_plane.tolist(),
            }
            out["v1_coords"] = self.v1_coords.tolist()
        return to_jsonable(out)

    def _summary(self) -> list[tuple[str, str]]:
        """The few numbers worth showing: (label, formatted value) pairs."""
        w = self.worst
        rows = [
            ("rho, rho_max, k", f"{self.rho:g}, {self.rho_max:g}, {self.steps}"),
            ("psi", f"{math.degrees(self.psi):.2f} deg"),
            ("loss at theta_0", f"{self.loss_theta0:.6g}"),
            ("SAM (alpha=1)", f"{self.loss_sam:.6g}"),
            (f"XSAM (alpha*={self.alpha_star:.3g})", f"{self.loss_xsam:.6g}"),
            ("worst of the ball", f"{w['loss']:.6g}"),
        ]
        if self.boundary_note:
            rows.append(("warning", self.boundary_note))
        return rows

    def __repr__(self) -> str:
        """One short line (no arrays, no surface, no basis)."""
        return "PlaneResult(" + ", ".join(f"{k}: {v}" for k, v in self._summary()) + ")"

    def _repr_html_(self) -> str:
        """A small table for notebooks."""
        return _html_table("PlaneResult", self._summary())


@locks_output("plane", key="out_dir")
def xsam_plane(
    model: nn.Module,
    loss_fn: Callable,
    batches: Iterable[Batch] | Batch,
    *,
    rho: float,
    rho_max: float | None = None,
    steps: int = 1,
    alpha_max: float = 2.0,
    alpha_step: float = 0.1,
    grid: tuple[float, float, int] | None = (-0.5, 0.5, 41),
    axes: Sequence[Any] | None = None,
    mode: str = "eval",
    worst_steps: int = 30,
    restarts: int = 2,
    seed: int = 0,
    params: str | Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    quiet: bool = False,
    method: str = "auto",
) -> PlaneResult:
    """XSAM's v0-v1 plane, slerp arc and the worst point of the ball at one checkpoint.

    Implements the analysis of Chen & Zhou (ICLR 2026), "Revisiting Sharpness-Aware
    Minimization: A More Faithful and Effective Implementation", with the optimizer's
    own code: :func:`~sharpscope.optim.xsam.xsam_ascent` for ``v0``, ``v1`` and ``psi``,
    :func:`~sharpscope.optim.xsam.alpha_search` for the arc and ``alpha*``.

    .. math::
        e_1 = v_0, \\quad e_2 = \\frac{v_1 - \\cos\\psi\\, v_0}{\\sin\\psi}, \\quad
        L(a, b) = L(\\theta_0 + a e_1 + b e_2), \\quad
        \\mathrm{arc}(\\alpha) = \\theta_0 + \\rho_{max}\\, \\mathrm{slerp}(v_0, v_1; \\alpha)

    Args:
        model: any module; left exactly as it was.
        loss_fn: mean loss ``loss_fn(output, target)``.
        batches: iterable of batches, ``(x, y)``, ``(mapping, y)`` or mappings (the loss is
            their weighted mean, see :func:`sharpscope.runtime.batches.batch_weight`),
            or one batch.
        rho: XSAM's ascent radius (> 0).
        rho_max: radius of the arc and of the worst-case ball (default ``2 rho``).
        steps: ascent steps ``k``.
        alpha_max, alpha_step: the arc's alphas ``0, step, ..., alpha_max``.
        grid: ``(start, stop, num)`` for both plane axes (absolute distances).
        axes: two coordinate arrays instead of ``grid``.
        mode: ``eval`` or ``train`` (batch statistics, running stats frozen).
        worst_steps, restarts: projected gradient ascent for the worst point (starts:
            ``rho_max v1``, ``rho_max slerp(alpha*)``, ``rho_max v0``, the gradient, and
            ``restarts`` random points).
        seed: seeds the random starts and the degenerate-plane fallback.
        params: which parameters to perturb (regex or names); all by default.
        out_dir: folder for the grid (``surface.npz``, ``meta.json``: resumable) and
            ``plane.json``.
        quiet: no progress bars.
        method: grid evaluation method (see :func:`~sharpscope.landscape.grid.evaluate_grid`).

    Returns:
        a :class:`PlaneResult`. The settings are checked by :class:`PlaneSettings`.
    """
    s = PlaneSettings(
        rho=rho,
        rho_max=rho_max,
        steps=steps,
        alpha_max=alpha_max,
        alpha_step=alpha_step,
        grid=grid,
        axes=axes,
        mode=mode,
        worst_steps=worst_steps,
        restarts=restarts,
        seed=seed,
        method=method,
    )
    data = _as_batches(batches)
    names = _names(model, params)
    with preserved(model), probe_mode(model, mode):
        start = _ascend(model, loss_fn, data, names, s)
        arc = _search_arc(model, loss_fn, data, names, start, s)
    plane = _plane_coordinates(start, arc, s)
    worst = _worst_point(model, loss_fn, data, names, start, arc, plane, s, quiet)
    grid_args = (model, loss_fn, data, names, start, arc, plane, s)
    surface = _plane_grid(*grid_args, out_dir=out_dir, quiet=quiet)
    result = _result(start, arc, plane, worst, surface, names, s, data)
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / "plane.json", result.to_dict())
    return result


def _result(
    start: _Start,
    arc: _Arc,
    plane: _Plane,
    worst: dict[str, Any],
    surface: Surface,
    names: list[str],
    s: PlaneSettings,
    data: list[Batch],
) -> PlaneResult:
    res = start.res
    at_limit = s.alpha_max > 0 and bool(arc.alphas) and arc.alpha_star >= arc.alphas[-1] - 1e-9
    notes = [worst["boundary_note"]] if worst.get("boundary_note") else []
    if at_limit:
        notes.insert(
            0,
            f"XSAM's alpha* = {arc.alpha_star:g} is the largest alpha searched (alpha_max = "
            f"{s.alpha_max:g}): the arc's maximum may lie beyond it; raise alpha_max",
        )
    return PlaneResult(
        rho=s.rho,
        rho_max=s.rho_max,  # type: ignore[arg-type]
        steps=s.steps,
        psi=res.psi,
        cos_psi=res.cos_psi,
        grad_norm=res.grad_norm,
        loss_theta0=start.loss0,
        alphas=np.asarray(arc.alphas, dtype=np.float64),
        arc_losses=np.asarray(arc.losses, dtype=np.float64),
        alpha_star=arc.alpha_star,
        loss_alpha0=arc.loss_alpha0,
        loss_sam=arc.loss_sam,
        loss_xsam=arc.loss_xsam,
        arc_coords=plane.arc_coords,
        v1_coords=plane.v1_coords,
        path_coords=plane.path_coords,
        path_off_plane=plane.path_off_plane,
        worst=worst,
        degenerate=plane.degenerate,
        surface=surface,
        basis=(
            dict(zip(names, plane.e1, strict=True)),
            dict(zip(names, plane.e2, strict=True)),
        ),
        settings=s.record(
            data_samples=sample_count(data), batches=len(data), parameters=len(names)
        ),
        alpha_at_limit=at_limit,
        boundary_note="; ".join(notes) or None,
    )
