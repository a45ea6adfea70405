"""Figures built on the contour: models side by side on one scale, a training path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SharpscopeError
from ...runtime.figstyle import (
    direction_label,
    figsize,
    loss_scale,
    place_legend_outside,
    thin_labels,
)
from ..surface import Surface
from .common import Levels, _plt, _save, _styled, _values, scale_for
from .lines import plot_1d
from .maps import plot_contour, plot_heatmap

__all__ = ["plot_comparison", "plot_trajectory"]

_EPOCH_LABEL_GAP_PT = 10.0  # epoch labels closer than this (in points) are left out


def plot_comparison(
    surfaces: Sequence[Surface],
    path: str | Path | None = None,
    *,
    labels: Sequence[str] | None = None,
    kind: str = "contour",
    log: bool = False,
    levels: Levels | None = None,
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    xlabel: str = "direction 1",
    ylabel: str = "direction 2",
    formats: Sequence[str] | None = None,
) -> tuple[Any, Any]:
    """Several models side by side with the same colour scale and the same contour levels.

    ``kind`` is ``contour``, ``filled`` or ``heatmap`` for 2D surfaces; 1D surfaces are
    overlaid. ``levels``: a mode (``log`` by default, ``li``, ``linear``) or explicit
    levels (0.1 style: on ``log10(loss)`` with ``log``).
    """
    if not surfaces:
        raise SharpscopeError("nothing to compare: no surfaces given")
    if all(s.dims == 1 for s in surfaces):
        return plot_1d(list(surfaces), path, labels=labels, log=log, title=title, formats=formats)
    if kind not in ("contour", "filled", "heatmap"):
        raise SharpscopeError(
            f"unknown comparison kind {kind!r}: choose contour, filled or heatmap"
        )
    names = list(labels) if labels else [f"model {i + 1}" for i in range(len(surfaces))]
    if levels is None or isinstance(levels, str):
        scale = scale_for(surfaces, levels=levels, vmin=vmin, vmax=vmax)
    else:  # explicit levels on the values drawn (log10 with ``log``)
        z = np.concatenate([_values(s.loss, log).ravel() for s in surfaces])
        scale = loss_scale(z, levels=levels, vmin=vmin, vmax=vmax)
    with _styled(True):
        width, height = figsize(columns=2, aspect=0.8 / len(surfaces))
        fig, axes = _plt().subplots(
            1, len(surfaces), figsize=(width, max(height, 2.4)), squeeze=False
        )
        axes = axes[0]
        for i, (ax, s, name) in enumerate(zip(axes, surfaces, names, strict=False)):
            common = {"ax": ax, "log": log, "scale": scale, "title": name, "xlabel": xlabel}
            common["ylabel"] = ylabel if i == 0 else ""
            if kind == "heatmap":
                plot_heatmap(s, colorbar=ax is axes[-1], **common)
            else:
                plot_contour(s, filled=kind == "filled", colorbar=ax is axes[-1], **common)
        if title:
            fig.suptitle(title)
        _save(fig, path, True, formats)
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
    levels: Levels | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    formats: Sequence[str] | None = None,
) -> tuple[Any, Any]:
    """The training path projected on the PCA plane, over the 2D contour around the final point.

    Epoch labels that would overlap (closer than 10 pt) are left out, the first kept.
    """
    created = ax is None
    with _styled(created):
        xlabel, ylabel = "PC 1", "PC 2"
        if explained is not None and len(explained) >= 2:
            xlabel = direction_label("pc1", None, explained=explained[0])
            ylabel = direction_label("pc2", None, explained=explained[1])
        fig, ax = plot_contour(
            surface, None, ax=ax, log=log, title=title, levels=levels, vmin=vmin, vmax=vmax,
            xlabel=xlabel, ylabel=ylabel,
        )  # fmt: skip
        coords = np.asarray(coords, dtype=np.float64)
        ax.plot(coords[:, 0], coords[:, 1], "-o", color="crimson", ms=2.5, lw=1.0, label="path")
        ax.plot(coords[-1:, 0], coords[-1:, 1], "*", color="black", ms=9, label="final")
        if epochs is not None:
            _label_epochs(fig, ax, coords[:-1], list(epochs))
        place_legend_outside(ax, where="below")
        _save(fig, path, created, formats)
    return fig, ax


def _label_epochs(fig: Any, ax: Any, coords: np.ndarray, epochs: list[int]) -> list[int]:
    """Annotate the epochs whose labels do not collide on screen; returns the labelled indices."""
    n = min(len(coords), len(epochs))
    if n == 0:
        return []
    fig.canvas.draw()  # fixes the limits, so data -> points is what is seen
    pts = ax.transData.transform(coords[:n]) * 72.0 / fig.dpi
    keep = thin_labels(pts, _EPOCH_LABEL_GAP_PT) if np.isfinite(pts).all() else list(range(n))
    for i in keep:
        ax.annotate(
            str(epochs[i]), coords[i], fontsize=6, xytext=(2, 2), textcoords="offset points"
        )
    return keep
