"""Pictures of loss surfaces: 1D curves, contours, heatmaps, 3D surfaces, plotly HTML, trajectories.

Every function writes a file when given ``path`` (PNG or PDF by suffix; HTML for
plotly) and returns the matplotlib ``(figure, axes)`` so callers can add to it (the
XSAM plane probe marks its points on :func:`plot_contour`). Non-finite losses are
masked and drawn as gaps. Comparison figures share one colour scale and one set of
contour levels, so two minima are compared honestly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SharpscopeError
from ..utils import atomic_write_text
from .grid import Surface

__all__ = [
    "plot_1d",
    "plot_contour",
    "plot_heatmap",
    "plot_surface3d",
    "plot_surface_html",
    "plot_comparison",
    "plot_trajectory",
    "shared_levels",
    "write_slice_plots",
]

_TINY = 1e-12


def _plt():
    import matplotlib

    if (
        matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo")
        and not _interactive()
    ):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _interactive() -> bool:
    import sys

    return "ipykernel" in sys.modules


def _values(loss: np.ndarray, log: bool) -> np.ndarray:
    v = np.array(loss, dtype=np.float64, copy=True)
    v[~np.isfinite(v)] = np.nan
    if log:
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.log10(np.clip(v, _TINY, None))
    return v


def _label(log: bool, what: str = "loss") -> str:
    return f"log10 {what}" if log else what


def shared_levels(
    surfaces: Sequence[Surface],
    *,
    log: bool = False,
    n: int = 20,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray | None:
    """Contour levels common to several surfaces (``None`` when nothing is finite or all is flat)."""
    vals = [_values(s.loss, log) for s in surfaces]
    finite = np.concatenate([v[np.isfinite(v)] for v in vals]) if vals else np.array([])
    if finite.size == 0:
        return None
    lo = float(finite.min()) if vmin is None else float(vmin)
    hi = float(finite.max()) if vmax is None else float(vmax)
    if not hi > lo + 1e-12 * max(1.0, abs(lo)):
        return None
    return np.linspace(lo, hi, int(n))


def _save(fig: Any, path: str | Path | None, own: bool) -> None:
    if path is None:
        return
    path = Path(path)
    if path.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise SharpscopeError(f"plot file {path} must end in .png, .pdf or .svg")
    from ..distributed import is_main

    if not is_main():  # distributed runs: rank 0 writes the figures
        if own:
            _plt().close(fig)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(path)
    if own:
        _plt().close(fig)


def _new_ax(ax: Any, **kw: Any) -> tuple[Any, Any, bool]:
    if ax is not None:
        return ax.figure, ax, False
    fig, ax = _plt().subplots(**kw)
    return fig, ax, True


def _check_2d(surface: Surface) -> None:
    if surface.dims != 2:
        raise SharpscopeError(f"this plot needs a 2D surface, got {surface.dims}D")


def _empty_note(ax: Any) -> None:
    ax.text(0.5, 0.5, "no finite loss values", ha="center", va="center", transform=ax.transAxes)


# ----------------------------------------------------------------------------- 1D
def plot_1d(
    items: Sequence[Any],
    path: str | Path | None = None,
    *,
    labels: Sequence[str] | None = None,
    log: bool = False,
    accuracy: bool = True,
    ax: Any = None,
    title: str | None = None,
    xlabel: str = "alpha",
) -> tuple[Any, Any]:
    """Loss (and accuracy on a second axis) along 1D slices, several models overlaid.

    ``items`` are 1D :class:`Surface` objects or :class:`~sharpscope.landscape.multi.SliceSet`
    objects (several directions: the median is drawn with its 10-90% band).
    """
    if not items:
        raise SharpscopeError("nothing to plot: no 1D slices given")
    fig, ax, own = _new_ax(ax, figsize=(6.4, 4.4))
    ax2 = ax.twinx() if accuracy else None
    colors = _plt().rcParams["axes.prop_cycle"].by_key()["color"]
    any_acc = False
    for k, item in enumerate(items):
        label = (
            labels[k]
            if labels and k < len(labels)
            else (f"model {k + 1}" if len(items) > 1 else "loss")
        )
        color = colors[k % len(colors)]
        if isinstance(item, Surface):
            if item.dims != 1:
                raise SharpscopeError(f"plot_1d needs 1D surfaces, got {item.dims}D")
            x, y, acc, lo, hi = item.axes[0], item.loss, item.accuracy, None, None
        else:
            x, y, acc, lo, hi = item.x, item.median, item.median_accuracy, item.q10, item.q90
        ax.plot(x, _values(y, False), color=color, label=label, lw=1.8)
        if lo is not None:
            ax.fill_between(
                x,
                _values(lo, False),
                _values(hi, False),
                color=color,
                alpha=0.2,
                label=f"{label}: 10-90% of {item.count} directions",
            )
        if ax2 is not None and np.isfinite(acc).any():
            any_acc = True
            ax2.plot(x, acc, color=color, ls="--", lw=1.2, label=f"{label} accuracy")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    if ax2 is not None:
        if any_acc:
            ax2.set_ylabel("accuracy (dashed)")
            ax2.set_ylim(-0.02, 1.02)
        else:
            ax2.set_visible(False)
    ax.legend(loc="upper center", fontsize=8)
    if title:
        ax.set_title(title)
    _save(fig, path, own)
    return fig, ax


# ----------------------------------------------------------------------------- 2D
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
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    items = [surfaces] if isinstance(surfaces, Surface) else list(surfaces)
    if not items:
        raise SharpscopeError("nothing to plot: no surfaces given")
    names = list(labels) if labels else [f"model {i + 1}" for i in range(len(items))]

    def clean(v: np.ndarray) -> list:
        return [[None if not np.isfinite(c) else float(c) for c in row] for row in np.atleast_2d(v)]

    if all(s.dims == 1 for s in items):
        fig = go.Figure()
        for s, name in zip(items, names, strict=False):
            fig.add_trace(
                go.Scatter(
                    x=s.axes[0].tolist(), y=clean(_values(s.loss, log))[0], name=f"{name} loss"
                )
            )
            if np.isfinite(s.accuracy).any():
                fig.add_trace(
                    go.Scatter(
                        x=s.axes[0].tolist(),
                        y=clean(s.accuracy)[0],
                        name=f"{name} accuracy",
                        yaxis="y2",
                        line={"dash": "dash"},
                    )
                )
        fig.update_layout(
            yaxis={"title": _label(log)},
            yaxis2={"title": "accuracy", "overlaying": "y", "side": "right", "range": [0, 1]},
        )
    else:
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
        for r, (s, name) in enumerate(zip(items, names, strict=False), start=1):
            z = clean(_values(s.loss, log).T)
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
            contours = (
                {"start": lo, "end": hi, "size": (hi - lo) / 19, "showlabels": True}
                if lo is not None
                else {"showlabels": True}
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
    fig.update_layout(title=title or "sharpscope loss landscape")
    path = Path(path)
    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
    return path


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
