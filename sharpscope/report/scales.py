"""The colour scale of several 2D panels (slices, planes) drawn side by side.

:func:`panel_scales` turns the surfaces into the values each panel colours and the
:class:`~sharpscope.runtime.figstyle.LossScale` of each panel (see
:data:`~sharpscope.report.format.COLOR_SCALES`); :func:`draw_panel` draws one panel
with matplotlib and :func:`plotly_panel` gives the plotly contour of the same scale,
so the PNG and the HTML page agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime.figstyle import SEQUENTIAL_CMAP, LossScale, loss_scale

__all__ = ["PanelScales", "panel_scales", "draw_panel", "plotly_panel", "shared_colorbar"]

RISE_LABEL = "loss − the model's own minimum"


class PanelScales:
    """Values to colour (``z[i]``, grid-shaped), the scale of each panel and the bar label."""

    def __init__(self, z: list[np.ndarray], scales: list[LossScale], label: str, shared: bool):
        self.z, self.scales, self.label, self.shared = z, scales, label, shared

    def describe(self) -> str:
        """A few words for a title: which scale the panels share."""
        if not self.shared:
            return "each panel its own log colour scale"
        if self.label == RISE_LABEL:
            return "one log colour scale of the rise above each model's own minimum"
        return "one colour scale"


def _min(loss: np.ndarray) -> float:
    finite = loss[np.isfinite(loss)]
    return float(finite.min()) if finite.size else 0.0


def panel_scales(losses: list[np.ndarray], mode: str = "rise", *, n: int = 14) -> PanelScales:
    """The colour values and scales of several loss grids compared side by side.

    Args:
        losses: the loss grids (any shape; NaN allowed).
        mode: ``rise`` (one log scale of ``loss - own minimum``), ``panel`` (each grid its
            own log scale of its rise) or ``shared`` (one linear scale of the loss).
        n: about how many contour levels.
    """
    losses = [np.asarray(z, dtype=np.float64) for z in losses]
    if mode == "shared":
        scale = loss_scale(np.concatenate([z.ravel() for z in losses]), mode="linear", n=n)
        return PanelScales(losses, [scale] * len(losses), "training loss", True)
    if mode == "panel":
        scales = [loss_scale(z, mode="log", n=n) for z in losses]
        return PanelScales(losses, scales, "training loss", False)
    rises = [z - _min(z) for z in losses]
    scale = loss_scale(np.concatenate([r.ravel() for r in rises]), mode="log", vmin=0.0, n=n)
    return PanelScales(rises, [scale] * len(rises), RISE_LABEL, True)


def draw_panel(ax: Any, axes: list[np.ndarray], z: np.ndarray, scale: LossScale) -> Any:
    """Filled contours of ``z[i, j]`` at ``(axes[0][i], axes[1][j])``; the mappable or None."""
    x, y = axes
    zt = np.ma.masked_invalid(np.asarray(z, dtype=np.float64).T)
    if scale.empty or zt.count() < 4 or min(len(x), len(y)) < 2:
        ax.text(0.5, 0.5, "no contour\n(flat or missing grid)", ha="center", transform=ax.transAxes)
        return None
    xx, yy = np.meshgrid(x, y)
    levels = np.asarray(scale.levels, dtype=np.float64)
    norm = scale.norm()
    if len(levels) >= 2:
        return ax.contourf(
            xx, yy, zt, levels=levels, cmap=SEQUENTIAL_CMAP, norm=norm, extend="both"
        )
    return ax.pcolormesh(xx, yy, zt, cmap=SEQUENTIAL_CMAP, norm=norm, shading="auto")


def shared_colorbar(fig: Any, axes: Any, mappable: Any, scale: LossScale, label: str) -> Any:
    """One colour bar for ``axes`` with the scale's round ticks and ``label``."""
    if mappable is None:
        return None
    cb = scale.colorbar(fig, mappable, ax=axes, shrink=0.9)
    cb.set_label(label if label == RISE_LABEL else scale.colorbar_label(label))
    return cb


def plotly_panel(
    scales: PanelScales, k: int, axes: list[np.ndarray], *, showscale: bool
) -> dict[str, Any]:
    """Keyword arguments for ``go.Contour`` of panel ``k`` (same colours as the PNG)."""
    scale = scales.scales[k]
    kw = scale.plotly_contour(scales.z[k].T, x=axes[0], y=axes[1], showscale=showscale)
    if scales.label == RISE_LABEL:
        kw["colorbar"]["title"] = {"text": RISE_LABEL}
        kw["hovertemplate"] = kw["hovertemplate"].replace("loss=", "rise above own min=")
    if not scales.shared:
        kw["colorbar"]["x"] = (k + 1) / len(scales.z) - 0.02
        kw["colorbar"]["len"] = 0.8
        kw["colorbar"]["thickness"] = 10
    return kw
