"""One look for every sharpscope figure: style, sizes, saving, contour levels, colour scales, labels.

The plotting modules draw with these helpers so that a figure can go into a paper
as it is:

* :func:`style` applies ``sharpscope.mplstyle`` (colour-blind-safe cycle, 8-9 pt
  text, no top/right spines, tight bounding box, PNG at 200 dpi, TrueType fonts in
  PDF, text kept as text in SVG); :func:`figsize` gives one- (3.4 in) and
  two-column (7 in) sizes.
* :func:`save_figure` writes PNG/PDF/SVG side by side, each atomically.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SharpscopeError

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

STYLE_PATH = Path(__file__).with_name("sharpscope.mplstyle")
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

PLOTLY_SEQUENTIAL = "Viridis"
"""The same colour map under its plotly name."""

ONE_COLUMN_IN = 3.4
TWO_COLUMN_IN = 7.0
PNG_DPI = 200
FORMATS = ("png", "pdf", "svg")
LI_LEVELS = np.round(np.arange(0.1, 10, 0.5), 10)
"""Li et al. (2018)'s contour levels: 0.1 to 9.6 in steps of 0.5."""
LEVEL_MODES = ("log", "li", "linear")
# applied to every save, inside the style or not: editable text in PDF/SVG, stable SVG ids
_SAVE_RC = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "svg.hashsalt": "sharpscope",
}
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")


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
    runs: only rank 0 writes (the helper in :mod:`sharpscope.utils` decides).

    Args:
        fig: a matplotlib figure.
        path: the file path; its stem names every format.
        formats: ``png``, ``pdf``, ``svg`` (a list or ``"pdf,png"``).
        dpi: resolution of the PNG.

    Returns:
        the written paths, in the order of ``formats``.
    """
    import matplotlib

    from .utils import atomic_write_bytes

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


# ----------------------------------------------------------------------------- numbers
def format_number(value: float, *, markup: str | None = None) -> str:
    """A short label for a round number, without SI prefixes.

    ``0.2 -> "0.2"``, ``1000 -> "1000"``, ``1e-5 -> "1e-5"``; with ``markup="mathtext"``
    small and large powers become ``$10^{-5}$`` / ``$2\\times10^{-5}$`` and with
    ``markup="html"`` ``10<sup>-5</sup>`` (plotly).
    """
    v = float(value)
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    a = abs(v)
    if 1e-3 <= a < 1e5:
        return np.format_float_positional(float(f"{v:.4g}"), trim="-")
    mant, exp = f"{v:.3g}".split("e")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    e = int(exp)
    if markup == "mathtext":
        base = f"10^{{{e}}}"
        if mant in ("1", "-1"):
            return f"${mant[:-1]}{base}$"
        return f"${mant}\\times{base}$"
    if markup == "html":
        base = f"10<sup>{e}</sup>"
        if mant in ("1", "-1"):
            return f"{mant[:-1]}{base}"
        return f"{mant}×{base}"
    return f"{mant}e{e}"


def _nice_step_candidates(span: float, n: int) -> Iterator[float]:
    k0 = math.floor(math.log10(span / max(n, 1))) - 1
    for k in range(k0, k0 + 4):
        for m in (1, 2, 5):
            yield m * 10.0**k


def _round_to_step(values: np.ndarray, step: float) -> np.ndarray:
    decimals = max(0, -math.floor(math.log10(step)))
    return np.round(values, decimals + 1)


def nice_ticks(lo: float, hi: float, *, log: bool = False, n: int = 5) -> np.ndarray:
    """At most about ``n`` round tick values (1, 2, 5 x 10^k) inside ``[lo, hi]``.

    Linear: equally spaced multiples of the smallest step from {1, 2, 5} x 10^k that
    gives at most ``n`` ticks (``(0.003, 1.009)`` -> ``0.2, 0.4, 0.6, 0.8, 1.0``).
    ``log=True``: powers of ten (every m-th decade when there are more than ``n``);
    when fewer than two decades fall inside, 1/2/5 x 10^k values; when still fewer
    than two, the linear ticks.
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise SharpscopeError(f"tick range must be finite, got ({lo}, {hi})")
    if n < 1:
        raise SharpscopeError(f"tick count must be at least 1, got {n}")
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        return np.array([lo])
    if log:
        if lo <= 0:
            raise SharpscopeError(f"log ticks need a positive range, got ({lo:g}, {hi:g})")
        eps = 1e-9
        k_lo = math.ceil(math.log10(lo) - eps)
        k_hi = math.floor(math.log10(hi) + eps)
        decades = list(range(k_lo, k_hi + 1))
        if len(decades) >= 2:
            m = math.ceil(len(decades) / n)
            return np.array([10.0**k for k in decades[::m]])
        cand = [
            m * 10.0**k
            for k in range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1)
            for m in (1, 2, 5)
        ]
        inside = [c for c in cand if lo * (1 - eps) <= c <= hi * (1 + eps)]
        if len(inside) >= 2:
            return np.array(inside[:: math.ceil(len(inside) / n)])
    span = hi - lo
    for step in _nice_step_candidates(span, n):
        i_lo = math.ceil(lo / step - 1e-9)
        i_hi = math.floor(hi / step + 1e-9)
        if i_hi - i_lo + 1 <= n:
            return _round_to_step(np.arange(i_lo, i_hi + 1) * step, step)
    return np.array([lo, hi])  # pragma: no cover - the candidates always reach the span


