"""XSAM's plane: where does the worst loss of the rho-ball lie, relative to SAM's direction?

Chen & Zhou (ICLR 2026), "Revisiting Sharpness-Aware Minimization: A More Faithful and
Effective Implementation", argue that SAM's update points the wrong way: the loss
increases most in a direction between ``v0`` (from ``theta_0`` to the ascent point
``theta_k``) and ``v1`` (the gradient at ``theta_k``, SAM's direction), and XSAM finds
it by searching the slerp arc between them. :func:`xsam_plane` makes this visible on
any checkpoint:

1. XSAM's k-step ascent from ``theta_0`` (the optimizer's own
   :func:`sharpscope.optim.xsam.xsam_ascent`) gives ``v0``, ``v1`` and their angle ``psi``;
2. the loss is evaluated on the plane ``theta_0 + a e1 + b e2`` spanned by ``v0`` and
   ``v1`` (the grid engine :func:`sharpscope.landscape.grid.evaluate_grid`, resumable);
3. the loss along the arc ``theta_0 + rho_max slerp(v0, v1; alpha)`` (the optimizer's
   :func:`sharpscope.optim.xsam.alpha_search`) gives XSAM's ``alpha*``;
4. the true worst point of the ``rho_max`` ball (projected gradient ascent, as for the
   worst-case sharpness) shows how much of the worst case SAM (``alpha = 1``) and
   XSAM (``alpha*``) capture, and how far it lies from the plane.
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

from ._func import preserved, probe_mode, select_parameters
from .errors import DataError, SharpscopeError
from .landscape.grid import Surface, evaluate_grid, evaluate_point, grid_axis, locks_output
from .optim.geometry import SIN_EPS, angle, global_dot, global_norm, slerp, slerp_coefficients
from .optim.xsam import alpha_search, xsam_ascent
from .sharpness import worst_case_sharpness
from .utils import atomic_write_json, check_writable, folder_lock, to_jsonable

__all__ = [
    "PlaneResult",
    "xsam_plane",
    "plane_basis",
    "plot_plane",
    "plane_figure_html",
    "probe_plane",
]

Batch = tuple[torch.Tensor, torch.Tensor]
Tensors = list[torch.Tensor]


# ----------------------------------------------------------------------------- result
@dataclass
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


# ----------------------------------------------------------------------------- helpers
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


# ----------------------------------------------------------------------------- probe
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
        batches: iterable of ``(x, y)`` batches (the loss is their sample-weighted mean),
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
        a :class:`PlaneResult`.
    """
    rho = _check_positive("rho", rho)
    rho_max = 2.0 * rho if rho_max is None else _check_positive("rho_max", rho_max)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SharpscopeError(f"steps must be a whole number of at least 1, got {steps!r}")
    alpha_max = _check_positive("alpha_max", alpha_max, allow_zero=True)
    alpha_step = _check_positive("alpha_step", alpha_step)
    if not isinstance(worst_steps, int) or worst_steps < 1:
        raise SharpscopeError(f"worst_steps must be at least 1, got {worst_steps!r}")
    if not isinstance(restarts, int) or restarts < 0:
        raise SharpscopeError(f"restarts must be 0 or more, got {restarts!r}")
    plane_axes = _plane_axes(grid, axes)
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], torch.Tensor):
        batches = [batches]
    data = list(batches)
    if not data:
        raise DataError("no data: the batch iterable is empty")
    names = (
        select_parameters(model, params)
        if (params is None or isinstance(params, str))
        else list(params)
    )
    total = sum(len(y) for _, y in data)

    with preserved(model), probe_mode(model, mode):
        own = dict(model.named_parameters())
        plist = [own[n] for n in names]
        theta0 = [p.detach().clone() for p in plist]

        def grad_fn() -> list[torch.Tensor]:
            grads = [torch.zeros_like(p) for p in plist]
            for x, y in data:
                loss = loss_fn(model(x), y) * (len(y) / total)
                g = torch.autograd.grad(loss, plist, allow_unused=True)
                torch._foreach_add_(
                    grads,
                    [
                        gi if gi is not None else torch.zeros_like(p)
                        for gi, p in zip(g, plist, strict=True)
                    ],
                )
            return grads

        def loss_now() -> float:
            return evaluate_point(model, loss_fn, data)[0]

        with torch.no_grad():
            loss0 = loss_now()
        for p in plist:
            p.requires_grad_(True)
        res = xsam_ascent(plist, grad_fn, rho=rho, steps=steps, record_path=True, theta0=theta0)
        with torch.no_grad():
            torch._foreach_copy_(plist, theta0)
        if float(global_norm(res.path[-1])) < 1e-30:  # type: ignore[index]
            raise SharpscopeError(
                "the gradient at theta_0 is zero on this data: XSAM's ascent does not "
                "move, so the plane is undefined (use other samples)"
            )
        alpha_star, alphas, arc = alpha_search(
            plist,
            theta0,
            res.v0,
            res.v1,
            res.psi,
            loss_now,
            rho_max=rho_max,
            alpha_max=alpha_max,
            step=alpha_step,
        )

        def loss_at_alpha(alpha: float) -> float:
            hits = [i for i, a in enumerate(alphas) if abs(a - alpha) < 1e-9]
            if hits:
                return arc[hits[0]]
            d = slerp(res.v0, res.v1, alpha, res.psi)
            point = {n: t + rho_max * di for n, t, di in zip(names, theta0, d, strict=True)}
            return evaluate_point(model, loss_fn, data, point)[0]

        loss_a0, loss_sam, loss_xsam = (
            loss_at_alpha(0.0),
            loss_at_alpha(1.0),
            loss_at_alpha(alpha_star),
        )

    e1, e2, degenerate = plane_basis(res.v0, res.v1, seed=seed)
    v1c = _coords(res.v1, e1, e2)
    arc_coords = np.array(
        [
            rho_max * (np.array([c0, 0.0]) + c1 * v1c)
            for c0, c1 in (slerp_coefficients(res.psi, a) for a in alphas)
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

    # the worst point of the rho_max ball, started from SAM's and XSAM's points
    d_sam = torch._foreach_mul(res.v1, rho_max)
    d_xsam = torch._foreach_mul(slerp(res.v0, res.v1, alpha_star, res.psi), rho_max)
    d_v0 = torch._foreach_mul(res.v0, rho_max)
    wc = worst_case_sharpness(
        model,
        loss_fn,
        data,
        rho=rho_max,
        norm="l2",
        mode=mode,
        steps=worst_steps,
        restarts=restarts,
        seed=seed,
        params=names,
        starts=[d_sam, d_xsam, d_v0],
        quiet=quiet,
    )
    delta = [wc.delta[n] for n in names]  # type: ignore[index]
    wcoords = _coords(delta, e1, e2)
    dn = float(global_norm(delta))
    in_plane = float(np.linalg.norm(wcoords))
    off_plane = math.sqrt(max(dn**2 - in_plane**2, 0.0))
    rise = wc.perturbed_loss - loss0  # type: ignore[operator]
    worst = {
        "loss": wc.perturbed_loss,
        "sharpness": rise,
        "norm": dn,
        "coords": wcoords.tolist(),
        "angle_to_plane_deg": math.degrees(math.atan2(off_plane, in_plane)),
        "cos_v0": angle(delta, res.v0)[0],
        "cos_sam": angle(delta, res.v1)[0],
        "cos_xsam": angle(delta, d_xsam)[0],
        "capture_sam": (loss_sam - loss0) / rise if rise > 0 else None,
        "capture_xsam": (loss_xsam - loss0) / rise if rise > 0 else None,
        "iterations": wc.iterations,
        "steps": worst_steps,
        "restarts": restarts,
    }

    metadata = {
        "probe": "xsam_plane",
        "rho": rho,
        "rho_max": rho_max,
        "k": steps,
        "psi": res.psi,
        "alpha_star": alpha_star,
        "degenerate": degenerate,
    }
    surface = evaluate_grid(
        model,
        loss_fn,
        data,
        [dict(zip(names, e1, strict=True)), dict(zip(names, e2, strict=True))],
        plane_axes,
        center=dict(zip(names, theta0, strict=True)),
        mode=mode,
        method=method,
        out_dir=out_dir,
        quiet=quiet,
        metadata=metadata,
    )

    result = PlaneResult(
        rho=rho,
        rho_max=rho_max,
        steps=steps,
        psi=res.psi,
        cos_psi=res.cos_psi,
        grad_norm=res.grad_norm,
        loss_theta0=loss0,
        alphas=np.asarray(alphas, dtype=np.float64),
        arc_losses=np.asarray(arc, dtype=np.float64),
        alpha_star=float(alpha_star),
        loss_alpha0=loss_a0,
        loss_sam=loss_sam,
        loss_xsam=loss_xsam,
        arc_coords=arc_coords,
        v1_coords=v1c,
        path_coords=path_coords,
        path_off_plane=path_off,
        worst=worst,
        degenerate=degenerate,
        surface=surface,
        basis=(dict(zip(names, e1, strict=True)), dict(zip(names, e2, strict=True))),
        settings={
            "mode": mode,
            "seed": seed,
            "data_samples": total,
            "batches": len(data),
            "parameters": len(names),
            "alpha_max": alpha_max,
            "alpha_step": alpha_step,
            "grid": [[float(a[0]), float(a[-1]), len(a)] for a in plane_axes],
        },
    )
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / "plane.json", result.to_dict())
    return result


# ----------------------------------------------------------------------------- figures
def plot_plane(
    result: PlaneResult,
    path: str | Path | None = None,
    *,
    title: str | None = None,
    levels: int = 30,
    log: bool | None = None,
):
    """Draw the plane: contour with the arc and markers, and the loss along the arc.

    Left panel: the loss on ``theta_0 + a e1 + b e2`` (filled contours, via
    :func:`sharpscope.landscape.plots.plot_contour`) with the arc at ``rho_max``, markers
    at ``alpha = 0`` (``v0``), ``alpha = 1`` (``v1``, SAM), ``alpha*`` (XSAM), the ascent
    points ``theta_1..theta_k`` and the projection of the worst point of the ball.
    Right panel: loss versus alpha on the arc, with SAM, XSAM and the worst case.

    Args:
        result: from :func:`xsam_plane`.
        path: ``.png``/``.pdf``/``.svg`` (matplotlib) or ``.html`` (interactive plotly,
            self-contained); ``None`` returns the matplotlib figure without saving.
        title: figure title.
        levels: contour levels.
        log: colour by ``log10(loss)`` (default: when the loss spans over 2 decades).

    Returns:
        the matplotlib figure (or the path of the HTML file).
    """
    if path is not None and Path(path).suffix.lower() in (".html", ".htm"):
        return plane_figure_html(result, path, title=title)
    if path is not None and Path(path).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise SharpscopeError(f"plot file {path} must end in .png, .pdf, .svg or .html")
    from matplotlib import patheffects

    from .landscape.plots import _plt, plot_contour

    plt = _plt()
    s = result.surface
    if s is None:
        raise SharpscopeError("this plane result has no grid surface to draw")
    finite = s.loss[np.isfinite(s.loss)]
    if log is None:
        log = bool(finite.size and finite.min() > 0 and finite.max() / finite.min() > 100)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13.5, 6.4), gridspec_kw={"width_ratios": [1.2, 1]})
    r = result.rho_max
    plot_contour(
        s,
        ax=ax,
        levels=levels,
        log=log,
        filled=True,
        xlabel="a  (along e1 = v0)",
        ylabel="b  (along e2: v1 minus its v0 part)"
        + ("  [random: v0 || v1]" if result.degenerate else ""),
    )
    t = np.linspace(0, 2 * np.pi, 240)
    ax.plot(r * np.cos(t), r * np.sin(t), ":", color="white", lw=0.9, alpha=0.8)
    arc = result.arc_coords
    ax.plot(
        arc[:, 0],
        arc[:, 1],
        "-",
        color="white",
        lw=2.4,
        path_effects=[patheffects.withStroke(linewidth=4.2, foreground="black")],
        label=f"slerp arc at rho_max={r:g}, alpha in [0, {result.alphas[-1]:g}]",
    )
    ax.plot(
        [0], [0], "o", ms=7, mfc="black", mec="white", label=f"theta_0: {result.loss_theta0:.4g}"
    )
    ax.plot(
        *(r * np.array(_arc_point(result, 0.0))),
        "s",
        ms=9,
        mfc="tab:blue",
        mec="white",
        label=f"alpha=0 (v0): {result.loss_alpha0:.4g}",
    )
    ax.plot(
        *(r * result.v1_coords),
        "^",
        ms=10,
        mfc="tab:orange",
        mec="white",
        label=f"alpha=1 (SAM, v1): {result.loss_sam:.4g}",
    )
    ax.plot(
        *(r * np.array(_arc_point(result, result.alpha_star))),
        "*",
        ms=17,
        mfc="tab:red",
        mec="white",
        label=f"alpha*={result.alpha_star:.3g} (XSAM): {result.loss_xsam:.4g}",
    )
    if len(result.path_coords):
        pc = np.vstack([[0.0, 0.0], result.path_coords])
        ax.plot(pc[:, 0], pc[:, 1], "--", color="cyan", lw=1.3)
        ax.plot(
            result.path_coords[:, 0],
            result.path_coords[:, 1],
            "o",
            ms=5,
            mfc="cyan",
            mec="black",
            label=f"ascent theta_1..theta_{result.steps} (rho={result.rho:g})",
        )
    w = np.asarray(result.worst["coords"])
    ax.plot(
        *w,
        "X",
        ms=12,
        mfc="magenta",
        mec="white",
        label=f"worst of the ball, projected ({result.worst['angle_to_plane_deg']:.0f} deg "
        f"off the plane): {result.worst['loss']:.4g}",
    )
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(f"loss on the v0-v1 plane  (psi = {math.degrees(result.psi):.1f} deg)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7.5, frameon=False)

    ax2.plot(
        result.alphas,
        result.arc_losses,
        "-o",
        ms=3.5,
        color="black",
        label=f"loss on the arc (radius {r:g})",
    )
    ax2.axvline(
        1.0, color="tab:orange", ls="--", lw=1.4, label=f"SAM (alpha=1): {result.loss_sam:.4g}"
    )
    ax2.axvline(
        result.alpha_star,
        color="tab:red",
        lw=1.4,
        label=f"XSAM alpha*={result.alpha_star:.3g}: {result.loss_xsam:.4g}",
    )
    ax2.axhline(
        result.worst["loss"],
        color="magenta",
        ls=":",
        lw=1.6,
        label=f"worst of the ball: {result.worst['loss']:.4g}",
    )
    ax2.axhline(
        result.loss_theta0, color="grey", ls=":", lw=1.0, label=f"theta_0: {result.loss_theta0:.4g}"
    )
    ax2.set_xlabel("alpha  (0 = v0, 1 = v1 = SAM)")
    ax2.set_ylabel(f"loss at theta_0 + {r:g} slerp(v0, v1; alpha)")
    cap_s, cap_x = result.worst.get("capture_sam"), result.worst.get("capture_xsam")
    if cap_s is not None and cap_x is not None:
        ax2.set_title(
            f"share of the worst-case loss rise: SAM {100 * cap_s:.0f}%, XSAM {100 * cap_x:.0f}%"
        )
    else:
        ax2.set_title("loss along the slerp arc")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7.5, frameon=False)
    fig.suptitle(
        title
        or f"XSAM plane: rho={result.rho:g}, rho_max={r:g}, k={result.steps}, "
        f"{result.settings.get('data_samples', '?')} samples, {result.settings.get('mode', '')} mode"
    )
    fig.tight_layout()
    if path is not None:
        from .distributed import is_main

        path = Path(path)
        if is_main():  # distributed runs: rank 0 writes the figure
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
            fig.savefig(tmp, dpi=130, bbox_inches="tight")
            tmp.replace(path)
        plt.close(fig)
    return fig


