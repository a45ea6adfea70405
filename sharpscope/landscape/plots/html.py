"""Interactive pages: a self-contained plotly HTML file of one or several surfaces.

The page colours the loss on the same :class:`~sharpscope.runtime.figstyle.LossScale` as the
PNG (same levels, same round colour-bar ticks) and stores its arrays as float32
typed arrays, so a 41x41 surface adds tens of kilobytes to plotly.js, not megabytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SharpscopeError
from ...runtime.figstyle import PLOTLY_SEQUENTIAL, LossScale
from ...runtime.files import atomic_write_text
from ..surface import Surface
from .common import Levels, _check_2d, _label, _values, scale_for

__all__ = ["plot_surface_html"]


def plot_surface_html(
    surfaces: Surface | Sequence[Surface],
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    log: bool = False,
    title: str | None = None,
    levels: Levels | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    xlabel: str = "direction 1",
    ylabel: str = "direction 2",
) -> Path:
    """A self-contained interactive plotly page (plotly.js embedded, opens offline).

    A 2D surface gets a 3D surface and a contour side by side; several surfaces are
    stacked in rows with one shared colour scale (``levels``/``vmin``/``vmax`` as for
    :func:`~sharpscope.landscape.plots.plot_contour`). 1D surfaces are drawn as curves
    (``log``: a log loss axis). ``labels`` name the rows (checkpoint names).
    """
    items = [surfaces] if isinstance(surfaces, Surface) else list(surfaces)
    if not items:
        raise SharpscopeError("nothing to plot: no surfaces given")
    names = list(labels) if labels else [f"model {i + 1}" for i in range(len(items))]
    if all(s.dims == 1 for s in items):
        fig = _curves(items, names, log, xlabel)
    else:
        for s in items:
            _check_2d(s)
        scale = scale_for(items, levels=levels, vmin=vmin, vmax=vmax)
        fig = _surfaces(items, names, scale, xlabel, ylabel)
    fig.update_layout(title=title or "sharpscope loss landscape")
    path = Path(path)
    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
    return path


def _f32(v: Any) -> np.ndarray:
    """A float32 array (plotly writes it as a compact typed array; NaN stays a gap)."""
    return np.asarray(v, dtype=np.float64).astype(np.float32)


def _curves(items: list[Surface], names: list[str], log: bool, xlabel: str) -> Any:
    """1D surfaces: loss curves, accuracy dashed on a second axis."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for s, name in zip(items, names, strict=False):
        x = _f32(s.axes[0])
        fig.add_trace(go.Scatter(x=x, y=_f32(_values(s.loss, False)), name=f"{name} loss"))
        if np.isfinite(s.accuracy).any():
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=_f32(s.accuracy),
                    name=f"{name} accuracy",
                    yaxis="y2",
                    line={"dash": "dash"},
                )
            )
    yaxis: dict[str, Any] = {"title": {"text": "loss"}}
    if log:
        yaxis.update(type="log", exponentformat="power")
    fig.update_layout(
        xaxis={"title": {"text": xlabel}},
        yaxis=yaxis,
        yaxis2={"title": {"text": "accuracy"}, "overlaying": "y", "side": "right", "range": [0, 1]},
    )
    return fig


def _colour(scale: LossScale, z: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """The colour coordinate of ``z`` and the plotly colour-scale settings of ``scale``."""
    if scale.empty:
        return z, {"colorscale": PLOTLY_SEQUENTIAL, "colorbar": {"title": {"text": _label(False)}}}
    vmin, vmax = scale.color_range()
    lo, hi = scale.transform([vmin, vmax])
    return scale.transform(z), {
        "colorscale": PLOTLY_SEQUENTIAL,
        "colorbar": scale.plotly_colorbar(),
        "cmin": float(lo),
        "cmax": float(hi),
    }


def _surfaces(
    items: list[Surface], names: list[str], scale: LossScale, xlabel: str, ylabel: str
) -> Any:
    """2D surfaces: one row each, a 3D surface beside a contour, one shared colour scale."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=len(items),
        cols=2,
        specs=[[{"type": "surface"}, {"type": "xy"}]] * len(items),
        subplot_titles=[t for n in names for t in (f"{n}: surface", f"{n}: contour")],
    )
    hover = "x=%{x:.3g}<br>y=%{y:.3g}<br>loss=%{customdata:.4g}<extra></extra>"
    for r, (s, name) in enumerate(zip(items, names, strict=False), start=1):
        z = _values(s.loss, False).T
        color, cs = _colour(scale, z)
        x, y = _f32(s.axes[0]), _f32(s.axes[1])
        fig.add_trace(
            go.Surface(
                x=x,
                y=y,
                z=_f32(z),
                surfacecolor=_f32(color),
                name=name,
                showscale=(r == 1),
                **cs,
            ),  # fmt: skip
            row=r,
            col=1,
        )
        contour = {k: v for k, v in cs.items() if k not in ("cmin", "cmax")}
        if "cmin" in cs:
            contour.update(zmin=cs["cmin"], zmax=cs["cmax"])
        fig.add_trace(
            go.Contour(
                x=x,
                y=y,
                z=_f32(color),
                customdata=_f32(z),
                name=name,
                showscale=False,
                contours=scale.plotly_contours() if not scale.empty else {"showlabels": True},
                connectgaps=False,
                hovertemplate=hover,
                **contour,
            ),  # fmt: skip
            row=r,
            col=2,
        )
        fig.update_xaxes(title_text=xlabel, row=r, col=2)
        fig.update_yaxes(title_text=ylabel, row=r, col=2)
    fig.update_scenes(xaxis_title_text=xlabel, yaxis_title_text=ylabel, zaxis_title_text="loss")
    fig.update_layout(height=520 * len(items))
    return fig
