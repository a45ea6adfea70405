"""Pictures of loss surfaces: 1D curves, contours, heatmaps, 3D surfaces, plotly HTML, trajectories.

Every function writes a file when given ``path`` (PNG or PDF by suffix; HTML for
plotly) and returns the matplotlib ``(figure, axes)`` so callers can add to it (the
XSAM plane probe marks its points on :func:`plot_contour`). Non-finite losses are
masked and drawn as gaps. Comparison figures share one colour scale and one set of
contour levels, so two minima are compared honestly.
"""

from .common import Levels, parse_levels, scale_for, shared_levels
from .common import _plt as _plt
from .common import _values as _values
from .html import plot_surface_html
from .lines import plot_1d
from .maps import plot_contour, plot_heatmap, plot_surface3d
from .panels import plot_comparison, plot_trajectory
from .standard import write_slice_plots

__all__ = [
    "plot_1d",
    "plot_contour",
    "plot_heatmap",
    "plot_surface3d",
    "plot_surface_html",
    "plot_comparison",
    "plot_trajectory",
    "shared_levels",
    "scale_for",
    "parse_levels",
    "Levels",
    "write_slice_plots",
]
