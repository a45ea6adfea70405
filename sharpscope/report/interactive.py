"""The interactive (plotly) figures of a comparison, drawn from the same numbers as the PNGs.

Each maker returns ``(div id, heading, plotly figure)`` or ``None``; :data:`FIGURE_OF`
names the static figure (PNG/PDF) each interactive one stands for in the page.
"""

from __future__ import annotations

from typing import Any

from ..runtime.figstyle import COLORS, plotly_log_axis
from .figures import DEFAULT_OPTIONS, _slice_sets, _slq_trace, _surfaces
from .format import FigureOptions, _clean
from .group_figures import plotly_gap_scatter, plotly_group_strips

__all__ = ["plotly_figures", "FIGURE_OF"]

_COLORS = list(COLORS)
# legends beside the plot, never over the data
_LEGEND = {"x": 1.02, "xanchor": "left", "y": 1.0, "yanchor": "top"}


def _rgba(i: int, a: float) -> str:
    h = _COLORS[i % len(_COLORS)].lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{a})"


def _plotly_slices_1d(report: Any) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go

    sets = _slice_sets(report)
    if sets:
        fig = go.Figure()
        for i, (label, s) in enumerate(sets):
            x = s.x.tolist()
            fig.add_trace(
                go.Scatter(
                    x=x + x[::-1],
                    y=_clean(s.q90) + _clean(s.q10)[::-1],
                    fill="toself",
                    fillcolor=_rgba(i, 0.18),
                    line={"width": 0},
                    hoverinfo="skip",
                    name=f"{label}: 10-90% band",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=_clean(s.median),
                    name=f"{label}: median",
                    line={"color": _COLORS[i % len(_COLORS)], "width": 2.5},
                )
            )
        fig.update_layout(
            title="1D slices: median over the shared directions, 10-90% band",
            xaxis_title="alpha (filter-normalised step)",
            yaxis_title="training loss",
            legend=_LEGEND,
        )
        return ("plot-slices-1d", "1D slices", fig)
    return None


