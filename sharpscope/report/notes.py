"""The words around the numbers: search-limit warnings, readable settings, how to read figures.

Everything here is plain text (Markdown or HTML is added by the caller), drawn from the
report's numbers, so ``summary.md`` and ``report.html`` say the same.
"""

from __future__ import annotations

import math
from typing import Any

from ..hessian.reprs import MODE_NOTE
from .format import format_value

__all__ = [
    "CURVATURE_NOTE",
    "FIGURE_GUIDE",
    "MODE_NOTE",
    "SEARCH_HEAD",
    "boundary_warnings",
    "curvature_note",
    "search_rows",
    "settings_rows",
    "samples_text",
]

CURVATURE_NOTE = (
    "the fitted curvature is twice the quadratic coefficient of a least-squares fit over "
    "the whole slice range; the finite-difference curvature is the second difference at "
    "the centre over one grid step. They agree only for a quadratic bowl: a basin that "
    "flattens or steepens away from the centre makes them differ"
)

FIGURE_GUIDE = {
    "measures": "Each bar is a flatness measure divided by the first checkpoint's value: "
    "below the dashed line at 1 is flatter than it, above is sharper.",
    "slices_1d": "The loss along shared random filter-normalised directions: the line is the "
    "median over directions, the band the 10-90% spread; a wider, lower curve is a flatter "
    "minimum. Dashed lines: accuracy.",
    "slices_2d": "The loss on the plane of the same two directions for every model. Colour: the "
    "rise above each model's own minimum on one log scale (unless the settings say otherwise), "
    "so a larger dark region is a wider basin.",
    "density": "The Hessian's eigenvalue density (log scale): mass far to the right is sharp "
    "curvature, mass left of 0 is negative curvature. The legend gives the SLQ trace with "
    "its standard error over runs.",
    "interpolation": "The loss on the straight line between two minima (t = 0 and t = 1): a "
    "bump between them is a barrier, a flat line means they are linearly connected.",
    "planes": "XSAM's plane spanned by the gradient (v0) and SAM's ascent direction (v1): the "
    "white arc joins them at radius rho_max, the star marks XSAM's alpha*. Same colour rule "
    "as the 2D slices.",
    "plane_arcs": "The loss along the arc from v0 (alpha = 0) to SAM's v1 (alpha = 1) and "
    "beyond; XSAM steps towards the arc's maximum alpha*. A maximum at the right end means "
    "the search stopped at its limit.",
    "over_training": "The top Hessian eigenvalue after each epoch against 2 / lr (gradient "
    "descent's stability limit; Cohen et al. 2021): sharpness rising to the line is the edge "
    "of stability.",
    "group_strips": "Every run of every group per measure (dots) with the group mean and its "
    "interval (bars): overlapping intervals mean the groups are not told apart.",
    "gap_scatter": "Each run's flatness against its generalisation gap; Kendall's tau in the "
    "title says whether flatter runs generalise better.",
    "plane_detail": "One model's plane in detail: contours, the arc, SAM's and XSAM's points, "
    "the ascent path and the worst point of the ball, and the loss along the arc.",
}


def samples_text(value: Any) -> str:
    """``96`` or ``all`` (``None`` means every training sample)."""
    return "all" if value is None else str(value)


def boundary_warnings(report: Any) -> list[str]:
    """One line per search that ended on its limit (XSAM's alpha*, worst-case ascent)."""
    out = []
    for label in report.labels:
        d = report.details.get(label, {})
        plane = d.get("plane") or {}
        if plane.get("boundary_note"):
            out.append(f"{label}, XSAM plane: {plane['boundary_note']}")
        elif plane.get("alpha_star_at_limit"):
            out.append(
                f"{label}, XSAM plane: alpha* = {plane['alpha_star']:g} is the largest alpha "
                "searched; the arc's maximum may lie beyond it"
            )
        worst = (d.get("sharpness") or {}).get("worst") or {}
        if worst.get("boundary_note"):
            out.append(f"{label}, worst-case sharpness: {worst['boundary_note']}")
    return out


def search_rows(report: Any) -> list[list[str]]:
    """``[checkpoint, alpha*, at limit, worst point on the ball's surface, starts still rising]``."""
    rows = []
    for label in report.labels:
        d = report.details.get(label, {})
        plane = d.get("plane")
        worst = (d.get("sharpness") or {}).get("worst")
        if plane is None and worst is None:
            continue
        extra = (worst or {}).get("extra") or worst or {}
        rising = extra.get("starts_still_rising")
        rows.append(
            [
                label,
                "n/a" if plane is None else format_value(plane.get("alpha_star")),
                "n/a" if plane is None else _yes(plane.get("alpha_star_at_limit")),
                _yes(extra.get("on_boundary")),
                "n/a" if rising is None else str(rising),
            ]
        )
    return rows


SEARCH_HEAD = [
    "checkpoint",
    "XSAM alpha*",
    "alpha* at search limit",
    "worst point on the ball's surface",
    "ascent starts still rising",
]


def _yes(v: Any) -> str:
    return "n/a" if v is None else ("yes" if v else "no")


def curvature_note(report: Any) -> str | None:
    """Both 1D curvatures (median over directions) and why they differ, when both are known."""
    parts = []
    for label in report.labels:
        d = report.details.get(label, {}).get("slice1d") or {}
        fit, fd = d.get("curvature_fit_median"), d.get("curvature_fd_median")
        if fit is None and fd is None:
            continue
        parts.append(f"{label}: fitted {format_value(fit)}, finite difference {format_value(fd)}")
    if not parts:
        return None
    return "1D curvature (median over directions) — " + "; ".join(parts) + ". " + CURVATURE_NOTE


_TITLES = {
    "probe_samples": "training samples probed",
    "samples": "training samples probed",
    "batch_size": "batch size",
    "mode": "model mode",
    "rho": "rho (sharpness radius)",
    "seed": "seed",
    "directions_count": "shared random directions",
    "top_k": "top eigenvalues",
    "trace_probes": "trace probes (Hutchinson)",
    "density_runs": "SLQ runs",
    "density_iters": "SLQ Lanczos steps",
    "worst_steps": "worst-case ascent steps",
    "worst_restarts": "worst-case restarts",
    "average_draws": "average-case draws",
    "range1d": "1D range (from, to, points)",
    "range2d": "2D range (from, to, points per axis)",
    "plane_range": "plane range (from, to, points per axis)",
    "interp_range": "interpolation range (from, to, points)",
    "checkpoints": "checkpoints",
}


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "all" if "samples" in key else "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format_value(value) if math.isfinite(value) else "n/a"
    if isinstance(value, (list, tuple)):
        if not value:
            return "—"
        return ", ".join(_cell(key, v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_cell(str(k), v)}" for k, v in value.items()) or "—"
    return str(value)


def settings_rows(report: Any) -> list[tuple[str, str]]:
    """``(setting, value)`` rows a reader can scan: named settings, ``None`` spelt out."""
    rows = []
    for key, value in report.settings.items():
        if isinstance(value, dict) and value and key != "demo":
            rows += [(f"{_TITLES.get(key, key)}: {k}", _cell(str(k), v)) for k, v in value.items()]
            continue
        if key == "demo" and isinstance(value, dict):
            rows += [(f"demo: {k}", _cell(str(k), v)) for k, v in value.items()]
            continue
        rows.append((_TITLES.get(key, key), _cell(key, value)))
    rows += [(f"environment: {k}", _cell(k, v)) for k, v in report.environment.items()]
    rows.append(("checkpoints", ", ".join(report.checkpoints)))
    return rows