# ----------------------------------------------------------------------------- levels
@dataclass(frozen=True)
class LossScale:
    """Contour levels of a loss surface and the colour scale that goes with them.

    Attributes:
        levels: the contour levels, in loss units (pass to ``contour(levels=...)``).
        mode: ``log``, ``li``, ``linear`` or ``explicit``.
        zmin: the loss the scale starts from (``log``: the rise is measured from here).
        zmax: the loss the scale ends at.
        floor: ``log`` only: the smallest rise coloured apart (smaller rises get the
            lowest colour); ``None`` otherwise.
    """

    levels: np.ndarray
    mode: str
    zmin: float
    zmax: float
    floor: float | None = None

    @property
    def log(self) -> bool:
        return self.mode == "log"

    @property
    def empty(self) -> bool:
        """True when there is nothing to contour (no finite values, or a flat surface)."""
        return len(self.levels) == 0

    def _kind(self) -> str:
        if self.log:
            return "log"
        lv = np.asarray(self.levels, dtype=np.float64)
        if len(lv) >= 3:
            d = np.diff(lv)
            if not np.allclose(d, d[0], rtol=1e-6, atol=0):
                return "index"
        return "identity"

    # -- colour coordinates ------------------------------------------------------
    def transform(self, z: Any) -> np.ndarray:
        """Values in the scale's colour coordinate (NaN where ``z`` is not finite).

        ``log``: ``log10(max(z - zmin, floor))``; uneven explicit levels: the
        fractional level index; otherwise ``z`` itself. Plotly figures draw these
        values so their colours and contours match the matplotlib ones.
        """
        v = np.array(z, dtype=np.float64, copy=True)
        bad = ~np.isfinite(v)
        kind = self._kind()
        if kind == "log":
            with np.errstate(invalid="ignore"):
                v = np.log10(np.maximum(v - self.zmin, float(self.floor)))
        elif kind == "index":
            v = np.interp(v, self.levels, np.arange(len(self.levels), dtype=np.float64))
        v[bad] = np.nan
        return v

    def _inverse(self, t: Any) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        kind = self._kind()
        if kind == "log":
            return self.zmin + 10.0**t
        if kind == "index":
            return np.interp(t, np.arange(len(self.levels), dtype=np.float64), self.levels)
        return t

    def color_range(self) -> tuple[float, float]:
        """``(vmin, vmax)`` of the colour scale in loss units."""
        if self.log:
            return (self.zmin + float(self.floor), self.zmax)
        if len(self.levels) and self._kind() == "index":
            return (float(self.levels[0]), float(self.levels[-1]))
        return (self.zmin, self.zmax)

    def norm(self) -> Any:
        """The matplotlib ``Normalize`` of this scale (log of the rise for ``log``)."""
        import matplotlib.colors as mcolors

        vmin, vmax = self.color_range()
        kind = self._kind()
        if kind == "identity":
            return mcolors.Normalize(vmin=vmin, vmax=vmax)
        return mcolors.FuncNorm((self.transform, self._inverse), vmin=vmin, vmax=vmax)

    # -- ticks and labels --------------------------------------------------------
    def ticks(self, *, n: int = 5, markup: str | None = None) -> tuple[np.ndarray, list[str]]:
        """Colour-bar ticks: positions in loss units and round labels.

        ``log``: the labels are round *rises* above ``zmin`` (0.01, 0.1, 1, ...) at
        ``zmin + rise``; see :meth:`colorbar_label`. Otherwise round loss values.
        """
        vmin, vmax = self.color_range()
        if self.empty or not vmax > vmin:
            return np.array([]), []
        if self.log:
            rises = nice_ticks(float(self.floor), vmax - self.zmin, log=True, n=n)
            return self.zmin + rises, [format_number(r, markup=markup) for r in rises]
        if self._kind() == "index":
            step = math.ceil(len(self.levels) / n)
            pos = np.asarray(self.levels[::step], dtype=np.float64)
        else:
            pos = nice_ticks(vmin, vmax, n=n)
        return pos, [format_number(p, markup=markup) for p in pos]

    def colorbar_label(self, what: str = "loss") -> str:
        """``"loss"`` or, for ``log``, ``"loss − min (min = 0.0231)"``."""
        if self.log:
            return f"{what} − min  (min = {self.zmin:.4g})"
        return what

    def level_formatter(self) -> Any:
        """A ``clabel`` formatter: round rises (``log``) or the levels' values, 2-3 digits."""
        if self.log:
            return lambda v: format_number(float(f"{v - self.zmin:.2g}"))
        return lambda v: format_number(float(f"{v:.3g}"))

    def colorbar(self, fig: Any, mappable: Any, *, ax: Any = None, what: str = "loss", **kw: Any):
        """Add a colour bar for ``mappable`` with round ticks and the scale's label."""
        cb = fig.colorbar(mappable, ax=ax, **kw)
        pos, labels = self.ticks(markup="mathtext")
        if len(pos):
            cb.set_ticks(pos, labels=labels)
        cb.set_label(self.colorbar_label(what))
        cb.minorticks_off()
        return cb

    # -- plotly -------------------------------------------------------------------
    def plotly_colorbar(self, *, what: str = "loss") -> dict[str, Any]:
        """Plotly ``colorbar`` dict of this scale: the same round ticks as matplotlib."""
        pos, labels = self.ticks(markup="html")
        out: dict[str, Any] = {
            "title": {"text": self.colorbar_label(what)},
            "exponentformat": "power",
            "showexponent": "all",
            "tickformat": "~g",
        }
        if len(pos):
            out.update(
                tickmode="array",
                tickvals=[float(t) for t in self.transform(pos)],
                ticktext=labels,
            )
        return out

    def plotly_contours(self) -> dict[str, Any]:
        """Plotly ``contours`` dict drawing exactly :attr:`levels` on transformed values."""
        if self.empty:
            return {"showlabels": False}
        t = self.transform(self.levels)
        kind = self._kind()
        size = float(t[1] - t[0]) if len(t) > 1 else 1.0
        return {
            "start": float(t[0]),
            "end": float(t[-1]),
            "size": size,
            "showlabels": kind == "identity",
            "labelformat": "~g",
        }

    def plotly_contour(
        self, z: Any, *, x: Any, y: Any, what: str = "loss", showscale: bool = True
    ) -> dict[str, Any]:
        """Keyword arguments for ``go.Contour`` of ``z[i, j]`` at ``(x[j], y[i])``.

        The colour is the transformed value; hovering shows the real loss.
        """
        z = np.asarray(z, dtype=np.float64)
        vmin, vmax = self.color_range()
        lo, hi = self.transform([vmin, vmax]) if vmax > vmin else (None, None)
        return {
            "x": [float(v) for v in np.ravel(x)],
            "y": [float(v) for v in np.ravel(y)],
            "z": _none_nan(self.transform(z)),
            "customdata": _none_nan(z),
            "hovertemplate": f"x=%{{x:.3g}}<br>y=%{{y:.3g}}<br>{what}=%{{customdata:.4g}}"
            "<extra></extra>",
            "zmin": None if lo is None else float(lo),
            "zmax": None if hi is None else float(hi),
            "colorscale": PLOTLY_SEQUENTIAL,
            "contours": self.plotly_contours(),
            "colorbar": self.plotly_colorbar(what=what),
            "showscale": showscale,
            "connectgaps": False,
        }

    def plotly_surface(
        self, z: Any, *, x: Any, y: Any, what: str = "loss", showscale: bool = True
    ) -> dict[str, Any]:
        """Keyword arguments for ``go.Surface``: height is the real loss, colour this scale."""
        z = np.asarray(z, dtype=np.float64)
        vmin, vmax = self.color_range()
        lo, hi = self.transform([vmin, vmax]) if vmax > vmin else (None, None)
        return {
            "x": [float(v) for v in np.ravel(x)],
            "y": [float(v) for v in np.ravel(y)],
            "z": _none_nan(z),
            "surfacecolor": _none_nan(self.transform(z)),
            "cmin": None if lo is None else float(lo),
            "cmax": None if hi is None else float(hi),
            "colorscale": PLOTLY_SEQUENTIAL,
            "colorbar": self.plotly_colorbar(what=what),
            "showscale": showscale,
            "hovertemplate": f"x=%{{x:.3g}}<br>y=%{{y:.3g}}<br>{what}=%{{z:.4g}}<extra></extra>",
        }


