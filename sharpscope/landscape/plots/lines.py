"""1D pictures: loss (and accuracy) along slices, several models or directions overlaid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SharpscopeError
from ...runtime.figstyle import annotate_barrier, figsize, place_legend_outside, twin_axis
from ..surface import Surface
from .common import _new_ax, _plt, _save, _styled, _values

__all__ = ["plot_1d", "barrier"]


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
    barrier_between: tuple[float, float] | None = None,
    formats: Sequence[str] | None = None,
) -> tuple[Any, Any]:
    """Loss (and accuracy on a second axis) along 1D slices, several models overlaid.

    ``items`` are 1D :class:`Surface` objects or :class:`~sharpscope.landscape.multi.SliceSet`
    objects (several directions: the median is drawn with its 10-90% band). With
    ``barrier_between=(a, b)`` the loss barrier of the first curve between ``x = a``
    and ``x = b`` (its highest point above the higher end, :func:`barrier`) is marked.
    The legend sits outside the data.
    """
    if not items:
        raise SharpscopeError("nothing to plot: no 1D slices given")
    with _styled(ax is None):
        fig, ax, own = _new_ax(ax, figsize=figsize(aspect=0.7))
        ax2 = twin_axis(ax) if accuracy else None
        colors = _plt().rcParams["axes.prop_cycle"].by_key()["color"]
        any_acc = False
        for k, item in enumerate(items):
            default = f"model {k + 1}" if len(items) > 1 else "loss"
            label = labels[k] if labels and k < len(labels) else default
            any_acc |= _draw_item(ax, ax2, item, label, colors[k % len(colors)])
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
        if barrier_between is not None and isinstance(items[0], Surface):
            _mark_barrier(ax, items[0], barrier_between)
        place_legend_outside(ax, where="below", extra_axes=[ax2] if any_acc else [])
        if title:
            ax.set_title(title)
        _save(fig, path, own, formats)
    return fig, ax


def _draw_item(ax: Any, ax2: Any, item: Any, label: str, color: str) -> bool:
    """One curve (a surface, or a set's median with its band); True if accuracy was drawn."""
    if isinstance(item, Surface):
        if item.dims != 1:
            raise SharpscopeError(f"plot_1d needs 1D surfaces, got {item.dims}D")
        x, y, acc, lo, hi = item.axes[0], item.loss, item.accuracy, None, None
    else:
        x, y, acc, lo, hi = item.x, item.median, item.median_accuracy, item.q10, item.q90
    ax.plot(x, _values(y, False), color=color, label=label, lw=1.4)
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
        ax2.plot(x, acc, color=color, ls="--", lw=1.0, label=f"{label} accuracy")
        return True
    return False


def barrier(
    x: np.ndarray, loss: np.ndarray, a: float, b: float
) -> tuple[float, float, float] | None:
    """``(x_peak, end_loss, peak_loss)`` of the highest finite loss on ``[a, b]`` above the
    higher of the two ends; ``None`` when an end is not a grid point or not finite."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    ends = []
    for v in (a, b):
        hit = np.flatnonzero(np.abs(x - v) <= 1e-12 * max(1.0, abs(v)))
        if not len(hit) or not np.isfinite(y[hit[0]]):
            return None
        ends.append(float(y[hit[0]]))
    inside = (x >= min(a, b)) & (x <= max(a, b)) & np.isfinite(y)
    i = int(np.flatnonzero(inside)[np.argmax(y[inside])])
    return float(x[i]), max(ends), float(y[i])


def _mark_barrier(ax: Any, surface: Surface, between: tuple[float, float]) -> None:
    found = barrier(surface.axes[0], surface.loss, *between)
    if found is None:
        return
    xp, end, peak = found
    if peak > end:
        annotate_barrier(ax, xp, end, peak, f"barrier {peak - end:.3g}")
