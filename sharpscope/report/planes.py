"""The XSAM plane figures of a comparison: all planes on one colour scale, one per model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .figures import _plt, _save, _shared_colorbar, _surfaces
from .format import _arr


def _fig_planes(report: Any, path: Path) -> Path | None:
    from ..landscape.plots import plot_contour, shared_levels

    items = _surfaces(report, "plane")
    if not items:
        return None
    plt = _plt()
    levels = shared_levels([s for _, s in items], n=25)
    fig, axes = plt.subplots(
        1, len(items), figsize=(4.6 * len(items) + 1.2, 4.9), squeeze=False, layout="constrained"
    )
    axes = axes[0]
    for ax, (label, surf) in zip(axes, items, strict=True):
        rec = report.details[label]["plane"]
        plot_contour(
            surf,
            ax=ax,
            levels=levels,
            filled=True,
            colorbar=False,
            xlabel="a  (along v0)",
            ylabel="b  (v1's part orthogonal to v0)",
        )
        arc = _arr(rec["arc"]["coords"]).reshape(-1, 2)  # absolute plane coordinates
        ax.plot(arc[:, 0], arc[:, 1], "-", color="white", lw=2.2)
        ax.plot([0], [0], "o", color="black", mec="white", ms=6, label="theta_0")
        v1 = np.asarray(rec["v1_coords"], dtype=float) * rec["rho_max"]
        ax.plot(*v1, "^", color="tab:orange", mec="white", ms=10, label="SAM (alpha=1)")
        alphas = _arr(rec["arc"]["alphas"])
        j = int(np.argmin(np.abs(alphas - rec["alpha_star"])))
        ax.plot(
            *arc[j],
            "*",
            color="tab:red",
            mec="white",
            ms=15,
            label=f"XSAM alpha*={rec['alpha_star']:.2g}",
        )
        ax.set_title(f"{label}: psi = {rec['psi_deg']:.1f} deg")
        ax.set_aspect("equal", adjustable="box")
        ax.legend(fontsize=7, loc="lower left")
    _shared_colorbar(fig, axes, levels, "training loss")
    fig.suptitle(
        f"XSAM v0-v1 planes (rho={report.settings['rho']:g}, white arc: slerp(v0, v1) at "
        f"rho_max={report.details[items[0][0]]['plane']['rho_max']:g}; one colour scale)"
    )
    return _save(fig, path)


def _plane_detail(report: Any, label: str, path: Path) -> Path | None:
    from ..landscape.grid import Surface
    from ..plane import PlaneResult, plot_plane

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
    )
    plot_plane(result, path, title=f"XSAM plane of {label}")
    return path
