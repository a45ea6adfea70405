"""The standard picture files of a slice folder."""

from __future__ import annotations

from pathlib import Path

from ..surface import Surface
from .html import plot_surface_html
from .lines import plot_1d
from .maps import plot_contour, plot_heatmap, plot_surface3d

__all__ = ["write_slice_plots"]


def write_slice_plots(
    surface: Surface,
    out_dir: str | Path,
    *,
    log: bool = False,
    html: bool = False,
    title: str | None = None,
    pdf: bool = False,
) -> list[Path]:
    """The standard files of a slice folder.

    1D: ``slice1d.png``; 2D: ``contour.png``, ``heatmap.png``, ``surface3d.png``; with
    ``html`` also ``surface.html``; with ``pdf`` a PDF beside each PNG.
    """
    out = Path(out_dir)
    written: list[Path] = []
    suffixes = [".png", ".pdf"] if pdf else [".png"]
    for suf in suffixes:
        if surface.dims == 1:
            plot_1d([surface], out / f"slice1d{suf}", log=log, title=title)
            written.append(out / f"slice1d{suf}")
        else:
            plot_contour(surface, out / f"contour{suf}", log=log, title=title)
            plot_heatmap(surface, out / f"heatmap{suf}", log=log, title=title)
            plot_surface3d(surface, out / f"surface3d{suf}", log=log, title=title)
            written += [out / f"contour{suf}", out / f"heatmap{suf}", out / f"surface3d{suf}"]
    if html:
        written.append(plot_surface_html(surface, out / "surface.html", log=log, title=title))
    return written
