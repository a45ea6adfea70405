"""The standard picture files of a slice folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..surface import Surface
from .common import Levels
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
    formats: Sequence[str] = ("png",),
    levels: Levels | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    xlabel: str = "direction 1",
    ylabel: str = "direction 2",
) -> list[Path]:
    """The standard files of a slice folder, each in every one of ``formats``.

    1D: ``slice1d``; 2D: ``contour``, ``heatmap``, ``surface3d`` (one colour scale for
    the three, ``levels``/``vmin``/``vmax``); with ``html`` also ``surface.html`` on
    the same scale; ``pdf`` adds PDF to ``formats``.
    """
    out = Path(out_dir)
    fmts = tuple(formats) + (("pdf",) if pdf and "pdf" not in formats else ())
    labels = {"xlabel": xlabel, "title": title, "formats": fmts}
    if surface.dims == 1:
        plot_1d([surface], out / "slice1d", log=log, **labels)
        written = [out / f"slice1d.{f}" for f in fmts]
    else:
        scale_args = {"levels": levels, "vmin": vmin, "vmax": vmax, "ylabel": ylabel}
        written = []
        for name, draw in (
            ("contour", plot_contour),
            ("heatmap", plot_heatmap),
            ("surface3d", plot_surface3d),
        ):
            draw(surface, out / name, log=log, **labels, **scale_args)
            written += [out / f"{name}.{f}" for f in fmts]
    if html:
        kw = {"levels": levels, "vmin": vmin, "vmax": vmax, "xlabel": xlabel, "ylabel": ylabel}
        written.append(plot_surface_html(surface, out / "surface.html", log=log, title=title, **kw))
    return written