def _none_nan(v: np.ndarray) -> list:
    return [[None if not np.isfinite(c) else float(c) for c in row] for row in np.atleast_2d(v)]


def _finite_range(
    z: Any, vmin: float | None, vmax: float | None
) -> tuple[np.ndarray, float, float] | None:
    finite = np.asarray(z, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)]
    for name, v in (("vmin", vmin), ("vmax", vmax)):
        if v is not None and not math.isfinite(float(v)):
            raise SharpscopeError(f"{name} must be a finite number, got {v!r}")
    if vmin is not None and vmax is not None and not float(vmax) > float(vmin):
        raise SharpscopeError(f"vmax ({vmax:g}) must be larger than vmin ({vmin:g})")
    if finite.size == 0 and (vmin is None or vmax is None):
        return None
    lo = float(finite.min()) if vmin is None else float(vmin)
    hi = float(finite.max()) if vmax is None else float(vmax)
    if not hi > lo + 1e-12 * max(1.0, abs(lo)):
        return None
    return finite, lo, hi


def _log_levels(finite: np.ndarray, lo: float, hi: float, n: int) -> tuple[np.ndarray, float]:
    rmax = hi - lo
    rises = finite - lo
    pos = rises[(rises > 0) & (rises <= rmax)]
    if pos.size == 0:
        pos = np.array([rmax])
    # the smallest rise worth a contour: the smallest one seen on the grid, but at least
    # 1/1000 of the median rise (a noisy minimum must not spend levels on 1e-9 wobbles)
    floor = float(max(pos.min(), 1e-3 * np.median(pos)))
    floor = min(floor, rmax)
    if floor >= rmax * (1 - 1e-12):
        return np.array([lo + rmax]), floor
    decades = math.log10(rmax / floor)
    per_decade = min(1000, max(1, math.ceil(n / decades)))
    k_lo = math.ceil(per_decade * math.log10(floor) - 1e-9)
    k_hi = math.floor(per_decade * math.log10(rmax) + 1e-9)
    r = 10.0 ** (np.arange(k_lo, k_hi + 1) / per_decade)
    if r.size < 2:
        r = np.geomspace(floor, rmax, max(2, n))
    return lo + r, floor


