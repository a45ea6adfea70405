"""Writing a comparison report: ``summary.json``, ``summary.md``, PNG figures and one HTML page.

Everything is drawn from the numbers of a :class:`~sharpscope.compare.ComparisonReport`
(and the grids its probes saved), so re-writing a report never re-runs a probe. The
HTML page is self-contained: plotly.js is inlined once, each figure appears once
(interactive where it can be, else an embedded PNG; the PNG/PDF files are linked),
and nothing is fetched from the network. A tiny script records JavaScript errors into a
hidden ``#js-errors`` element so a headless browser can check the page.

This package never imports :mod:`sharpscope.compare`: it assembles what compare hands
it. Modules: :mod:`.format` (cells, :class:`FigureOptions`), :mod:`.notes` (warnings,
settings, how to read each figure), :mod:`.markdown` (``summary.md``), :mod:`.figures`,
:mod:`.planes` and :mod:`.scales` (matplotlib PNG/PDF, the panels' colour scale),
:mod:`.interactive` (plotly figures), :mod:`.html` (the page), :mod:`.write`.
"""

# ruff: noqa: F401  (re-exports: every name of the 0.1 module, private ones included)
from __future__ import annotations

from .figures import (
    _fig_density,
    _fig_interpolation,
    _fig_measures,
    _fig_over_training,
    _fig_slices_1d,
    _fig_slices_2d,
    _momentum,
    _plt,
    _save,
    _shared_colorbar,
    _slice_sets,
    _surfaces,
)
from .format import COLOR_SCALES, FIGURES, FLATTEST, FigureOptions, _arr, _clean, format_value
from .html import (
    _CSS,
    _ERROR_SCRIPT,
    _FINAL_SCRIPT,
    _html_table,
    _settings_html,
    report_html,
)
from .interactive import _plotly_figures, plotly_figures
from .markdown import _md_table, _verdict_lines, summary_markdown, summary_tables
from .notes import CURVATURE_NOTE, MODE_NOTE, boundary_warnings
from .planes import _fig_planes, _plane_detail
from .write import _digest, _draw_figures, write_figures, write_report

__all__ = [
    "summary_markdown",
    "summary_tables",
    "write_report",
    "write_figures",
    "report_html",
    "format_value",
    "FigureOptions",
    "COLOR_SCALES",
    "MODE_NOTE",
    "CURVATURE_NOTE",
    "boundary_warnings",
    "plotly_figures",
]
