"""Figures of a comparison of groups: every run per measure (strip plots) and each measure
against the generalisation gap (scatter), as PNG (matplotlib) and plotly figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .figures import DEFAULT_OPTIONS, _plt, _save
from .format import FigureOptions

__all__ = ["fig_group_strips", "fig_gap_scatter", "plotly_group_strips", "plotly_gap_scatter"]

GAP_LABELS = {"gap_loss": "test loss - train loss", "test_error": "test error"}


def _measures(report: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """``(key, title, {group: summary})`` of the measures some group has a value for."""
    if not getattr(report, "groups", None):
        return []
    titles = {c["key"]: c["title"] for c in report.tables["flatness"]["columns"]}
    summaries = report.group_stats.get("summaries", {})
    return [
        (m, titles.get(m, m), per_group)
        for m, per_group in summaries.items()
        if any(s is not None for s in per_group.values())
    ]


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 4)
    return (n + cols - 1) // cols, cols


def fig_group_strips(report: Any, path: Path, opts: FigureOptions = DEFAULT_OPTIONS) -> Path | None:
    """One panel per measure: every run of every group (dots), the group mean and its interval."""
    measures = _measures(report)
    if not measures:
        return None
    plt = _plt()
    rows, cols = _grid(len(measures))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 0.6, 2.7 * rows), squeeze=False)
    groups = list(report.groups)
    rng = np.random.default_rng(0)  # a fixed horizontal jitter: the figure is reproducible
    for ax, (_, title, per_group) in zip(axes.flat, measures, strict=False):
        for i, g in enumerate(groups):
            s = per_group.get(g)
            if s is None:
                continue
            x = i + rng.uniform(-0.12, 0.12, len(s["values"]))
            ax.plot(x, s["values"], "o", ms=4, alpha=0.8, color=f"C{i}")
            if s.get("ci_low") is not None:
                lo, hi = s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]
                ax.errorbar(i + 0.3, s["mean"], yerr=[[lo], [hi]], fmt="_", color="black", ms=12)
            else:
                ax.plot(i + 0.3, s["mean"], "_", color="black", ms=12)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_xlim(-0.5, len(groups) - 0.3)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    for ax in list(axes.flat)[len(measures) :]:
        ax.set_visible(False)
    level = int(round(100 * report.group_stats.get("level", 0.95)))
    fig.suptitle(f"Every run per measure (dots), mean and {level}% CI (bars); lower = flatter")
    fig.tight_layout()
    return _save(fig, path, opts)


def _scatter_items(report: Any, gap: str) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for m, title, _ in _measures(report):
        c = report.group_stats.get("correlations", {}).get(m, {}).get(gap)
        if c is not None:
            out.append((m, title, c))
    return out


def _group_of(report: Any) -> dict[str, str]:
    return {label: g for g, members in report.groups.items() for label in members}


def fig_gap_scatter(
    report: Any, path: Path, opts: FigureOptions = DEFAULT_OPTIONS, gap: str = "gap_loss"
) -> Path | None:
    """One panel per measure: each run's measure against its generalisation gap, Kendall tau."""
    items = _scatter_items(report, gap)
    if not items:
        return None
    plt = _plt()
    rows, cols = _grid(len(items))
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.6 * cols + 1.4, 2.6 * rows), squeeze=False, layout="constrained"
    )
    group_of, groups = _group_of(report), list(report.groups)
    for ax, (_, title, c) in zip(axes.flat, items, strict=False):
        for label, x, y in zip(c["labels"], c["values"], c["gaps"], strict=True):
            i = groups.index(group_of[label])
            ax.plot(x, y, "o", ms=4, color=f"C{i}", label=group_of[label])
        tau = "n/a" if c.get("tau") is None else f"{c['tau']:.2f}"
        ax.set_title(f"{title} (tau {tau})", fontsize=9)
        ax.set_xlabel(title, fontsize=8)
        ax.set_ylabel(GAP_LABELS[gap], fontsize=8)
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    fig.legend(unique.values(), unique.keys(), loc="outside right upper", fontsize=8)
    for ax in list(axes.flat)[len(items) :]:
        ax.set_visible(False)
    fig.suptitle(f"Does flatness predict the gap ({GAP_LABELS[gap]})? One dot per run")
    return _save(fig, path, opts)


def plotly_group_strips(report: Any) -> tuple[str, str, Any] | None:
    """Interactive strip plots: every run per group and measure (hover names the run)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    measures = _measures(report)
    if not measures:
        return None
    rows, cols = _grid(len(measures))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for _, t, _ in measures])
    for k, (_, _, per_group) in enumerate(measures):
        for i, g in enumerate(report.groups):
            s = per_group.get(g)
            if s is None:
                continue
            fig.add_trace(
                go.Box(
                    y=s["values"],
                    name=g,
                    boxpoints="all",
                    jitter=0.4,
                    text=s["members"],
                    marker={"color": f"hsl({(i * 97) % 360},60%,45%)"},
                    showlegend=k == 0,
                ),
                row=k // cols + 1,
                col=k % cols + 1,
            )
    fig.update_layout(title="Every run per measure (lower = flatter)", height=320 * rows)
    return ("plot-group-strips", "Groups: every run per measure", fig)


def plotly_gap_scatter(report: Any) -> tuple[str, str, Any] | None:
    """Interactive scatter of each measure against the loss gap, one colour per group."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    items = _scatter_items(report, "gap_loss")
    if not items:
        return None
    rows, cols = _grid(len(items))
    titles = [f"{t} (tau {c['tau']:.2f})" if c.get("tau") is not None else t for _, t, c in items]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles)
    group_of = _group_of(report)
    for k, (_, _, c) in enumerate(items):
        fig.add_trace(
            go.Scatter(
                x=c["values"],
                y=c["gaps"],
                mode="markers",
                text=[f"{lb} ({group_of[lb]})" for lb in c["labels"]],
                showlegend=False,
            ),
            row=k // cols + 1,
            col=k % cols + 1,
        )
    fig.update_layout(title="Each measure against test loss - train loss", height=320 * rows)
    return ("plot-gap-scatter", "Flatness against the generalisation gap", fig)
