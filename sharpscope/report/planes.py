"""The XSAM plane figures of a comparison: all planes on one colour scale, one per model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .figures import DEFAULT_OPTIONS, _plt, _save, _surfaces
from .format import FigureOptions, _arr


def _fig_planes(report: Any, path: Path, opts: FigureOptions = DEFAULT_OPTIONS) -> Path | None:
    from .scales import draw_panel, panel_scales, shared_colorbar

    items = _surfaces(report, "plane")
    if not items:
        return None
    plt = _plt()
    scales = panel_scales([s.loss for _, s in items], opts.color_scale)
    fig, axes = plt.subplots(
        1, len(items), figsize=(3.8 * len(items) + 1.2, 4.6), squeeze=False, layout="constrained"
    )
    axes = list(axes[0])
    mappable = None
    for k, (ax, (label, surf)) in enumerate(zip(axes, items, strict=True)):
        rec = report.details[label]["plane"]
        cs = draw_panel(ax, surf.axes, scales.z[k], scales.scales[k])
        mappable = mappable or cs
        if not scales.shared and cs is not None:
            shared_colorbar(fig, ax, cs, scales.scales[k], "training loss")
        _plane_markers(ax, rec)
        limit = " (alpha* at search limit!)" if rec.get("alpha_star_at_limit") else ""
        ax.set_title(f"{label}: psi = {rec['psi_deg']:.1f} deg{limit}")
        ax.set_xlabel("a  (along v0)")
        ax.set_ylabel("b  (v1's part orthogonal to v0)")
        ax.set_aspect("equal", adjustable="box")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7, frameon=False)
    if scales.shared:
        shared_colorbar(fig, axes, mappable, scales.scales[0], scales.label)
    fig.suptitle(
        f"XSAM v0-v1 planes (rho={report.settings['rho']:g}, white arc: slerp(v0, v1) at "
        f"rho_max={report.details[items[0][0]]['plane']['rho_max']:g}; {scales.describe()})"
    )
    return _save(fig, path, opts)


def _plane_markers(ax: Any, rec: dict[str, Any]) -> None:
    """The arc, theta_0, SAM's and XSAM's points (markers are labelled for the legend)."""
    arc = _arr(rec["arc"]["coords"]).reshape(-1, 2)  # absolute plane coordinates
    ax.plot(arc[:, 0], arc[:, 1], "-", color="white", lw=2.2)
    ax.plot([0], [0], "o", color="black", mec="white", ms=6, label="theta_0")
    v1 = np.asarray(rec["v1_coords"], dtype=float) * rec["rho_max"]
    ax.plot(*v1, "^", color="tab:orange", mec="white", ms=10, label="SAM (alpha = 1)")
    alphas = _arr(rec["arc"]["alphas"])
    j = int(np.argmin(np.abs(alphas - rec["alpha_star"])))
    ax.plot(*arc[j], "*", color="tab:red", mec="white", ms=15, label="XSAM's alpha*")


def _plane_detail(
    report: Any, label: str, path: Path, opts: FigureOptions = DEFAULT_OPTIONS
) -> Path | None:
    from ..landscape.grid import Surface
    from ..sharpness.plane import PlaneResult
    from ..sharpness.plots import plot_plane

    rec = report.details[label].get("plane")
    if rec is None:
        return None
    result = PlaneResult(
        rho=rec["rho"],
        rho_max=rec["rho_max"],
        steps=rec["k"],
        psi=rec["psi"],
        cos_psi=rec["cos_psi"],
        grad_norm=rec["grad_norm"],
        loss_theta0=rec["loss_theta0"],
        alphas=_arr(rec["arc"]["alphas"]),
        arc_losses=_arr(rec["arc"]["losses"]),
        alpha_star=rec["alpha_star"],
        loss_alpha0=rec["loss_alpha0"],
        loss_sam=rec["loss_sam"],
        loss_xsam=rec["loss_xsam"],
        arc_coords=_arr(rec["arc"]["coords"]).reshape(-1, 2),
        v1_coords=np.asarray(rec["v1_coords"], dtype=float),
        path_coords=_arr(rec["path"]["coords"]).reshape(-1, 2),
        path_off_plane=_arr(rec["path"]["off_plane"]),
        worst=dict(rec["worst"]),
        degenerate=bool(rec["degenerate"]),
        surface=Surface.load(rec["surface_dir"]),
        settings=dict(rec["settings"]),
        alpha_at_limit=bool(rec.get("alpha_star_at_limit", False)),
        boundary_note=rec.get("boundary_note"),
    )
    plot_plane(result, path, title=f"XSAM plane of {label}", formats=opts.formats)
    return path
