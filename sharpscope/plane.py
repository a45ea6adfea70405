"""0.1's import path of XSAM's plane probe, kept for users: everything now lives in
:mod:`sharpscope.sharpness` (``plane``, ``plane_settings``, ``plane_steps``, ``plots``,
``plane_probe``). Nothing inside the package imports this module.
"""

from __future__ import annotations

from .sharpness.objective import Batch
from .sharpness.plane import PlaneResult, xsam_plane
from .sharpness.plane_probe import probe_plane
from .sharpness.plane_settings import PlaneSettings, _check_positive, _plane_axes
from .sharpness.plane_steps import Tensors, _coords, plane_basis
from .sharpness.plots import _arc_point, plane_figure_html, plot_plane

__all__ = [
    "PlaneResult",
    "xsam_plane",
    "plane_basis",
    "plot_plane",
    "plane_figure_html",
    "probe_plane",
    "PlaneSettings",
]

_PRIVATE = (Batch, Tensors, _check_positive, _plane_axes, _coords, _arc_point)
