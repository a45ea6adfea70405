"""2D pictures: contours, heatmaps, 3D surfaces, side-by-side comparisons, training paths."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SharpscopeError
from ..surface import Surface
from .common import _check_2d, _empty_note, _label, _new_ax, _plt, _save, _values, shared_levels
from .lines import plot_1d

__all__ = ["plot_contour", "plot_heatmap", "plot_surface3d", "plot_comparison", "plot_trajectory"]


def plot_contour(
    surface: Surface,
    path: str | Path | None = None,
    *,
    ax: Any = None,
    levels: np.ndarray | int | None = None,
    log: bool = False,
    title: str | None = None,
    filled: bool = False,
    label_levels: bool = True,
    cmap: str = "viridis",
    colorbar: bool = True,
    markers: Sequence[dict[str, Any]] | None = None,
    xlabel: str = "d1",
    ylabel: str = "d2",
) -> tuple[Any, Any]:
    """Contour lines of a 2D surface with labelled levels (Li et al. 2018, Fig. 5 style).

    Args:
        surface: a 2D :class:`Surface`.
        path: write the figure here (PNG/PDF by suffix); ``None`` to only draw.
        ax: draw into this matplotlib axes (the caller keeps the figure).
        levels: explicit levels (use :func:`shared_levels` to compare surfaces) or a count.
        log: contour ``log10(loss)``.
        filled: filled contours instead of lines.
        markers: extra points, each ``{"xy": (x, y), "label": str, "marker": "*", "color": "red"}``.

    Returns:
        ``(figure, axes)``.
    """
    _check_2d(surface)
    fig, ax, own = _new_ax(ax, figsize=(5.6, 4.8))
    x, y = surface.axes
    z = np.ma.masked_invalid(_values(surface.loss, log).T)
    if levels is None or isinstance(levels, int):
        levels = shared_levels([surface], log=log, n=levels or 20)
    if levels is None or z.count() < 4 or min(len(x), len(y)) < 2:
        _empty_note(ax) if z.count() == 0 else ax.imshow(
            z, origin="lower", extent=(x[0], x[-1], y[0], y[-1]), aspect="auto", cmap=cmap
        )
    else:
        xx, yy = np.meshgrid(x, y)
        if filled:
            cs = ax.contourf(xx, yy, z, levels=levels, cmap=cmap, extend="both")
        else:
            cs = ax.contour(xx, yy, z, levels=levels, cmap=cmap)
            if label_levels and len(cs.levels):
                ax.clabel(cs, inline=True, fontsize=7, fmt="%.3g")
        if colorbar:
            fig.colorbar(cs, ax=ax, label=_label(log))
    for m in markers or []:
        mx, my = m["xy"]
        ax.plot(
            [mx],
            [my],
            m.get("marker", "*"),
            color=m.get("color", "red"),
            ms=m.get("size", 11),
            label=m.get("label"),
        )
    if any(m.get("label") for m in markers or []):
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(x[0], x[-1]) if len(x) > 1 else None
    ax.set_ylim(y[0], y[-1]) if len(y) > 1 else None
    if title:
        ax.set_title(title)
    _save(fig, path, own)
    return fig, ax


def plot_heatmap(
    surface: Surface,
    path: str | Path | None = None,
    *,
    ax: Any = None,
    log: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    cmap: str = "viridis",
    colorbar: bool = True,
) -> tuple[Any, Any]:
    """Filled heatmap of a 2D surface (NaN/Inf cells left blank)."""
    _check_2d(surface)
    fig, ax, own = _new_ax(ax, figsize=(5.6, 4.8))
    x, y = surface.axes
    z = np.ma.masked_invalid(_values(surface.loss, log).T)
    if z.count() == 0:
        _empty_note(ax)
    else:
        im = ax.pcolormesh(x, y, z, shading="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
        if colorbar:
            fig.colorbar(im, ax=ax, label=_label(log))
    ax.set_xlabel("d1")
    ax.set_ylabel("d2")
    if title:
        ax.set_title(title)
    _save(fig, path, own)
    return fig, ax


def plot_surface3d(
    surface: Surface,
    path: str | Path | None = None,
    *,
    log: bool = False,
    title: str | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
) -> tuple[Any, Any]:
    """3D surface of a 2D loss surface (gaps where the loss is not finite)."""
    _check_2d(surface)
    plt = _plt()
    fig = plt.figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot(projection="3d")
    x, y = surface.axes
    z = _values(surface.loss, log).T
    if np.isfinite(z).any():
        xx, yy = np.meshgrid(x, y)
        lo = np.nanmin(z) if vmin is None else vmin
        hi = np.nanmax(z) if vmax is None else vmax
        ax.plot_surface(
            xx,
            yy,
            np.ma.masked_invalid(z),
            cmap=cmap,
            vmin=lo,
            vmax=hi,
            linewidth=0,
            antialiased=True,
            rstride=1,
            cstride=1,
        )
    else:
        ax.text2D(0.5, 0.5, "no finite loss values", transform=ax.transAxes, ha="center")
    ax.set_xlabel("d1")
    ax.set_ylabel("d2")
    ax.set_zlabel(_label(log))
    if title:
        ax.set_title(title)
    _save(fig, path, True)
    return fig, ax


def plot_comparison(
    surfaces: Sequence[Surface],
    path: str | Path | None = None,
    *,
    labels: Sequence[str] | None = None,
    kind: str = "contour",
    log: bool = False,
    levels: np.ndarray | None = None,
    title: str | None = None,
) -> tuple[Any, Any]:
    """Several models side by side with the same colour scale and the same contour levels.

    ``kind`` is ``contour``, ``filled`` or ``heatmap`` for 2D surfaces; 1D surfaces are overlaid.
    """
    if not surfaces:
        raise SharpscopeError("nothing to compare: no surfaces given")
    if all(s.dims == 1 for s in surfaces):
        return plot_1d(list(surfaces), path, labels=labels, log=log, title=title)
    if kind not in ("contour", "filled", "heatmap"):
        raise SharpscopeError(
            f"unknown comparison kind {kind!r}: choose contour, filled or heatmap"
        )
    names = list(labels) if labels else [f"model {i + 1}" for i in range(len(surfaces))]
    plt = _plt()
    fig, axes = plt.subplots(1, len(surfaces), figsize=(4.6 * len(surfaces), 4.2), squeeze=False)
    axes = axes[0]
    levels = shared_levels(surfaces, log=log) if levels is None else levels
    for ax, s, name in zip(axes, surfaces, names, strict=False):
        if kind == "heatmap":
            lo, hi = (levels[0], levels[-1]) if levels is not None else (None, None)
            plot_heatmap(s, ax=ax, log=log, vmin=lo, vmax=hi, title=name, colorbar=ax is axes[-1])
        else:
            plot_contour(
                s,
                ax=ax,
                levels=levels,
                log=log,
                title=name,
                filled=kind == "filled",
                colorbar=ax is axes[-1],
            )
    if title:
        fig.suptitle(title)
    _save(fig, path, True)
    return fig, axes


def plot_trajectory(
    surface: Surface,
    coords: np.ndarray,
    path: str | Path | None = None,
    *,
    ax: Any = None,
    epochs: Sequence[int] | None = None,
    explained: Sequence[float] | None = None,
    log: bool = False,
    title: str | None = None,
) -> tuple[Any, Any]:
    """The training path projected on the PCA plane, over the 2D contour around the final point."""
    created = ax is None
    fig, ax = plot_contour(surface, None, ax=ax, log=log, title=title)
    coords = np.asarray(coords, dtype=np.float64)
    ax.plot(coords[:, 0], coords[:, 1], "-o", color="crimson", ms=3, lw=1.2, label="training path")
    ax.plot(coords[-1:, 0], coords[-1:, 1], "*", color="black", ms=12, label="final")
    if epochs is not None:
        for (cx, cy), e in zip(coords[:-1], epochs, strict=False):
            ax.annotate(str(e), (cx, cy), fontsize=6, xytext=(2, 2), textcoords="offset points")
    if explained is not None and len(explained) >= 2:
        ax.set_xlabel(f"1st PC: {100 * explained[0]:.1f}%")
        ax.set_ylabel(f"2nd PC: {100 * explained[1]:.1f}%")
    ax.legend(fontsize=8)
    _save(fig, path, created)
    return fig, ax
