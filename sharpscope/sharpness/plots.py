"""Figures of XSAM's plane: :func:`plot_plane` (matplotlib) and :func:`plane_figure_html` (plotly).

Both colour the plane's loss with one :class:`~sharpscope.runtime.figstyle.LossScale`
(:func:`plane_scale`), so the PNG and the HTML page show the same contour levels and
colours; matplotlib files are written by :func:`~sharpscope.runtime.figstyle.save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import SharpscopeError
from ..optim.geometry import slerp_coefficients
from ..runtime.figstyle import LossScale, loss_scale, save_figure
from .plane import PlaneResult

__all__ = ["plot_plane", "plane_figure_html", "plane_scale"]


def plane_scale(result: PlaneResult, *, levels: int = 30, log: bool | None = None) -> LossScale:
    """The contour levels and colour scale of the plane's loss, shared by PNG and HTML.

    ``log`` (default ``None``: yes) spaces the levels geometrically in the loss rise
    above the plane's minimum (:func:`~sharpscope.runtime.figstyle.loss_scale`); ``False``
    gives round, equally spaced levels. ``levels`` is the approximate level count.
    """
    if result.surface is None:
        raise SharpscopeError("this plane result has no grid surface to draw")
    mode = "linear" if log is False else "log"
    return loss_scale(result.surface.loss, mode=mode, n=int(levels))


def _arc_point(result: PlaneResult, alpha: float) -> tuple[float, float]:
    c0, c1 = slerp_coefficients(result.psi, alpha)
    p = np.array([c0, 0.0]) + c1 * result.v1_coords
    return float(p[0]), float(p[1])


def plot_plane(
    result: PlaneResult,
    path: str | Path | None = None,
    *,
    title: str | None = None,
    levels: int = 30,
    log: bool | None = None,
    formats: Sequence[str] | None = None,
):
    """Draw the plane: contour with the arc and markers, and the loss along the arc.

    Left panel: the loss on ``theta_0 + a e1 + b e2`` (filled contours, via
    :func:`sharpscope.landscape.plots.plot_contour`) with the arc at ``rho_max``, markers
    at ``alpha = 0`` (``v0``), ``alpha = 1`` (``v1``, SAM), ``alpha*`` (XSAM), the ascent
    points ``theta_1..theta_k`` and the projection of the worst point of the ball.
    Right panel: loss versus alpha on the arc, with SAM, XSAM and the worst case.

    Args:
        result: from :func:`xsam_plane`.
        path: ``.png``/``.pdf``/``.svg`` (matplotlib) or ``.html`` (interactive plotly,
            self-contained); ``None`` returns the matplotlib figure without saving.
        title: figure title.
        levels: about this many contour levels.
        log: levels geometric in the loss rise (default) or, with ``False``, linear;
            the same scale as :func:`plane_figure_html` (:func:`plane_scale`).
        formats: write one file per format (``png``, ``pdf``, ``svg``) next to
            ``path`` (default: the format of ``path``'s suffix).

    Returns:
        the matplotlib figure (or the path of the HTML file).
    """
    if path is not None and Path(path).suffix.lower() in (".html", ".htm"):
        return plane_figure_html(result, path, title=title)
    if path is not None and Path(path).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise SharpscopeError(f"plot file {path} must end in .png, .pdf, .svg or .html")
    from ..landscape.plots import _plt

    plt = _plt()
    s = result.surface
    if s is None:
        raise SharpscopeError("this plane result has no grid surface to draw")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13.5, 6.4), gridspec_kw={"width_ratios": [1.2, 1]})
    _draw_plane_panel(ax, result, scale=plane_scale(result, levels=levels, log=log))
    _draw_arc_panel(ax2, result)
    fig.suptitle(
        title
        or f"XSAM plane: rho={result.rho:g}, rho_max={result.rho_max:g}, k={result.steps}, "
        f"{result.settings.get('data_samples', '?')} samples, {result.settings.get('mode', '')} mode"
    )
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, formats=formats or (Path(path).suffix.lower()[1:],))
        plt.close(fig)
    return fig


def _draw_plane_panel(ax, result: PlaneResult, *, scale: LossScale) -> None:
    """The contour of the plane with the arc, SAM's/XSAM's points, the path and the worst point."""
    from matplotlib import patheffects

    from ..landscape.plots import plot_contour

    r = result.rho_max
    plot_contour(
        result.surface,
        ax=ax,
        scale=scale,
        filled=True,
        xlabel="a  (along e1 = v0)",
        ylabel="b  (along e2: v1 minus its v0 part)"
        + ("  [random: v0 || v1]" if result.degenerate else ""),
    )
    t = np.linspace(0, 2 * np.pi, 240)
    ax.plot(r * np.cos(t), r * np.sin(t), ":", color="white", lw=0.9, alpha=0.8)
    arc = result.arc_coords
    ax.plot(
        arc[:, 0],
        arc[:, 1],
        "-",
        color="white",
        lw=2.4,
        path_effects=[patheffects.withStroke(linewidth=4.2, foreground="black")],
        label=f"slerp arc at rho_max={r:g}, alpha in [0, {result.alphas[-1]:g}]",
    )
    ax.plot(
        [0], [0], "o", ms=7, mfc="black", mec="white", label=f"theta_0: {result.loss_theta0:.4g}"
    )
    for point, marker, size, colour, label in (
        (r * np.array(_arc_point(result, 0.0)), "s", 9, "tab:blue", "alpha=0 (v0)"),
        (r * result.v1_coords, "^", 10, "tab:orange", "alpha=1 (SAM, v1)"),
    ):
        loss = result.loss_alpha0 if marker == "s" else result.loss_sam
        ax.plot(*point, marker, ms=size, mfc=colour, mec="white", label=f"{label}: {loss:.4g}")
    ax.plot(
        *(r * np.array(_arc_point(result, result.alpha_star))),
        "*",
        ms=17,
        mfc="tab:red",
        mec="white",
        label=f"alpha*={result.alpha_star:.3g} (XSAM): {result.loss_xsam:.4g}",
    )
    if len(result.path_coords):
        pc = np.vstack([[0.0, 0.0], result.path_coords])
        ax.plot(pc[:, 0], pc[:, 1], "--", color="cyan", lw=1.3)
        ax.plot(
            result.path_coords[:, 0],
            result.path_coords[:, 1],
            "o",
            ms=5,
            mfc="cyan",
            mec="black",
            label=f"ascent theta_1..theta_{result.steps} (rho={result.rho:g})",
        )
    ax.plot(
        *np.asarray(result.worst["coords"]),
        "X",
        ms=12,
        mfc="magenta",
        mec="white",
        label=f"worst of the ball, projected ({result.worst['angle_to_plane_deg']:.0f} deg "
        f"off the plane): {result.worst['loss']:.4g}",
    )
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(f"loss on the v0-v1 plane  (psi = {math.degrees(result.psi):.1f} deg)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7.5, frameon=False)


def _draw_arc_panel(ax2, result: PlaneResult) -> None:
    """The loss along the slerp arc with SAM, XSAM, the worst point and theta_0."""
    r = result.rho_max
    ax2.plot(
        result.alphas,
        result.arc_losses,
        "-o",
        ms=3.5,
        color="black",
        label=f"loss on the arc (radius {r:g})",
    )
    ax2.axvline(
        1.0, color="tab:orange", ls="--", lw=1.4, label=f"SAM (alpha=1): {result.loss_sam:.4g}"
    )
    ax2.axvline(
        result.alpha_star,
        color="tab:red",
        lw=1.4,
        label=f"XSAM alpha*={result.alpha_star:.3g}: {result.loss_xsam:.4g}",
    )
    ax2.axhline(
        result.worst["loss"],
        color="magenta",
        ls=":",
        lw=1.6,
        label=f"worst of the ball: {result.worst['loss']:.4g}",
    )
    ax2.axhline(
        result.loss_theta0, color="grey", ls=":", lw=1.0, label=f"theta_0: {result.loss_theta0:.4g}"
    )
    ax2.set_xlabel("alpha  (0 = v0, 1 = v1 = SAM)")
    ax2.set_ylabel(f"loss at theta_0 + {r:g} slerp(v0, v1; alpha)")
    cap_s, cap_x = result.worst.get("capture_sam"), result.worst.get("capture_xsam")
    if cap_s is not None and cap_x is not None:
        ax2.set_title(
            f"share of the worst-case loss rise: SAM {100 * cap_s:.0f}%, XSAM {100 * cap_x:.0f}%"
        )
    else:
        ax2.set_title("loss along the slerp arc")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7.5, frameon=False)


def plane_figure_html(
    result: PlaneResult,
    path: str | Path,
    *,
    title: str | None = None,
    levels: int = 30,
    log: bool | None = None,
) -> Path:
    """Write the plane as a self-contained interactive plotly HTML file (no network needed).

    The contour uses the same levels and colours as :func:`plot_plane` (:func:`plane_scale`).
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.55, 0.45],
        horizontal_spacing=0.12,
        subplot_titles=(
            f"v0-v1 plane (psi = {math.degrees(result.psi):.1f} deg)",
            "loss along the slerp arc",
        ),
    )
    _html_plane_traces(fig, result, plane_scale(result, levels=levels, log=log))
    _html_arc_traces(fig, result)
    fig.update_layout(
        title=title
        or f"XSAM plane: rho={result.rho:g}, rho_max={result.rho_max:g}, k={result.steps}",
        width=1250,
        height=560,
        legend={"font": {"size": 10}},
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from ..runtime.files import atomic_write_text

    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
    return path


def _html_plane_traces(fig, result: PlaneResult, scale: LossScale) -> None:
    """Left panel: the contour, the arc, the marked points and the ascent path."""
    import plotly.graph_objects as go

    s = result.surface
    r = result.rho_max
    contour = scale.plotly_contour(s.loss.T, x=s.axes[0], y=s.axes[1])
    contour["colorbar"] = {**contour["colorbar"], "x": 0.46}
    contour["hovertemplate"] = "a=%{x:.3f}<br>b=%{y:.3f}<br>loss=%{customdata:.5g}<extra></extra>"
    fig.add_trace(go.Contour(name="loss", **contour), row=1, col=1)
    arc = result.arc_coords
    fig.add_trace(
        go.Scatter(
            x=arc[:, 0],
            y=arc[:, 1],
            mode="lines+markers",
            line={"color": "white", "width": 3},
            marker={"size": 4},
            name="slerp arc",
            customdata=np.stack([result.alphas, result.arc_losses], -1),
            hovertemplate="alpha=%{customdata[0]:.2f}<br>loss=%{customdata[1]:.5g}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    points = [
        ("theta_0", (0.0, 0.0), "circle", "black", result.loss_theta0),
        (
            "alpha=0 (v0)",
            tuple(r * np.array(_arc_point(result, 0.0))),
            "square",
            "royalblue",
            result.loss_alpha0,
        ),
        ("alpha=1 (SAM)", tuple(r * result.v1_coords), "triangle-up", "orange", result.loss_sam),
        (
            f"alpha*={result.alpha_star:.2g} (XSAM)",
            tuple(r * np.array(_arc_point(result, result.alpha_star))),
            "star",
            "red",
            result.loss_xsam,
        ),
        (
            "worst of ball (projection)",
            tuple(result.worst["coords"]),
            "x",
            "magenta",
            result.worst["loss"],
        ),
    ]
    for name, (x, y), sym, color, loss in points:
        marker = {"symbol": sym, "size": 13, "color": color, "line": {"color": "white", "width": 1}}
        fig.add_trace(
            go.Scatter(x=[x], y=[y], mode="markers", name=f"{name}: {loss:.4g}", marker=marker),
            row=1,
            col=1,
        )
    if len(result.path_coords):
        pc = np.vstack([[0.0, 0.0], result.path_coords])
        fig.add_trace(
            go.Scatter(
                x=pc[:, 0],
                y=pc[:, 1],
                mode="lines+markers",
                name="ascent path",
                line={"color": "cyan", "dash": "dash"},
            ),
            row=1,
            col=1,
        )
    fig.update_xaxes(title_text="a (along v0)", row=1, col=1)
    fig.update_yaxes(title_text="b (v1 orthogonal to v0)", scaleanchor="x", row=1, col=1)


def _html_arc_traces(fig, result: PlaneResult) -> None:
    """Right panel: the loss along the arc with SAM's and XSAM's alphas and the worst loss."""
    import plotly.graph_objects as go

    fig.add_trace(
        go.Scatter(
            x=result.alphas,
            y=result.arc_losses,
            mode="lines+markers",
            name="arc loss",
            line={"color": "black"},
        ),
        row=1,
        col=2,
    )
    for x, color, name in ((1.0, "orange", "SAM"), (result.alpha_star, "red", "XSAM alpha*")):
        fig.add_vline(
            x=x, line={"color": color, "dash": "dash"}, annotation_text=name, row=1, col=2
        )
    fig.add_hline(y=result.worst["loss"], line={"color": "magenta", "dash": "dot"}, row=1, col=2)
    fig.update_xaxes(title_text="alpha", row=1, col=2)
    fig.update_yaxes(title_text="loss", row=1, col=2)
