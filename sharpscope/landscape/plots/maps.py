"""2D pictures of one surface: contour lines, a heatmap, a 3D surface.

Colours and contour levels come from one :class:`~sharpscope.runtime.figstyle.LossScale`:
by default levels log-spaced in the rise above the minimum, so a basin keeps several
nested contours even when a corner of the grid is 100 times higher; the colour bar
has round ticks. Explicit levels (``levels=array``) and counts keep 0.1's behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...runtime.figstyle import SEQUENTIAL_CMAP, LossScale, figsize, place_legend_outside
from ..surface import Surface
from .common import Levels, _check_2d, _empty_note, _new_ax, _plt, _save, _scaled, _styled

__all__ = ["plot_contour", "plot_heatmap", "plot_surface3d"]


def plot_contour(
    surface: Surface,
    path: str | Path | None = None,
    *,
    ax: Any = None,
    levels: Levels | int | None = None,
    log: bool = False,
    title: str | None = None,
    filled: bool = False,
    label_levels: bool = True,
    cmap: str = SEQUENTIAL_CMAP,
    colorbar: bool = True,
    markers: Sequence[dict[str, Any]] | None = None,
    xlabel: str = "direction 1",
    ylabel: str = "direction 2",
    vmin: float | None = None,
    vmax: float | None = None,
    scale: LossScale | None = None,
    formats: Sequence[str] | None = None,
) -> tuple[Any, Any]:
    """Contour lines of a 2D surface with labelled levels (Li et al. 2018, Fig. 5 style).

    Args:
        surface: a 2D :class:`Surface`.
        path: write the figure here (PNG/PDF/SVG by suffix, or once per ``formats``).
        ax: draw into this matplotlib axes (the caller keeps the figure).
        levels: ``log`` (default: log-spaced rises above the minimum), ``li``,
            ``linear``, explicit levels, or a count of linear levels (0.1 style; with
            ``log`` they are levels of ``log10(loss)``).
        vmin, vmax: the range of the colour scale.
        scale: a :class:`~sharpscope.runtime.figstyle.LossScale` shared with other figures
            (overrides ``levels``/``vmin``/``vmax``).
        filled: filled contours instead of lines.
        markers: extra points, each ``{"xy": (x, y), "label": str, "marker": "*", "color": "red"}``.

    Returns:
        ``(figure, axes)``.
    """
    _check_2d(surface)
    with _styled(ax is None):
        fig, ax, own = _new_ax(ax, figsize=figsize(aspect=0.85))
        z, scale, what = _scaled(surface, levels=levels, log=log, vmin=vmin, vmax=vmax, scale=scale)
        _draw_contour(fig, ax, surface, z, scale, what, filled, label_levels, cmap, colorbar)
        _draw_markers(ax, markers)
        _finish(ax, surface, xlabel, ylabel, title)
        _save(fig, path, own, formats)
    return fig, ax


def _draw_contour(
    fig: Any,
    ax: Any,
    surface: Surface,
    z: np.ndarray,
    scale: LossScale,
    what: str,
    filled: bool,
    label_levels: bool,
    cmap: str,
    colorbar: bool,
) -> None:
    x, y = surface.axes
    zt = np.ma.masked_invalid(z.T)
    if scale.empty or zt.count() < 4 or min(len(x), len(y)) < 2:
        if zt.count() == 0:
            _empty_note(ax)
        else:
            ax.imshow(zt, origin="lower", extent=(x[0], x[-1], y[0], y[-1]), aspect="auto")
        return
    xx, yy = np.meshgrid(x, y)
    norm = scale.norm()
    levels = np.asarray(scale.levels, dtype=np.float64)
    if filled and len(levels) >= 2:
        cs = ax.contourf(xx, yy, zt, levels=levels, cmap=cmap, norm=norm, extend="both")
    else:
        cs = ax.contour(xx, yy, zt, levels=levels, cmap=cmap, norm=norm, linewidths=0.8)
        if label_levels and len(cs.levels):
            ax.clabel(cs, inline=True, fontsize=6, fmt=scale.level_formatter())
    if colorbar:
        mappable = cs
        if not (filled and len(levels) >= 2):  # lines: a continuous bar (also for one level)
            import matplotlib.cm

            mappable = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
        scale.colorbar(fig, mappable, ax=ax, what=what)


def _draw_markers(ax: Any, markers: Sequence[dict[str, Any]] | None) -> None:
    for m in markers or []:
        mx, my = m["xy"]
        ax.plot(
            [mx],
            [my],
            m.get("marker", "*"),
            color=m.get("color", "red"),
            ms=m.get("size", 9),
            label=m.get("label"),
        )
    if any(m.get("label") for m in markers or []):
        place_legend_outside(ax, where="below")


def _finish(ax: Any, surface: Surface, xlabel: str, ylabel: str, title: str | None) -> None:
    x, y = surface.axes
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(x) > 1:
        ax.set_xlim(x[0], x[-1])
    if len(y) > 1:
        ax.set_ylim(y[0], y[-1])
    if title:
        ax.set_title(title)


def plot_heatmap(
    surface: Surface,
    path: str | Path | None = None,
    *,
    ax: Any = None,
    log: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    cmap: str = SEQUENTIAL_CMAP,
    colorbar: bool = True,
    levels: Levels | None = None,
    scale: LossScale | None = None,
    xlabel: str = "direction 1",
    ylabel: str = "direction 2",
    formats: Sequence[str] | None = None,
) -> tuple[Any, Any]:
    """Filled heatmap of a 2D surface (NaN/Inf cells left blank), coloured like :func:`plot_contour`."""
    _check_2d(surface)
    with _styled(ax is None):
        fig, ax, own = _new_ax(ax, figsize=figsize(aspect=0.85))
        x, y = surface.axes
        z, scale, what = _scaled(surface, levels=levels, log=log, vmin=vmin, vmax=vmax, scale=scale)
        zt = np.ma.masked_invalid(z.T)
        if zt.count() == 0:
            _empty_note(ax)
        else:
            norm = None if scale.empty else scale.norm()
            im = ax.pcolormesh(x, y, zt, shading="nearest", cmap=cmap, norm=norm)
            if colorbar and not scale.empty:
                scale.colorbar(fig, im, ax=ax, what=what)
            elif colorbar:
                fig.colorbar(im, ax=ax, label=what)
        _finish(ax, surface, xlabel, ylabel, title)
        _save(fig, path, own, formats)
    return fig, ax


def plot_surface3d(
    surface: Surface,
    path: str | Path | None = None,
    *,
    log: bool = False,
    title: str | None = None,
    cmap: str = SEQUENTIAL_CMAP,
    vmin: float | None = None,
    vmax: float | None = None,
    levels: Levels | None = None,
    scale: LossScale | None = None,
    xlabel: str = "direction 1",
    ylabel: str = "direction 2",
    formats: Sequence[str] | None = None,
) -> tuple[Any, Any]:
    """3D surface of a 2D loss surface (gaps where the loss is not finite), with a colour bar."""
    _check_2d(surface)
    with _styled(True):
        fig = _plt().figure(figsize=figsize(aspect=0.9))
        ax = fig.add_subplot(projection="3d")
        x, y = surface.axes
        z, scale, what = _scaled(surface, levels=levels, log=log, vmin=vmin, vmax=vmax, scale=scale)
        zt = z.T
        if np.isfinite(zt).any():
            xx, yy = np.meshgrid(x, y)
            norm = None if scale.empty else scale.norm()
            surf = ax.plot_surface(
                xx, yy, np.ma.masked_invalid(zt), cmap=cmap, norm=norm, linewidth=0,
                antialiased=True, rstride=1, cstride=1,
            )  # fmt: skip
            if scale.empty:
                fig.colorbar(surf, ax=ax, shrink=0.6, pad=0.12, label=what)
            else:
                scale.colorbar(fig, surf, ax=ax, what=what, shrink=0.6, pad=0.12)
        else:
            ax.text2D(0.5, 0.5, "no finite loss values", transform=ax.transAxes, ha="center")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_zlabel(what)
        if title:
            ax.set_title(title)
        _save(fig, path, True, formats)
    return fig, ax
