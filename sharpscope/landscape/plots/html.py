"""Interactive pages: a self-contained plotly HTML file of one or several surfaces."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SharpscopeError
from ...utils import atomic_write_text
from ..surface import Surface
from .common import _check_2d, _label, _values, shared_levels

__all__ = ["plot_surface_html"]


def plot_surface_html(
    surfaces: Surface | Sequence[Surface],
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    log: bool = False,
    title: str | None = None,
) -> Path:
    """A self-contained interactive plotly page (plotly.js embedded, opens offline).

    A 2D surface gets a 3D surface and a contour side by side; several surfaces are
    stacked in rows with one shared colour scale. 1D surfaces are drawn as curves.
    """
    items = [surfaces] if isinstance(surfaces, Surface) else list(surfaces)
    if not items:
        raise SharpscopeError("nothing to plot: no surfaces given")
    names = list(labels) if labels else [f"model {i + 1}" for i in range(len(items))]
    if all(s.dims == 1 for s in items):
        fig = _curves(items, names, log)
    else:
        fig = _surfaces(items, names, log)
    fig.update_layout(title=title or "sharpscope loss landscape")
    path = Path(path)
    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
    return path


def _clean(v: np.ndarray) -> list:
    return [[None if not np.isfinite(c) else float(c) for c in row] for row in np.atleast_2d(v)]


def _curves(items: list[Surface], names: list[str], log: bool) -> Any:
    """1D surfaces: loss curves, accuracy dashed on a second axis."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for s, name in zip(items, names, strict=False):
        x = s.axes[0].tolist()
        fig.add_trace(go.Scatter(x=x, y=_clean(_values(s.loss, log))[0], name=f"{name} loss"))
        if np.isfinite(s.accuracy).any():
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=_clean(s.accuracy)[0],
                    name=f"{name} accuracy",
                    yaxis="y2",
                    line={"dash": "dash"},
                )
            )
    fig.update_layout(
        yaxis={"title": _label(log)},
        yaxis2={"title": "accuracy", "overlaying": "y", "side": "right", "range": [0, 1]},
    )
    return fig


def _surfaces(items: list[Surface], names: list[str], log: bool) -> Any:
    """2D surfaces: one row each, a 3D surface beside a contour, one shared colour scale."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    for s in items:
        _check_2d(s)
    levels = shared_levels(items, log=log)
    lo, hi = (float(levels[0]), float(levels[-1])) if levels is not None else (None, None)
    fig = make_subplots(
        rows=len(items),
        cols=2,
        specs=[[{"type": "surface"}, {"type": "xy"}]] * len(items),
        subplot_titles=[t for n in names for t in (f"{n}: surface", f"{n}: contour")],
    )
    contours = (
        {"start": lo, "end": hi, "size": (hi - lo) / 19, "showlabels": True}
        if lo is not None and hi is not None
        else {"showlabels": True}
    )
    for r, (s, name) in enumerate(zip(items, names, strict=False), start=1):
        z = _clean(_values(s.loss, log).T)
        x, y = s.axes[0].tolist(), s.axes[1].tolist()
        fig.add_trace(
            go.Surface(
                x=x,
                y=y,
                z=z,
                cmin=lo,
                cmax=hi,
                colorscale="Viridis",
                name=name,
                showscale=(r == 1),
                colorbar={"title": _label(log)},
            ),
            row=r,
            col=1,
        )
        fig.add_trace(
            go.Contour(
                x=x,
                y=y,
                z=z,
                zmin=lo,
                zmax=hi,
                colorscale="Viridis",
                showscale=False,
                contours=contours,
                name=name,
                connectgaps=False,
            ),
            row=r,
            col=2,
        )
    fig.update_layout(height=520 * len(items))
    return fig