def _plotly_panels(
    items: list[tuple[str, Any]], opts: FigureOptions, titles: list[str]
) -> tuple[Any, Any]:
    """A row of contour panels on the scale of :func:`~sharpscope.report.scales.panel_scales`."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from .scales import panel_scales, plotly_panel

    scales = panel_scales([s.loss for _, s in items], opts.color_scale)
    fig = make_subplots(rows=1, cols=len(items), subplot_titles=titles, horizontal_spacing=0.08)
    for k, (label, surf) in enumerate(items):
        last = k == len(items) - 1
        kw = plotly_panel(scales, k, surf.axes, showscale=last or not scales.shared)
        fig.add_trace(go.Contour(name=label, **kw), row=1, col=k + 1)
    return fig, scales


def _plotly_slices_2d(
    report: Any, opts: FigureOptions = DEFAULT_OPTIONS
) -> tuple[str, str, Any] | None:
    items = _surfaces(report, "slice2d")
    if not items:
        return None
    fig, scales = _plotly_panels(items, opts, [lb for lb, _ in items])
    for k in range(1, len(items) + 1):
        fig.update_xaxes(title_text="d1 (filter-normalised)", row=1, col=k)
        fig.update_yaxes(title_text="d2 (filter-normalised)", row=1, col=k)
    fig.update_layout(title=f"2D slices, shared directions ({scales.describe()})", height=440)
    return ("plot-slices-2d", "2D slices", fig)


def _plotly_plane_maps(
    report: Any, opts: FigureOptions = DEFAULT_OPTIONS
) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go

    items = _surfaces(report, "plane")
    if not items:
        return None
    recs = [report.details[label]["plane"] for label, _ in items]
    titles = [
        f"{lb}: alpha* = {r['alpha_star']:.2g}"
        + (" (limit!)" if r.get("alpha_star_at_limit") else "")
        for (lb, _), r in zip(items, recs, strict=True)
    ]
    fig, scales = _plotly_panels(items, opts, titles)
    for k, rec in enumerate(recs, start=1):
        arc = _clean(rec["arc"]["coords"])
        fig.add_trace(
            go.Scatter(
                x=arc[0::2],
                y=arc[1::2],
                mode="lines",
                line={"color": "white", "width": 2},
                name="slerp arc",
                showlegend=False,
            ),
            row=1,
            col=k,
        )
        fig.update_xaxes(title_text="a (along v0)", row=1, col=k)
        fig.update_yaxes(title_text="b (v1 orthogonal to v0)", row=1, col=k)
    fig.update_layout(title=f"XSAM v0-v1 planes ({scales.describe()})", height=440)
    return ("plot-planes", "XSAM planes", fig)


def _plotly_density(report: Any) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go

    dens = [
        (lb, report.details[lb]["density"])
        for lb in report.labels
        if "density" in report.details.get(lb, {})
    ]
    if dens:
        fig = go.Figure()
        for i, (label, d) in enumerate(dens):
            fig.add_trace(
                go.Scatter(
                    x=_clean(d["grid"]),
                    y=[max(v or 0.0, 1e-12) for v in _clean(d["density"])],
                    name=f"{label}: {_slq_trace(d)}",
                    line={"color": _COLORS[i % len(_COLORS)]},
                )
            )
        fig.update_layout(
            title="Hessian spectral density (SLQ)",
            xaxis_title="eigenvalue",
            yaxis=plotly_log_axis("density (log scale)"),
            legend=_LEGEND,
        )
        return ("plot-density", "Spectral density", fig)
    return None


def _plotly_interpolation(report: Any) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go

    pairs = report.details.get("pairs") or []
    if pairs:
        fig = go.Figure()
        for i, p in enumerate(pairs):
            fig.add_trace(
                go.Scatter(
                    x=_clean(p["t"]),
                    y=_clean(p["loss"]),
                    name=f"{p['a']} -> {p['b']}",
                    line={"color": _COLORS[i % len(_COLORS)]},
                )
            )
        fig.update_layout(
            title="Linear interpolation between minima",
            xaxis_title="t (0 = a, 1 = b)",
            yaxis_title="training loss",
            legend=_LEGEND,
        )
        return ("plot-interpolation", "Interpolation", fig)
    return None


def _plotly_planes(report: Any) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go

    planes = [
        (lb, report.details[lb]["plane"])
        for lb in report.labels
        if "plane" in report.details.get(lb, {})
    ]
    if planes:
        fig = go.Figure()
        for i, (label, rec) in enumerate(planes):
            fig.add_trace(
                go.Scatter(
                    x=_clean(rec["arc"]["alphas"]),
                    y=_clean(rec["arc"]["losses"]),
                    name=f"{label} (alpha* = {rec['alpha_star']:.2g}"
                    + (", at the search limit)" if rec.get("alpha_star_at_limit") else ")"),
                    line={"color": _COLORS[i % len(_COLORS)]},
                )
            )
        fig.add_vline(x=1.0, line_dash="dash", annotation_text="SAM (alpha = 1)")
        fig.update_layout(
            title="Loss along XSAM's slerp arc at rho_max",
            xaxis_title="alpha (0 = v0, 1 = v1)",
            yaxis_title="loss",
            legend=_LEGEND,
        )
        return ("plot-plane-arcs", "XSAM arcs", fig)
    return None


def _plotly_over_training(report: Any) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go

    over = [
        (lb, report.details[lb]["over_training"])
        for lb in report.labels
        if "over_training" in report.details.get(lb, {})
    ]
    if over:
        fig = go.Figure()
        for i, (label, d) in enumerate(over):
            fig.add_trace(
                go.Scatter(
                    x=d["epochs"],
                    y=_clean(d["lambda_max"]),
                    mode="lines+markers",
                    name=label,
                    line={"color": _COLORS[i % len(_COLORS)]},
                )
            )
        e_lr = [(e, lr) for e, lr in zip(over[0][1]["epochs"], over[0][1]["lr"], strict=True) if lr]
        if e_lr:
            fig.add_trace(
                go.Scatter(
                    x=[e for e, _ in e_lr],
                    y=[2.0 / lr for _, lr in e_lr],
                    name="2 / lr",
                    line={"dash": "dash", "color": "black"},
                )
            )
        fig.update_layout(
            title="lambda_max over training",
            xaxis_title="epoch",
            yaxis=plotly_log_axis("top Hessian eigenvalue"),
            legend=_LEGEND,
        )
        return ("plot-over-training", "Over training", fig)
    return None


FIGURE_OF = {
    "plot-slices-1d": "slices_1d",
    "plot-slices-2d": "slices_2d",
    "plot-density": "density",
    "plot-interpolation": "interpolation",
    "plot-planes": "planes",
    "plot-over-training": "over_training",
    "plot-group-strips": "group_strips",
    "plot-gap-scatter": "gap_scatter",
}
"""The static figure each interactive one stands for (linked under it, not shown again)."""

_PLOTLY_MAKERS = (
    _plotly_slices_1d,
    _plotly_slices_2d,
    _plotly_density,
    _plotly_interpolation,
    _plotly_plane_maps,
    _plotly_planes,
    _plotly_over_training,
    plotly_group_strips,
    plotly_gap_scatter,
)


def plotly_figures(
    report: Any, opts: FigureOptions = DEFAULT_OPTIONS
) -> list[tuple[str, str, Any]]:
    """``(id, heading, plotly figure)`` for every interactive figure the numbers allow."""
    out = []
    for make in _PLOTLY_MAKERS:
        takes_opts = make in (_plotly_slices_2d, _plotly_plane_maps)
        fig = make(report, opts) if takes_opts else make(report)
        if fig is not None:
            out.append(fig)
    return out


_plotly_figures = plotly_figures  # the 0.1 name
