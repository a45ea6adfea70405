"""Figures of Hessian probes: spectral densities and curvature over training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.files import _replace_on_success, atomic_write_text
from .density import DensityResult

__all__ = ["plot_density", "density_html", "plot_over_training", "plot_spectrum", "save_figure"]


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a matplotlib figure atomically; the suffix picks the format (``.png``, ``.pdf``, ``.svg``)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with _replace_on_success(path) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight", dpi=150)
    return path


def plot_density(
    result: DensityResult,
    path: str | Path | None = None,
    *,
    title: str = "Hessian spectral density",
    log: bool = True,
):
    """Plot a broadened spectral density (log scale by default, as Ghorbani et al.); return the figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    dens = np.maximum(result.density, 1e-12) if log else result.density
    ax.plot(result.grid, dens, color="C0")
    if log:
        ax.set_yscale("log")
        ax.set_ylim(max(1e-8, dens.min()), dens.max() * 2)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.set_title(f"{title} ({result.runs} runs x {result.iters} Lanczos steps)")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def density_html(
    result: DensityResult, path: str | Path, *, title: str = "Hessian spectral density"
) -> Path:
    """Write a self-contained interactive plotly page of the density (``include_plotlyjs=True``)."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Scatter(
            x=result.grid.tolist(),
            y=np.maximum(result.density, 1e-12).tolist(),
            mode="lines",
            name="density",
        )
    )
    from ..runtime.figstyle import plotly_log_axis

    se = result.trace_stderr
    trace = f"SLQ trace {result.moment(1) * result.dim:.4g}" + (
        f" ± {se:.2g}" if se is not None else " (one run: no error bar)"
    )
    fig.update_layout(
        title=f"{title}<br><sub>{trace}; {result.runs} runs x {result.iters} Lanczos steps</sub>",
        xaxis_title="eigenvalue",
        yaxis=plotly_log_axis("density (log scale)"),  # powers of ten, never SI prefixes
    )
    path = Path(path)
    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
    return path


def plot_over_training(
    epochs: Sequence[int],
    values: Sequence[float],
    path: str | Path | None = None,
    *,
    lrs: Sequence[float | None] | None = None,
    label: str = "lambda_max",
    extra: dict[str, Sequence[float]] | None = None,
    title: str = "Curvature over training",
):
    """Plot a curvature measure against epoch, with gradient descent's stability limit ``2 / lr``.

    Cohen, J. M., Kaur, S., Li, Y., Kolter, J. Z., & Talwalkar, A. (2021). Gradient descent on
    neural networks typically occurs at the edge of stability. ICLR.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(list(epochs), list(values), "o-", label=label)
    if lrs is not None and any(lr for lr in lrs):
        ep = [e for e, lr in zip(epochs, lrs, strict=False) if lr]
        ax.plot(
            ep, [2.0 / lr for lr in lrs if lr], "--", color="C3", label="2 / lr (edge of stability)"
        )
    for name, series in (extra or {}).items():
        ax.plot(list(epochs), list(series), "s-", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("value")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_spectrum(
    eigenvalues: Sequence[float] | Any,
    path: str | Path | None = None,
    *,
    residuals: Sequence[float] | Any | None = None,
    title: str = "Top Hessian eigenvalues",
):
    """Stem plot of a checkpoint's Lanczos eigenvalues (by rank, largest first); return the figure.

    Negative eigenvalues (``--which smallest|both``) are drawn below the zero line in
    another colour; with ``residuals`` each stem is labelled with its relative residual.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    values = np.asarray([float(v) for v in eigenvalues], dtype=np.float64)
    if values.size == 0:
        raise ValueError("plot_spectrum needs at least one eigenvalue")
    order = np.argsort(-values, kind="stable")
    values = values[order]
    ranks = np.arange(1, values.size + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    pos = values >= 0
    for mask, colour, label in ((pos, "C0", "eigenvalue >= 0"), (~pos, "C3", "eigenvalue < 0")):
        if mask.any():
            stems = ax.stem(ranks[mask], values[mask], linefmt=colour, markerfmt=f"{colour}o")
            stems.set_label(label)
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    if residuals is not None:
        res = np.asarray([float(r) for r in residuals], dtype=np.float64)[order]
        for r, v, e in zip(ranks, values, res, strict=False):
            ax.annotate(f"{e:.0e}", (r, v), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7, color="0.35")  # fmt: skip
    ax.set_xticks(ranks)
    ax.set_xlabel("rank (Lanczos, largest first)")
    ax.set_ylabel("Hessian eigenvalue")
    ax.set_title(title)
    if (~pos).any():
        ax.legend()
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
