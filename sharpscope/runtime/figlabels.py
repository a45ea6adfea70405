"""Labels of figures: axis names of directions, titles, legends, barriers, label placement."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SharpscopeError
from .sanitize import printable

__all__ = [
    "direction_label",
    "title_for",
    "place_legend_outside",
    "annotate_barrier",
    "non_overlapping_labels",
    "thin_labels",
    "twin_axis",
]

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")


_NORM_WORDS = {
    "filter": "filter-normalised",
    "layer": "layer-normalised",
    "none": "not normalised",
    None: "not normalised",
}


def direction_label(
    kind: int | str, normalization: str | None, *, explained: float | None = None
) -> str:
    """Axis label of a slice direction.

    ``direction_label(1, "filter")`` -> ``"direction 1 (filter-normalised)"``;
    ``direction_label("pc2", None, explained=0.12)`` -> ``"PC 2 (12.0% of variance)"``.

    Args:
        kind: 1, 2, ``"d1"``, ``"d2"``, ``"pc1"`` or ``"pc2"``.
        normalization: ``filter``, ``layer``, ``none`` or ``None``.
        explained: for PCA directions, the fraction of variance explained.
    """
    if normalization not in _NORM_WORDS:
        raise SharpscopeError(
            f"unknown normalisation {normalization!r}: choose filter, layer or none"
        )
    key = str(kind).strip().lower()
    pc = key.startswith("pc")
    num = key[2:] if pc else key[1:] if key.startswith("d") else key
    if num not in ("1", "2"):
        raise SharpscopeError(f"unknown direction {kind!r}: choose 1, 2, d1, d2, pc1 or pc2")
    if pc:
        if explained is None:
            return f"PC {num}"
        return f"PC {num} ({100 * float(explained):.1f}% of variance)"
    return f"direction {num} ({_NORM_WORDS[normalization]})"


def title_for(checkpoint_name: str | Path, mode: str | None = None) -> str:
    """``"resnet20-sam · eval mode"``: the checkpoint (file stem) and the BatchNorm mode.

    Control characters are removed and the name is cut at 60 characters.
    """
    name = str(checkpoint_name)
    p = Path(name)
    if p.suffix.lower() in _CHECKPOINT_SUFFIXES:
        name = p.stem
    elif "/" in name or "\\" in name:
        name = p.name or name
    name = printable(name, limit=60)
    if mode is None:
        return name
    if mode not in ("eval", "train"):
        raise SharpscopeError(f"unknown mode {mode!r}: choose eval or train")
    return f"{name} · {mode} mode"


def place_legend_outside(
    ax: Any, *, where: str = "right", extra_axes: Sequence[Any] = (), **kw: Any
) -> Any:
    """Put the legend beside (``right``) or under (``below``) the axes, off the data.

    Handles of ``extra_axes`` (a ``twinx`` axis) join the legend. Returns the legend,
    or ``None`` when nothing is labelled. The style's tight bounding box keeps it in
    the saved file.
    """
    if where not in ("right", "below"):
        raise SharpscopeError(f"unknown legend place {where!r}: choose right or below")
    handles, labels = ax.get_legend_handles_labels()
    for other in extra_axes:
        h, lb = other.get_legend_handles_labels()
        handles += h
        labels += lb
    if not handles:
        return None
    if where == "right":
        opts = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
    else:
        opts = {
            "loc": "upper center",
            "bbox_to_anchor": (0.5, -0.16),
            "ncol": min(3, len(handles)),
            "borderaxespad": 0.0,
        }
    opts.update(kw)
    return ax.legend(handles, labels, **opts)


def annotate_barrier(
    ax: Any,
    x: float,
    y_low: float,
    y_high: float,
    text: str,
    *,
    color: str = "black",
) -> Any:
    """A vertical double arrow from ``y_low`` to ``y_high`` at ``x`` with ``text`` beside it.

    Marks a loss barrier (e.g. the highest point of an interpolation above its ends).
    Returns the text annotation.
    """
    vals = [float(x), float(y_low), float(y_high)]
    if not all(math.isfinite(v) for v in vals):
        raise SharpscopeError(f"barrier position must be finite, got x={x}, y={y_low}..{y_high}")
    if y_high < y_low:
        y_low, y_high = y_high, y_low
    ax.annotate(
        "",
        xy=(x, y_high),
        xytext=(x, y_low),
        arrowprops={"arrowstyle": "<->", "color": color, "lw": 0.8, "shrinkA": 0, "shrinkB": 0},
    )
    ax.update_datalim([(x, y_low), (x, y_high)])  # keep both ends inside the limits
    ax.autoscale_view()
    return ax.annotate(
        text,
        xy=(x, (y_low + y_high) / 2),
        xytext=(4, 0),
        textcoords="offset points",
        va="center",
        ha="left",
        color=color,
    )


def non_overlapping_labels(positions: Sequence[float] | np.ndarray, min_gap: float) -> np.ndarray:
    """Move 1D label positions apart by at least ``min_gap``, as little as possible.

    The result keeps the order of the positions (ties keep input order), has
    neighbouring gaps of at least ``min_gap``, and among all such placements moves
    the labels the least in the squared sense: with ``q_i = p_(i) - i * min_gap``
    (sorted positions) the answer is ``y_i + i * min_gap`` where ``y`` is the
    isotonic (non-decreasing) least-squares fit to ``q`` (pool adjacent violators).
    Positions already ``min_gap`` apart are returned unchanged. Deterministic.

    Returns:
        the adjusted positions, in the input order.
    """
    p = np.asarray(positions, dtype=np.float64).ravel()
    if not np.isfinite(p).all():
        raise SharpscopeError("label positions must be finite numbers")
    gap = float(min_gap)
    if not (math.isfinite(gap) and gap >= 0):
        raise SharpscopeError(f"label gap must be a non-negative number, got {min_gap!r}")
    if p.size < 2:
        return p.copy()
    order = np.argsort(p, kind="stable")
    idx = np.arange(p.size, dtype=np.float64)
    q = p[order] - idx * gap
    # pool adjacent violators: blocks of (mean, weight)
    means: list[float] = []
    weights: list[int] = []
    for v in q:
        means.append(float(v))
        weights.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            w = weights[-2] + weights[-1]
            m = (means[-2] * weights[-2] + means[-1] * weights[-1]) / w
            means[-2:] = [m]
            weights[-2:] = [w]
    y = np.repeat(means, weights)
    out = np.empty_like(p)
    out[order] = y + idx * gap
    # positions already apart come back bit for bit
    unchanged = np.isclose(out, p, rtol=0, atol=1e-12 * max(1.0, gap))
    out[unchanged] = p[unchanged]
    return out


def thin_labels(points: Any, min_dist: float) -> list[int]:
    """Indices of the points to label so that no two labelled points are closer than ``min_dist``.

    Greedy along the sequence (a training path): the first point is kept, then each
    point at least ``min_dist`` away from every kept one. Use display units (points)
    so the result matches what is seen: ``ax.transData.transform(coords) * 72 / fig.dpi``.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 1:
        pts = pts[:, None]
    if not np.isfinite(pts).all():
        raise SharpscopeError("label points must be finite numbers")
    d = float(min_dist)
    if not (math.isfinite(d) and d >= 0):
        raise SharpscopeError(f"label distance must be a non-negative number, got {min_dist!r}")
    kept: list[int] = []
    for i, pt in enumerate(pts):
        if all(np.linalg.norm(pt - pts[j]) >= d for j in kept):
            kept.append(i)
    return kept


def twin_axis(ax: Any) -> Any:
    """``ax.twinx()`` with its right spine shown (the style hides right spines)."""
    ax2 = ax.twinx()
    ax2.spines["right"].set_visible(True)
    return ax2
