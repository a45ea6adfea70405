"""Contour levels of a loss surface and the colour scale that goes with them.

:func:`loss_scale` / :func:`contour_levels` choose contour levels for a loss basin. The
default, ``mode="log"``, spaces the levels geometrically in the loss *rise* above the
minimum (``z - zmin``), anchored at powers of ten, so a basin keeps several nested
contours even when a corner of the grid has a loss 100 times larger. ``mode="li"`` gives
Li et al. (2018)'s fixed levels ``0.1, 0.6, ..., 9.6``. The returned :class:`LossScale`
also gives the matplotlib colour norm, colour-bar ticks with round values, and the
plotly description of the *same* scale, so the PNG and the HTML page agree.

Li, H., Xu, Z., Taylor, G., Studer, C., & Goldstein, T. (2018). Visualizing the loss
landscape of neural nets. NeurIPS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SharpscopeError
from .figticks import format_number, nice_ticks

__all__ = [
    "PLOTLY_SEQUENTIAL",
    "LI_LEVELS",
    "LEVEL_MODES",
    "LossScale",
    "loss_scale",
    "contour_levels",
    "rise_norm",
    "plotly_colorbar",
    "plotly_log_axis",
]

PLOTLY_SEQUENTIAL = "Viridis"
"""The colour map of losses (matplotlib's viridis) under its plotly name."""
LI_LEVELS = np.round(np.arange(0.1, 10, 0.5), 10)
"""Li et al. (2018)'s contour levels: 0.1 to 9.6 in steps of 0.5."""
LEVEL_MODES = ("log", "li", "linear")


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