def loss_scale(
    z: Any,
    *,
    mode: str = "log",
    levels: Sequence[float] | np.ndarray | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    n: int = 12,
) -> LossScale:
    """Contour levels and colour scale for a loss surface (or several: pass them concatenated).

    Args:
        z: loss values, any shape; NaN/Inf are ignored. For surfaces compared on one
            scale, pass ``np.concatenate([a.ravel(), b.ravel()])``.
        mode: ``log`` (default): about ``n`` levels at ``zmin + 10**(k/p)``, geometric
            in the rise above the minimum from a data-driven floor (the smallest rise
            on the grid, at least 1/1000 of the median rise) up to the maximum, anchored
            at powers of ten. ``li``: Li et al.'s levels 0.1, 0.6, ..., 9.6 inside the
            data range. ``linear``: round, equally spaced levels (1, 2, 5 x 10^k steps).
        levels: explicit levels (sorted, repeats dropped); they override ``mode``.
        vmin, vmax: the range of the scale (default: the finite data's min and max);
            levels outside ``[vmin, vmax]`` are dropped. For ``log``, ``vmin`` is the
            minimum the rise is measured from.
        n: the number of levels wanted (``log``, ``linear``; approximate).

    Returns:
        a :class:`LossScale`; its ``levels`` are empty when there is nothing to
        contour (no finite value, a flat surface, or ``li`` levels outside the data).
    """
    if levels is not None:
        lv = np.asarray(levels, dtype=np.float64).ravel()
        if lv.size == 0 or not np.isfinite(lv).all():
            raise SharpscopeError(f"contour levels must be finite numbers, got {list(lv)}")
        lv = np.unique(lv)
        if vmin is not None:
            lv = lv[lv >= float(vmin)]
        if vmax is not None:
            lv = lv[lv <= float(vmax)]
        lo = float(lv[0]) if vmin is None and lv.size else float(vmin if vmin is not None else 0)
        hi = float(lv[-1]) if vmax is None and lv.size else float(vmax if vmax is not None else 0)
        return LossScale(levels=lv, mode="explicit", zmin=lo, zmax=hi)
    if mode not in LEVEL_MODES:
        raise SharpscopeError(f"unknown contour level mode {mode!r}: choose log, li or linear")
    if not (isinstance(n, int) and n >= 1):
        raise SharpscopeError(f"number of contour levels must be a positive integer, got {n!r}")
    rng = _finite_range(z, vmin, vmax)
    if rng is None:
        return LossScale(levels=np.array([]), mode=mode, zmin=math.nan, zmax=math.nan)
    finite, lo, hi = rng
    if mode == "log":
        lv, floor = _log_levels(finite, lo, hi, n)
        return LossScale(levels=lv, mode="log", zmin=lo, zmax=hi, floor=floor)
    if mode == "li":
        lv = LI_LEVELS[(LI_LEVELS >= lo) & (LI_LEVELS <= hi)].copy()
        return LossScale(levels=lv, mode="li", zmin=lo, zmax=hi)
    ticks = nice_ticks(lo, hi, n=n)
    return LossScale(levels=ticks[ticks > lo], mode="linear", zmin=lo, zmax=hi)


