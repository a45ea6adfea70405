"""1D pictures: loss (and accuracy) along slices, several models or directions overlaid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SharpscopeError
from ..surface import Surface
from .common import _new_ax, _plt, _save, _values

__all__ = ["plot_1d"]


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