def _arc_point(result: PlaneResult, alpha: float) -> tuple[float, float]:
    c0, c1 = slerp_coefficients(result.psi, alpha)
    p = np.array([c0, 0.0]) + c1 * result.v1_coords
    return float(p[0]), float(p[1])


def plane_figure_html(result: PlaneResult, path: str | Path, *, title: str | None = None) -> Path:
    """Write the plane as a self-contained interactive plotly HTML file (no network needed)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = result.surface
    r = result.rho_max
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.55, 0.45],
        horizontal_spacing=0.12,
        subplot_titles=(
            f"v0-v1 plane (psi = {math.degrees(result.psi):.1f} deg)",
            "loss along the slerp arc",
        ),
    )
    Z = np.where(np.isfinite(s.loss), s.loss, None).T
    fig.add_trace(
        go.Contour(
            x=s.axes[0],
            y=s.axes[1],
            z=Z,
            colorscale="Viridis",
            ncontours=30,
            colorbar={"title": "loss", "x": 0.46},
            name="loss",
            hovertemplate="a=%{x:.3f}<br>b=%{y:.3f}<br>loss=%{z:.5g}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    arc = result.arc_coords
    fig.add_trace(
        go.Scatter(
            x=arc[:, 0],
            y=arc[:, 1],
            mode="lines+markers",
            line={"color": "white", "width": 3},
            marker={"size": 4},
            name="slerp arc",
            customdata=np.stack([result.alphas, result.arc_losses], -1),
            hovertemplate="alpha=%{customdata[0]:.2f}<br>loss=%{customdata[1]:.5g}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    points = [
        ("theta_0", (0.0, 0.0), "circle", "black", result.loss_theta0),
        (
            "alpha=0 (v0)",
            tuple(r * np.array(_arc_point(result, 0.0))),
            "square",
            "royalblue",
            result.loss_alpha0,
        ),
        ("alpha=1 (SAM)", tuple(r * result.v1_coords), "triangle-up", "orange", result.loss_sam),
        (
            f"alpha*={result.alpha_star:.2g} (XSAM)",
            tuple(r * np.array(_arc_point(result, result.alpha_star))),
            "star",
            "red",
            result.loss_xsam,
        ),
        (
            "worst of ball (projection)",
            tuple(result.worst["coords"]),
            "x",
            "magenta",
            result.worst["loss"],
        ),
    ]
    for name, (x, y), sym, color, loss in points:
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[y],
                mode="markers",
                name=f"{name}: {loss:.4g}",
                marker={
                    "symbol": sym,
                    "size": 13,
                    "color": color,
                    "line": {"color": "white", "width": 1},
                },
            ),
            row=1,
            col=1,
        )
    if len(result.path_coords):
        pc = np.vstack([[0.0, 0.0], result.path_coords])
        fig.add_trace(
            go.Scatter(
                x=pc[:, 0],
                y=pc[:, 1],
                mode="lines+markers",
                name="ascent path",
                line={"color": "cyan", "dash": "dash"},
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=result.alphas,
            y=result.arc_losses,
            mode="lines+markers",
            name="arc loss",
            line={"color": "black"},
        ),
        row=1,
        col=2,
    )
    for x, color, name in ((1.0, "orange", "SAM"), (result.alpha_star, "red", "XSAM alpha*")):
        fig.add_vline(
            x=x, line={"color": color, "dash": "dash"}, annotation_text=name, row=1, col=2
        )
    fig.add_hline(y=result.worst["loss"], line={"color": "magenta", "dash": "dot"}, row=1, col=2)
    fig.update_xaxes(title_text="a (along v0)", row=1, col=1)
    fig.update_yaxes(title_text="b (v1 orthogonal to v0)", scaleanchor="x", row=1, col=1)
    fig.update_xaxes(title_text="alpha", row=1, col=2)
    fig.update_yaxes(title_text="loss", row=1, col=2)
    fig.update_layout(
        title=title or f"XSAM plane: rho={result.rho:g}, rho_max={r:g}, k={result.steps}",
        width=1250,
        height=560,
        legend={"font": {"size": 10}},
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from .utils import atomic_write_text

    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
    return path


# ----------------------------------------------------------------------------- checkpoints
def probe_plane(
    path: str | Path,
    *,
    rho: float,
    rho_max: float | None = None,
    steps: int = 1,
    alpha_max: float = 2.0,
    alpha_step: float = 0.1,
    grid_range: str = "-0.5:0.5:41",
    out_dir: str | Path | None = None,
    html: bool = False,
    samples: int | None = 2048,
    batch_size: int = 512,
    mode: str = "eval",
    worst_steps: int = 30,
    restarts: int = 2,
    params: str | None = None,
    seed: int = 0,
    model: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    data: str | None = None,
    device: str = "auto",
    quiet: bool = True,
) -> dict[str, Any]:
    """:func:`xsam_plane` of a checkpoint on a seeded subset of its training data.

    Writes ``plane.png``, ``plane.json``, the grid (``surface.npz``, ``meta.json``;
    an interrupted run resumes) and, with ``html``, ``plane.html`` to ``out_dir``
    (default ``plane-<checkpoint name>``). Returns the JSON data with the file paths
    under ``files``.
    """
    from .problem import load_problem
    from .utils import parse_range

    start, stop, num = parse_range(grid_range, name="--range")
    if num < 2:
        raise SharpscopeError(f"invalid --range {grid_range!r}: the plane needs NUM >= 2 points")
    _check_positive("rho", rho)
    if samples is not None and samples < 0:
        raise SharpscopeError(f"samples must be 0 (all) or more, got {samples}")
    if batch_size < 1:
        raise SharpscopeError(f"batch size must be at least 1, got {batch_size}")
    path = Path(path)
    out = Path(out_dir) if out_dir is not None else Path(f"plane-{path.stem}")
    check_writable(out / "plane.json", what="output")
    with folder_lock(out, command="plane"):
        problem = load_problem(
            path, model=model, model_kwargs=model_kwargs, data=data, device=device
        )
        batches = problem.batches("train", batch_size, samples=samples or None, seed=seed)
        result = xsam_plane(
            problem.model,
            problem.loss_fn,
            batches,
            rho=rho,
            rho_max=rho_max,
            steps=steps,
            alpha_max=alpha_max,
            alpha_step=alpha_step,
            grid=(start, stop, num),
            mode=mode,
            worst_steps=worst_steps,
            restarts=restarts,
            seed=seed,
            params=params,
            out_dir=out,
            quiet=quiet,
        )
        files = {
            "json": out / "plane.json",
            "png": out / "plane.png",
            "surface": out / "surface.npz",
        }
        plot_plane(
            result,
            files["png"],
            title=f"XSAM plane of {path.name}: rho={result.rho:g}, "
            f"rho_max={result.rho_max:g}, k={result.steps}, {result.settings['data_samples']} samples",
        )
        if html:
            files["html"] = out / "plane.html"
            plane_figure_html(result, files["html"], title=f"XSAM plane of {path.name}")
        record = result.to_dict()
        record.update(
            checkpoint=str(path),
            problem=problem.describe(),
            files={k: str(v) for k, v in files.items()},
        )
        atomic_write_json(files["json"], record)
    return record
