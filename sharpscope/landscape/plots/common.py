"""What every landscape figure shares: the matplotlib backend, value transforms, levels, saving."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SharpscopeError
from ...runtime.figstyle import LEVEL_MODES, LossScale, loss_scale, save_figure, style
from ..surface import Surface

__all__ = ["shared_levels", "scale_for", "parse_levels", "Levels"]

# a level mode (``log``, ``li``, ``linear``) or explicit levels in loss units
Levels = str | Sequence[float] | np.ndarray

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


def _save(
    fig: Any, path: str | Path | None, own: bool, formats: Sequence[str] | None = None
) -> list[Path]:
    """Write ``fig`` to ``path`` (format from its suffix) or once per ``formats`` beside it."""
    if path is None:
        return []
    path = Path(path)
    if formats is None:
        if path.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise SharpscopeError(f"plot file {path} must end in .png, .pdf or .svg")
        formats = (path.suffix.lower().lstrip("."),)
    from ...runtime.distributed import is_main

    written: list[Path] = []
    if is_main():  # distributed runs: rank 0 writes the figures
        path.parent.mkdir(parents=True, exist_ok=True)
        written = save_figure(fig, path, formats=formats)
    if own:
        _plt().close(fig)
    return written


@contextlib.contextmanager
def _styled(apply: bool) -> Iterator[None]:
    """sharpscope's figure style for a figure the function creates (not for a caller's axes)."""
    if not apply:
        yield
        return
    with style():
        yield


def parse_levels(text: str) -> Levels:
    """``--levels``: ``log``, ``li``, ``linear`` or comma-separated numbers (explicit levels)."""
    t = str(text).strip().lower()
    if t in LEVEL_MODES:
        return t
    try:
        values = tuple(float(v) for v in t.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) for v in values):
        raise SharpscopeError(
            f"--levels must be log, li, linear or comma-separated numbers like 0.1,0.5,1, "
            f"got {text!r}"
        )
    return values


def scale_for(
    surfaces: Sequence[Surface],
    *,
    levels: Levels | None = "log",
    vmin: float | None = None,
    vmax: float | None = None,
) -> LossScale:
    """One colour scale and set of contour levels for the real losses of ``surfaces``.

    ``levels`` is a mode of :func:`sharpscope.runtime.figstyle.loss_scale` (``log``: log-spaced
    rises above the minimum, the default; ``li``; ``linear``) or explicit levels.
    """
    z = np.concatenate([_values(s.loss, False).ravel() for s in surfaces])
    if levels is None or isinstance(levels, str):
        return loss_scale(z, mode=levels or "log", vmin=vmin, vmax=vmax)
    return loss_scale(z, levels=levels, vmin=vmin, vmax=vmax)


def _scaled(
    surface: Surface,
    *,
    levels: Levels | int | None,
    log: bool,
    vmin: float | None,
    vmax: float | None,
    scale: LossScale | None,
) -> tuple[np.ndarray, LossScale, str]:
    """The values to draw, their :class:`LossScale` and the colour-bar quantity.

    A mode (or nothing) colours the real loss; explicit levels or a level count keep
    the 0.1 behaviour: levels on ``log10(loss)`` with ``log``, on the loss otherwise.
    """
    if scale is not None:
        return _values(surface.loss, False), scale, "loss"
    if levels is None or isinstance(levels, str):
        return (
            _values(surface.loss, False),
            scale_for([surface], levels=levels, vmin=vmin, vmax=vmax),
            "loss",
        )
    z = _values(surface.loss, log)
    if isinstance(levels, (int, np.integer)) and not isinstance(levels, bool):
        lv = shared_levels([surface], log=log, n=int(levels), vmin=vmin, vmax=vmax)
        if lv is None:
            return z, LossScale(np.array([]), "explicit", math.nan, math.nan), _label(log)
        return z, loss_scale(z, levels=lv), _label(log)
    return z, loss_scale(z, levels=levels, vmin=vmin, vmax=vmax), _label(log)


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