def contour_levels(
    z: Any,
    *,
    mode: str = "log",
    levels: Sequence[float] | np.ndarray | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    n: int = 12,
) -> np.ndarray:
    """The contour levels of :func:`loss_scale` (same arguments), in loss units."""
    return loss_scale(z, mode=mode, levels=levels, vmin=vmin, vmax=vmax, n=n).levels


def rise_norm(zmin: float, zmax: float, *, floor: float | None = None) -> Any:
    """A matplotlib norm colouring ``log10(z - zmin)`` (rises below ``floor`` share a colour).

    ``floor`` defaults to ``(zmax - zmin) * 1e-4``.
    """
    zmin, zmax = float(zmin), float(zmax)
    if not (math.isfinite(zmin) and math.isfinite(zmax) and zmax > zmin):
        raise SharpscopeError(f"rise_norm needs zmin < zmax, got ({zmin:g}, {zmax:g})")
    floor = (zmax - zmin) * 1e-4 if floor is None else float(floor)
    if not 0 < floor < zmax - zmin:
        raise SharpscopeError(f"rise floor must be in (0, {zmax - zmin:g}), got {floor:g}")
    scale = LossScale(levels=np.array([zmax]), mode="log", zmin=zmin, zmax=zmax, floor=floor)
    return scale.norm()


def plotly_colorbar(scale: LossScale | Sequence[float] | np.ndarray, *, what: str = "loss") -> dict:
    """The plotly ``colorbar`` dict for a :class:`LossScale` (or explicit levels).

    Round tick values from :func:`nice_ticks`, ``exponentformat="power"`` and never SI
    prefixes; with a ``log`` scale the tick values are in the transformed coordinate
    that :meth:`LossScale.plotly_contour` draws.
    """
    if not isinstance(scale, LossScale):
        scale = loss_scale(None, levels=scale)
    return scale.plotly_colorbar(what=what)


def plotly_log_axis(title: str) -> dict[str, Any]:
    """A plotly log axis with powers of ten (``10^-5``), never SI prefixes (``10µ``)."""
    return {
        "title": {"text": title},
        "type": "log",
        "exponentformat": "power",
        "showexponent": "all",
        "dtick": 1,
    }


# ----------------------------------------------------------------------------- labels
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
    from .sanitize import printable

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
