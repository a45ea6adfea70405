"""One look for every sharpscope figure: style, sizes, saving, contour levels, colour scales, labels.

The plotting modules draw with these helpers so that a figure can go into a paper
as it is:

* :func:`style` applies ``sharpscope.mplstyle`` (colour-blind-safe cycle, 8-9 pt
  text, no top/right spines, tight bounding box, PNG at 200 dpi, TrueType fonts in
  PDF, text kept as text in SVG); :func:`figsize` gives one- (3.4 in) and
  two-column (7 in) sizes.
* :func:`save_figure` writes PNG/PDF/SVG side by side, each atomically.

The helpers below live in :mod:`~sharpscope.runtime.colorscale`,
:mod:`~sharpscope.runtime.figticks` and :mod:`~sharpscope.runtime.figlabels` and are
re-exported here:

* :func:`loss_scale` / :func:`contour_levels` choose contour levels for a loss
  basin. The default, ``mode="log"``, spaces the levels geometrically in the loss
  *rise* above the minimum (``z - zmin``), anchored at powers of ten, so a basin
  keeps several nested contours even when a corner of the grid has a loss 100
  times larger. ``mode="li"`` gives Li et al. (2018)'s fixed levels
  ``0.1, 0.6, ..., 9.6``. The returned :class:`LossScale` also gives the
  matplotlib colour norm, colour-bar ticks with round values, and the plotly
  description of the *same* scale, so the PNG and the HTML page agree.
* :func:`nice_ticks` gives round tick values (1, 2, 5 x 10^k).
* label helpers: :func:`direction_label`, :func:`title_for`,
  :func:`place_legend_outside`, :func:`annotate_barrier`,
  :func:`non_overlapping_labels`, :func:`thin_labels`, :func:`twin_axis`.

Li, H., Xu, Z., Taylor, G., Studer, C., & Goldstein, T. (2018). Visualizing the loss
landscape of neural nets. NeurIPS.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import SharpscopeError
from .colorscale import (
    LEVEL_MODES,
    LI_LEVELS,
    PLOTLY_SEQUENTIAL,
    LossScale,
    contour_levels,
    loss_scale,
    plotly_colorbar,
    plotly_log_axis,
    rise_norm,
)
from .figlabels import (
    annotate_barrier,
    direction_label,
    non_overlapping_labels,
    place_legend_outside,
    thin_labels,
    title_for,
    twin_axis,
)
from .figticks import format_number, nice_ticks

__all__ = [
    "STYLE_PATH",
    "COLORS",
    "SEQUENTIAL_CMAP",
    "PLOTLY_SEQUENTIAL",
    "ONE_COLUMN_IN",
    "TWO_COLUMN_IN",
    "PNG_DPI",
    "FORMATS",
    "LI_LEVELS",
    "LEVEL_MODES",
    "style",
    "figsize",
    "parse_formats",
    "save_figure",
    "LossScale",
    "loss_scale",
    "contour_levels",
    "rise_norm",
    "nice_ticks",
    "format_number",
    "plotly_colorbar",
    "plotly_log_axis",
    "direction_label",
    "title_for",
    "place_legend_outside",
    "annotate_barrier",
    "non_overlapping_labels",
    "thin_labels",
    "twin_axis",
]

# the style file stays at the package root (sharpscope/sharpscope.mplstyle)
STYLE_PATH = Path(__file__).resolve().parent.parent / "sharpscope.mplstyle"
"""The matplotlib style file shipped with the package."""

COLORS: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow (last: weak on white)
)
"""Okabe & Ito's colour-blind-safe colours, in the order of the style's colour cycle."""

SEQUENTIAL_CMAP = "viridis"
"""Perceptually uniform, colour-blind-safe colour map for losses (matplotlib name)."""


ONE_COLUMN_IN = 3.4
TWO_COLUMN_IN = 7.0
PNG_DPI = 200
FORMATS = ("png", "pdf", "svg")
# applied to every save, inside the style or not: editable text in PDF/SVG, stable SVG ids
_SAVE_RC = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "svg.hashsalt": "sharpscope",
}


# ----------------------------------------------------------------------------- style
@contextlib.contextmanager
def style() -> Iterator[None]:
    """Apply sharpscope's figure style (``sharpscope.mplstyle``) inside a ``with`` block.

    Figures created inside the block take its sizes, fonts, spines and colours;
    rcParams are restored on exit.
    """
    import matplotlib.style

    with matplotlib.style.context(str(STYLE_PATH)):
        yield


def figsize(*, columns: int = 1, aspect: float = 0.75, rows: int = 1) -> tuple[float, float]:
    """``(width, height)`` in inches for a paper figure.

    Args:
        columns: 1 for one column (3.4 in wide), 2 for the full width (7 in).
        aspect: height / width of one panel row (0.75 by default; 1 for a square contour).
        rows: panel rows stacked vertically (the height grows with them).
    """
    if columns not in (1, 2):
        raise SharpscopeError(f"figure columns must be 1 or 2, got {columns!r}")
    if not (isinstance(aspect, (int, float)) and math.isfinite(aspect) and aspect > 0):
        raise SharpscopeError(f"figure aspect must be a positive number, got {aspect!r}")
    if not (isinstance(rows, int) and rows >= 1):
        raise SharpscopeError(f"figure rows must be a positive integer, got {rows!r}")
    width = ONE_COLUMN_IN if columns == 1 else TWO_COLUMN_IN
    return (width, round(width * float(aspect) * rows, 3))


# ----------------------------------------------------------------------------- saving
def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"pdf,png"`` (or a list) as a tuple of known formats, in order, without repeats.

    Raises:
        SharpscopeError: an unknown or empty format list.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        fmt = str(item).strip().lower().lstrip(".")
        if not fmt:
            continue
        if fmt not in FORMATS:
            raise SharpscopeError(
                f"unknown figure format {item!r}: choose from {', '.join(FORMATS)}"
            )
        if fmt not in out:
            out.append(fmt)
    if not out:
        raise SharpscopeError(
            f"no figure format given in {text!r}: choose from {', '.join(FORMATS)}"
        )
    return tuple(out)


def _stem_path(path: Path) -> Path:
    return path.with_suffix("") if path.suffix.lower().lstrip(".") in FORMATS else path


def save_figure(
    fig: Any,
    path: str | Path,
    *,
    formats: str | Sequence[str] = ("png",),
    dpi: int = PNG_DPI,
) -> list[Path]:
    """Write ``fig`` once per format, side by side: ``contour`` -> ``contour.png``, ``contour.pdf``.

    A ``.png``/``.pdf``/``.svg`` suffix on ``path`` is replaced. Every format is
    rendered in memory first, then each file is written atomically (temporary file
    in the same folder, then rename), so a failure leaves no partial file. Fonts are
    kept as TrueType (PDF) and text (SVG) even outside :func:`style`; PDF and SVG
    carry no creation date, so the same figure gives the same bytes. Distributed
    runs: only rank 0 writes (the helper in :mod:`sharpscope.runtime.files` decides).

    Args:
        fig: a matplotlib figure.
        path: the file path; its stem names every format.
        formats: ``png``, ``pdf``, ``svg`` (a list or ``"pdf,png"``).
        dpi: resolution of the PNG.

    Returns:
        the written paths, in the order of ``formats``.
    """
    import matplotlib

    from .files import atomic_write_bytes

    fmts = parse_formats(formats)
    stem = _stem_path(Path(path))
    rendered: list[tuple[Path, bytes]] = []
    for fmt in fmts:
        buf = io.BytesIO()
        metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}.get(fmt)
        with matplotlib.rc_context(_SAVE_RC):
            fig.savefig(
                buf,
                format=fmt,
                dpi=dpi,
                bbox_inches="tight",
                pad_inches=0.02,
                metadata=metadata,
            )
        rendered.append((stem.with_name(f"{stem.name}.{fmt}"), buf.getvalue()))
    for target, data in rendered:
        atomic_write_bytes(target, data)
    return [target for target, _ in rendered]
